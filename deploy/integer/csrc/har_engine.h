/* The integer L2MU engine: one lane = one copy of the network state, advanced one int16 sample per step.
 * The arithmetic is the specification of docs/integer-engine.md (numpy reference: deploy/integer/reference.py).
 * C99, no malloc, no floating point, no library calls inside the step. */
#ifndef HAR_ENGINE_H
#define HAR_ENGINE_H

#include <stdint.h>

#include "har_model.h" /* generated: HAR_N_NEURONS, HAR_N_POPS, HAR_N_CLASSES, HAR_N_INPUTS, har_row_t */

#define HAR_BETA_BITS 15 /* beta_q = round(beta 2^15) */
#define HAR_INPUT_BITS 11 /* x_q = clip(round(z 2^11), -32768, 32767) */

/* Spikes of population `source` (this step's when it comes earlier in step order, else the previous step's) into
 * the population that owns this projection, as compressed columns:
 * a spike of source neuron j adds weight[k] << shift to target neuron row[k], k = col_start[j] .. col_start[j+1]-1. */
typedef struct {
    uint8_t source;  /* population index */
    uint8_t shift;
    const uint16_t *col_start; /* source size + 1 */
    const har_row_t *row;
    const int8_t *weight;
} har_projection_t;

typedef struct {
    uint16_t offset, size;       /* neurons offset .. offset+size-1 of the lane state */
    int32_t beta_q, threshold_q; /* Q15 leak; threshold in the population's units */
    const int32_t *bias;         /* NULL: no bias */
    uint8_t first_projection, n_projections;
} har_population_t;

extern const har_population_t har_populations[HAR_N_POPS];
extern const har_projection_t har_projections[];
extern const int8_t har_input_weight[];   /* channel population: I_i = (w[i] x[har_input_channel[i]]) << shift */
extern const uint8_t har_input_channel[];
extern const uint8_t har_input_shift;

/* The spike lists are this lane's S[t-1] at the start of a step and are overwritten population by population: a
 * projection that reads a population's previous spikes always belongs to a population at or before it in step
 * order (checked by the code generator), so it reads them before they are replaced. */
typedef struct {
    int32_t u[HAR_N_NEURONS];         /* every membrane, population after population */
    har_row_t spiked[HAR_N_NEURONS];  /* indices of the neurons that fired, at each population's offset */
    uint16_t n_spiked[HAR_N_POPS];
} har_lane_t;

void har_lane_reset(har_lane_t *lane);
/* One step on the sample x (loader channel order); spikes[c] = 1 where output neuron c fired. */
void har_lane_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS], uint8_t spikes[HAR_N_CLASSES]);

#endif
