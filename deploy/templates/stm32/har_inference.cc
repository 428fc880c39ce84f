// har: streaming L2MU inference on TensorFlow Lite Micro.
//
// The model is ONE time step: x_t (1, 6) int8 -> output spikes (1, C) int8, with the neuron state in resource
// variables inside the interpreter (MicroInterpreter::Reset zeroes them). Each lane is its own MicroInterpreter in
// its own arena; the model data and the op resolver are shared. Where the state starts is the deployment
// contract's reset rule, HAR_RESET_WINDOWS in har_model_data.h:
// - 1, zero-state-per-window: a window is HAR_WINDOW steps from the zero state and window k starts at sample
//   k * HAR_HOP of the segment, so HAR_LANES = ceil(HAR_WINDOW / HAR_HOP) windows overlap: lane k mod HAR_LANES runs
//   window k and is reset at its start; the decision when it completes.
// - 0, zero-state-per-stream (a `har train --stream` run): HAR_LANES = 1 lane, reset only at a segment start
//   (har_init, har_restart) and never inside a segment; a ring holds the output spikes of the last HAR_WINDOW
//   steps, and every HAR_HOP samples from the first full window on the decision is over their sum.
#include "har_inference.h"

#include <math.h>
#include <string.h>

#include <new>

#include "har_model_data.h"
#include "har_op_resolver.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_resource_variable.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace {

alignas(16) uint8_t g_arena[HAR_LANES][HAR_ARENA_BYTES];
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_storage[HAR_LANES][sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_lane[HAR_LANES];
HarOpResolver g_resolver;
uint32_t g_index;                      // samples since the segment started

#if HAR_RESET_WINDOWS
struct LaneWindow {
  int32_t start;                       // sample index where the lane's window began; -1 while idle
  uint16_t counts[HAR_NUM_CLASSES];
};
LaneWindow g_window[HAR_LANES];
#else
uint8_t g_ring[HAR_WINDOW][HAR_NUM_CLASSES];  // output spikes (0/1) of the last HAR_WINDOW steps, row = step % window
uint16_t g_counts[HAR_NUM_CLASSES];           // n_c = the sum of the ring's rows
#endif

int8_t quantize_input(float z) {
  // q = round(z / s) + z0, clamped to int8; rintf rounds half to even, as the host reference (numpy) does
  float q = rintf(z / HAR_INPUT_SCALE + (float)HAR_INPUT_ZERO_POINT);
  if (q < -128.0f) return -128;
  if (q > 127.0f) return 127;
  return (int8_t)q;
}

bool output_spike(int8_t q) {
  // x = s (q - z0); spike when x > HAR_SPIKE_THRESHOLD (the deployment contract's spike rule)
  return HAR_OUTPUT_SCALE * (float)(q - HAR_OUTPUT_ZERO_POINT) > HAR_SPIKE_THRESHOLD;
}

// One step of a lane on the quantised sample x; its output spikes (0/1) in spikes. false if Invoke() failed.
bool step_lane(int lane, const int8_t x[HAR_CHANNELS], uint8_t spikes[HAR_NUM_CLASSES]) {
  memcpy(g_lane[lane]->input(0)->data.int8, x, HAR_CHANNELS);
  if (g_lane[lane]->Invoke() != kTfLiteOk) return false;
  const int8_t* out = g_lane[lane]->output(0)->data.int8;
  for (int c = 0; c < HAR_NUM_CLASSES; ++c) spikes[c] = output_spike(out[c]) ? 1 : 0;
  return true;
}

void decide(const uint16_t counts[HAR_NUM_CLASSES], HarDecision* d) {
  // class = argmax_c n_c (lowest index on ties); confidence = max_c n_c / sum_c n_c, 0 without spikes
  uint32_t total = 0;
  int best = 0;
  for (int c = 0; c < HAR_NUM_CLASSES; ++c) {
    d->counts[c] = counts[c];
    total += counts[c];
    if (counts[c] > counts[best]) best = c;
  }
  d->class_index = best;
  d->confidence = total ? (float)counts[best] / (float)total : 0.0f;
}

#if HAR_RESET_WINDOWS
int push_quantized(const int8_t x[HAR_CHANNELS], HarDecision* decision) {
  const uint32_t i = g_index++;
  if (i % HAR_HOP == 0) {  // window i / HAR_HOP starts here, on its lane, from the zero state
    const int lane = (int)((i / HAR_HOP) % HAR_LANES);
    g_lane[lane]->Reset();
    g_window[lane].start = (int32_t)i;
    memset(g_window[lane].counts, 0, sizeof(g_window[lane].counts));
  }
  int decided = 0;
  for (int lane = 0; lane < HAR_LANES; ++lane) {
    LaneWindow& w = g_window[lane];
    if (w.start < 0) continue;
    uint8_t spikes[HAR_NUM_CLASSES];
    if (!step_lane(lane, x, spikes)) return -5;
    for (int c = 0; c < HAR_NUM_CLASSES; ++c) w.counts[c] += spikes[c];
    if ((int32_t)i - w.start + 1 == HAR_WINDOW) {
      decide(w.counts, decision);
      w.start = -1;
      decided = 1;
    }
  }
  return decided;
}
#else
int push_quantized(const int8_t x[HAR_CHANNELS], HarDecision* decision) {
  const uint32_t i = g_index++;
  uint8_t* row = g_ring[i % HAR_WINDOW];  // from the second window on it holds step i - HAR_WINDOW
  uint8_t spikes[HAR_NUM_CLASSES];
  if (!step_lane(0, x, spikes)) return -5;
  for (int c = 0; c < HAR_NUM_CLASSES; ++c) {
    // n_c[i] = sum_{k = i - HAR_WINDOW + 1 .. i} s_c[k]: step i enters the ring, step i - HAR_WINDOW leaves it
    if (i >= HAR_WINDOW) g_counts[c] = (uint16_t)(g_counts[c] - row[c]);
    g_counts[c] = (uint16_t)(g_counts[c] + spikes[c]);
    row[c] = spikes[c];
  }
  if (i + 1 < HAR_WINDOW || (i + 1) % HAR_HOP != 0) return 0;
  decide(g_counts, decision);
  return 1;
}
#endif

}  // namespace

int har_init(void) {
  const tflite::Model* model = tflite::GetModel(g_har_model);
  if (model->version() != TFLITE_SCHEMA_VERSION) return -1;
  if (har_register_ops(g_resolver) != kTfLiteOk) return -2;
  for (int lane = 0; lane < HAR_LANES; ++lane) {
    tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(g_arena[lane], HAR_ARENA_BYTES);
    if (allocator == nullptr) return -3;
    tflite::MicroResourceVariables* variables =
        tflite::MicroResourceVariables::Create(allocator, HAR_NUM_RESOURCE_VARIABLES);
    if (variables == nullptr) return -3;
    g_lane[lane] = new (g_interpreter_storage[lane]) tflite::MicroInterpreter(model, g_resolver, allocator, variables);
    if (g_lane[lane]->AllocateTensors() != kTfLiteOk) return -3;
    const TfLiteTensor* in = g_lane[lane]->input(0);
    const TfLiteTensor* out = g_lane[lane]->output(0);
    if (in->type != kTfLiteInt8 || out->type != kTfLiteInt8 || in->bytes != HAR_CHANNELS ||
        out->bytes != HAR_NUM_CLASSES) {
      return -4;
    }
  }
  har_restart();
  return 0;
}

void har_restart(void) {
  g_index = 0;
#if HAR_RESET_WINDOWS
  for (int lane = 0; lane < HAR_LANES; ++lane) g_window[lane].start = -1;  // each lane resets at its window start
#else
  g_lane[0]->Reset();  // a segment start: the one lane back to the zero state, the ring empty
  memset(g_counts, 0, sizeof(g_counts));
#endif
}

int har_push_sample(const float sample_si[HAR_CHANNELS], HarDecision* decision) {
  int8_t x[HAR_CHANNELS];
  for (int c = 0; c < HAR_CHANNELS; ++c) {
    x[c] = quantize_input((sample_si[c] - kHarMean[c]) / kHarStd[c]);  // z = (x - mean) / std
  }
  return push_quantized(x, decision);
}
