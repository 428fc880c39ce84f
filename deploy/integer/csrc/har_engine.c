/* The event-driven integer L2MU step (docs/integer-engine.md). */
#include "har_engine.h"

/* The leak needs an arithmetic right shift of negative numbers (implementation-defined in C99): refuse others. */
typedef char har_requires_arithmetic_shift[((-3) >> 1) == -2 ? 1 : -1];

#define HAR_HALF ((int64_t)1 << (HAR_BETA_BITS - 1))


/* Indices (within the population) of its neurons with U > threshold. */
static unsigned har_fired(const int32_t *u, const har_population_t *p, har_row_t *list) {
    unsigned i, size = p->size;
    int32_t thr = p->threshold_q;
    har_row_t *next = list;
    for (i = 0; i < size; i++) {
        *next = (har_row_t)i;
        next += u[i] > thr; /* branch-free: keep the index only if the neuron fired */
    }
    return (unsigned)(next - list);
}

void har_lane_reset(har_lane_t *lane) {
    unsigned i, p;
    for (i = 0; i < HAR_N_NEURONS; i++) lane->u[i] = 0;
    for (p = 0; p < HAR_N_POPS; p++) { /* S[-1] = [0 > thr] */
        const har_population_t *pop = &har_populations[p];
        lane->n_spiked[p] = (uint16_t)har_fired(&lane->u[pop->offset], pop, &lane->spiked[pop->offset]);
    }
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
    unsigned p, c;
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
            u[i] = old > thr ? v - thr : v;
        }
        if (bias)
            for (i = 0; i < size; i++) u[i] += bias[i];
        if (p == 0) { /* the channel populations: I_i = (w_i x_c(i)) << shift */
            unsigned shift = har_input_shift;
            for (i = 0; i < size; i++)
                u[i] += (int32_t)((uint32_t)((int32_t)har_input_weight[i] * x[har_input_channel[i]]) << shift);
        }
        /* delayed or not, a source's list holds the spikes the projection needs (see har_lane_t) */
        for (q = pop->first_projection; q < (unsigned)pop->first_projection + pop->n_projections; q++) {
            const har_projection_t *pr = &har_projections[q];
            har_project(u, pr, &lane->spiked[har_populations[pr->source].offset], lane->n_spiked[pr->source]);
        }
        lane->n_spiked[p] = (uint16_t)har_fired(u, pop, &lane->spiked[pop->offset]); /* S[t] = [U[t] > thr] */
    }
    {
        const har_population_t *out = &har_populations[HAR_N_POPS - 1];
        for (c = 0; c < HAR_N_CLASSES; c++) spikes[c] = 0;
        for (c = 0; c < lane->n_spiked[HAR_N_POPS - 1]; c++) spikes[lane->spiked[out->offset + c]] = 1;
    }
}
