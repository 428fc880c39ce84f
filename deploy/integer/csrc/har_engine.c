/* The event-driven integer L2MU step (docs/integer-engine.md). */
#include "har_engine.h"

/* The leak needs an arithmetic right shift of negative numbers (implementation-defined in C99): refuse others. */
typedef char har_requires_arithmetic_shift[((-3) >> 1) == -2 ? 1 : -1];

#define HAR_HALF ((int64_t)1 << (HAR_BETA_BITS - 1))

void har_lane_reset(har_lane_t *lane) {
    uint16_t i;
    for (i = 0; i < HAR_N_NEURONS; i++) lane->u[i] = 0;
}

/* Indices (within the population) of its neurons with U > threshold. */
static uint16_t har_fired(const int32_t *u, const har_population_t *p, har_row_t *list) {
    uint16_t i, n = 0;
    for (i = 0; i < p->size; i++)
        if (u[i] > p->threshold_q) list[n++] = (har_row_t)i;
    return n;
}

void har_lane_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS], uint8_t spikes[HAR_N_CLASSES]) {
    har_row_t prev[HAR_N_NEURONS], now[HAR_N_NEURONS]; /* spike lists, at each population's offset */
    uint16_t n_prev[HAR_N_POPS], n_now[HAR_N_POPS];
    uint8_t p;
    for (p = 0; p < HAR_N_POPS; p++) { /* S[t-1] = R[t] = [U[t-1] > thr] */
        const har_population_t *pop = &har_populations[p];
        n_prev[p] = har_fired(&lane->u[pop->offset], pop, &prev[pop->offset]);
    }
    for (p = 0; p < HAR_N_POPS; p++) {
        const har_population_t *pop = &har_populations[p];
        int32_t *u = &lane->u[pop->offset];
        const har_row_t *reset = &prev[pop->offset];
        uint16_t i, r = 0;
        uint8_t q;
        /* U = ((beta_q U + 2^14) >> 15) - R thr + b */
        for (i = 0; i < pop->size; i++) {
            int32_t v = (int32_t)(((int64_t)pop->beta_q * u[i] + HAR_HALF) >> HAR_BETA_BITS);
            if (r < n_prev[p] && reset[r] == i) {
                v -= pop->threshold_q;
                r++;
            }
            u[i] = pop->bias ? v + pop->bias[i] : v;
        }
        if (p == 0) /* the channel populations: I_i = (w_i x_c(i)) << shift */
            for (i = 0; i < pop->size; i++)
                u[i] += (int32_t)har_input_weight[i] * x[har_input_channel[i]] * ((int32_t)1 << har_input_shift);
        /* + sum over spiking source neurons j of column j << shift */
        for (q = pop->first_projection; q < pop->first_projection + pop->n_projections; q++) {
            const har_projection_t *pr = &har_projections[q];
            const har_population_t *src = &har_populations[pr->source];
            const har_row_t *list = pr->delayed ? &prev[src->offset] : &now[src->offset];
            uint16_t n = pr->delayed ? n_prev[pr->source] : n_now[pr->source], s;
            int32_t scale = (int32_t)1 << pr->shift;
            for (s = 0; s < n; s++) {
                uint16_t k, end = pr->col_start[list[s] + 1];
                for (k = pr->col_start[list[s]]; k < end; k++) u[pr->row[k]] += pr->weight[k] * scale;
            }
        }
        n_now[p] = har_fired(u, pop, &now[pop->offset]); /* S[t] = [U[t] > thr] */
    }
    {
        const har_population_t *out = &har_populations[HAR_N_POPS - 1];
        uint16_t c, s = 0;
        for (c = 0; c < HAR_N_CLASSES; c++) {
            uint8_t fired = (uint8_t)(s < n_now[HAR_N_POPS - 1] && now[out->offset + s] == c);
            spikes[c] = fired;
            s = (uint16_t)(s + fired);
        }
    }
}
