/* The event-driven integer L2MU step (docs/integer-engine.md). */
#include "har_engine.h"

/* The leak needs an arithmetic right shift of negative numbers (implementation-defined in C99): refuse others. */
typedef char har_requires_arithmetic_shift[((-3) >> 1) == -2 ? 1 : -1];

#define HAR_HALF ((int64_t)1 << (HAR_BETA_BITS - 1))

void har_lane_reset(har_lane_t *lane) {
    unsigned i;
    for (i = 0; i < HAR_N_NEURONS; i++) lane->u[i] = 0;
}

/* Indices (within the population) of its neurons with U > threshold. */
static unsigned har_fired(const int32_t *u, const har_population_t *p, har_row_t *list) {
    unsigned i, n = 0, size = p->size;
    int32_t thr = p->threshold_q;
    for (i = 0; i < size; i++) {
        list[n] = (har_row_t)i;
        n += (unsigned)(u[i] > thr);
    }
    return n;
}

/* u[row[k]] += weight[k] << shift for the columns of every neuron in list. */
static void har_project(int32_t *u, const har_projection_t *pr, const har_row_t *list, unsigned n) {
    const uint16_t *start = pr->col_start;
    const har_row_t *row = pr->row;
    const int8_t *weight = pr->weight;
    unsigned shift = pr->shift, s;
    for (s = 0; s < n; s++) {
        unsigned k = start[list[s]], end = start[list[s] + 1];
        for (; k < end; k++) u[row[k]] += (int32_t)((uint32_t)(int32_t)weight[k] << shift);
    }
}

void har_lane_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS], uint8_t spikes[HAR_N_CLASSES]) {
    har_row_t prev[HAR_N_NEURONS], now[HAR_N_NEURONS]; /* spike lists, at each population's offset */
    unsigned n_prev[HAR_N_POPS], n_now[HAR_N_POPS], p, c;
    for (p = 0; p < HAR_N_POPS; p++) { /* S[t-1] of the populations read with a delay */
        const har_population_t *pop = &har_populations[p];
        n_prev[p] = pop->delayed_source ? har_fired(&lane->u[pop->offset], pop, &prev[pop->offset]) : 0;
    }
    for (p = 0; p < HAR_N_POPS; p++) {
        const har_population_t *pop = &har_populations[p];
        int32_t *u = &lane->u[pop->offset];
        int32_t beta = pop->beta_q, thr = pop->threshold_q;
        const int32_t *bias = pop->bias;
        unsigned i, size = pop->size, q;
        /* U = ((beta_q U + 2^14) >> 15) - R thr + b, with R = [U[t-1] > thr] */
        for (i = 0; i < size; i++) {
            int32_t old = u[i];
            int32_t v = (int32_t)(((int64_t)beta * old + HAR_HALF) >> HAR_BETA_BITS);
            if (old > thr) v -= thr;
            u[i] = bias ? v + bias[i] : v;
        }
        if (p == 0) { /* the channel populations: I_i = (w_i x_c(i)) << shift */
            unsigned shift = har_input_shift;
            for (i = 0; i < size; i++)
                u[i] += (int32_t)((uint32_t)((int32_t)har_input_weight[i] * x[har_input_channel[i]]) << shift);
        }
        for (q = pop->first_projection; q < (unsigned)pop->first_projection + pop->n_projections; q++) {
            const har_projection_t *pr = &har_projections[q];
            const har_population_t *src = &har_populations[pr->source];
            if (pr->delayed)
                har_project(u, pr, &prev[src->offset], n_prev[pr->source]);
            else
                har_project(u, pr, &now[src->offset], n_now[pr->source]);
        }
        n_now[p] = har_fired(u, pop, &now[pop->offset]); /* S[t] = [U[t] > thr] */
    }
    for (c = 0; c < HAR_N_CLASSES; c++) spikes[c] = 0;
    for (c = 0; c < n_now[HAR_N_POPS - 1]; c++) spikes[now[har_populations[HAR_N_POPS - 1].offset + c]] = 1;
}
