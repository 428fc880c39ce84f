// har: streaming L2MU inference on TensorFlow Lite Micro. One call per 6-axis sample; a decision every HAR_HOP
// samples once the first window (HAR_WINDOW samples) is full, under the deployment contract's reset rule
// (HAR_RESET_WINDOWS in har_model_data.h; har_inference.cc describes both).
#pragma once

#include <stdint.h>

#include "har_model_data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  int class_index;                     // argmax of the summed output spikes (ties: lowest index)
  float confidence;                    // max count / total count; 0 when the window produced no spike
  uint16_t counts[HAR_NUM_CLASSES];    // output spikes per class summed over the last HAR_WINDOW steps
} HarDecision;

// Builds HAR_LANES interpreters, each in its own arena. Returns 0 on success, a negative code otherwise:
// -1 model schema version mismatch, -2 op registration failed, -3 AllocateTensors failed (arena too small),
// -4 unexpected input/output tensor type or shape.
int har_init(void);

// One sample in SI units, loader channel order: acc_x, acc_y, acc_z (m/s^2), gyro_x, gyro_y, gyro_z (rad/s),
// at HAR_SAMPLE_RATE_HZ. Returns 1 and fills *decision when a decision is due, 0 when not, -5 if Invoke failed.
int har_push_sample(const float sample_si[HAR_CHANNELS], HarDecision* decision);

// Starts a new segment (the stream's start, a gap, a reconnect): per window, every lane idles until its next window
// start; per stream, the lane goes back to the zero state and the ring empties.
void har_restart(void);

#ifdef __cplusplus
}
#endif
