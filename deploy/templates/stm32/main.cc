// Example firmware loop for the har bundle. Replace har_board_read_sample() with your IMU driver (SI units at
// HAR_SAMPLE_RATE_HZ) and har_board_report() with your UART/BLE output. Built as is, it first runs the golden
// test window (a real held-out recording) and checks the result against the tflite_micro host reference.
#include <stdio.h>

#include "har_golden.h"
#include "har_inference.h"

// Weak defaults so the example links on any board; override them in your board code.
extern "C" __attribute__((weak)) int har_board_read_sample(float sample_si[HAR_CHANNELS]) {
  (void)sample_si;
  return 0;  // 0: no sample available (block on your sensor's data-ready interrupt here)
}

extern "C" __attribute__((weak)) void har_board_report(const HarDecision* d) {
  printf("class %s confidence %.2f\r\n", kHarLabels[d->class_index], (double)d->confidence);
}

static int run_golden_window(void) {
  HarDecision d;
  int decided = 0;
  har_restart();
  for (int t = 0; t < HAR_WINDOW; ++t) decided = har_push_sample(kHarGoldenWindow[t], &d);
  har_restart();
  if (!decided) return -1;
  for (int c = 0; c < HAR_NUM_CLASSES; ++c) {
    if (d.counts[c] != kHarGoldenCounts[c]) return -2;
  }
  return 0;
}

int main(void) {
  const int status = har_init();
  if (status != 0) {
    printf("har_init failed: %d\r\n", status);
    return 1;
  }
  printf("golden window: %s\r\n", run_golden_window() == 0 ? "matches the host TFLM reference" : "MISMATCH");
  float sample[HAR_CHANNELS];
  HarDecision decision;
  for (;;) {
    if (!har_board_read_sample(sample)) continue;
    if (har_push_sample(sample, &decision) == 1) har_board_report(&decision);
  }
}
