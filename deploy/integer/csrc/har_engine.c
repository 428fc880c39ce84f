/* The event-driven integer L2MU step (docs/integer-engine.md); the step itself is generated (har_model.c). */
#include "har_engine.h"

/* The leak needs an arithmetic right shift of negative numbers (implementation-defined in C99): refuse others. */
typedef char har_requires_arithmetic_shift[((-3) >> 1) == -2 ? 1 : -1];

static const int16_t har_no_input[HAR_N_INPUTS];

void har_lane_reset(har_lane_t *lane) {
    unsigned i, p;
    for (i = 0; i < HAR_N_NEURONS; i++) lane->v[i] = 0;
    for (p = 0; p < HAR_N_POPS; p++) /* from U[-1] = 0: S[-1] and what step 0 starts from */
        lane->n_spiked[p] = (uint16_t)har_fire[p](lane, har_no_input);
}

void har_lane_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS], uint8_t spikes[HAR_N_CLASSES]) {
    unsigned c;
    har_model_step(lane, x);
    for (c = 0; c < HAR_N_CLASSES; c++) spikes[c] = 0;
    for (c = 0; c < lane->n_spiked[HAR_N_POPS - 1]; c++) spikes[lane->spiked[HAR_OUTPUT_OFFSET + c]] = 1;
}
