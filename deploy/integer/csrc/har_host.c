/* Host-side entry points for ctypes (not linked into firmware): sizes and a batch runner over whole windows. */
#include <stddef.h>

#include "har_stream.h"

size_t har_lane_bytes(void) { return sizeof(har_lane_t); }
size_t har_stream_bytes(void) { return sizeof(har_stream_t); }
unsigned har_n_neurons(void) { return HAR_N_NEURONS; }
unsigned har_n_classes(void) { return HAR_N_CLASSES; }

/* Run n windows x (n, steps, HAR_N_INPUTS), each from the zero state: output spike counts (n, HAR_N_CLASSES) and,
 * when membranes is not NULL, every membrane after every step (n, steps, HAR_N_NEURONS). */
void har_run_windows(const int16_t *x, uint32_t n, uint32_t steps, uint16_t *counts, int32_t *membranes) {
    har_lane_t lane;
    uint8_t spikes[HAR_N_CLASSES];
    uint32_t w, t;
    uint16_t c, i;
    for (w = 0; w < n; w++) {
        har_lane_reset(&lane);
        for (c = 0; c < HAR_N_CLASSES; c++) counts[w * HAR_N_CLASSES + c] = 0;
        for (t = 0; t < steps; t++) {
            har_lane_step(&lane, &x[(w * steps + t) * HAR_N_INPUTS], spikes);
            for (c = 0; c < HAR_N_CLASSES; c++) counts[w * HAR_N_CLASSES + c] = (uint16_t)(counts[w * HAR_N_CLASSES + c] + spikes[c]);
            if (membranes)
                for (i = 0; i < HAR_N_NEURONS; i++) membranes[(w * steps + t) * HAR_N_NEURONS + i] = lane.u[i];
        }
    }
}
