// har firmware harness: board functions for the bundle's main.cc (strong definitions of its weak
// har_board_read_sample() / har_board_report()), so that the generated main.cc runs unchanged on the host and
// under QEMU. Samples come from the file har_windows.bin (semihosting on Cortex-M): "HARW", then uint32 windows,
// uint32 steps, uint32 channels, then windows x steps x channels float32 (SI units), little-endian. Each window
// starts a new segment (har_restart()), so it gives exactly one decision per window (zero-state-per-window; for
// zero-state-per-stream each "window" is a segment of a stream, with a decision every HAR_HOP samples from its first
// full window on); at the end of the data: exit(0).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "har_inference.h"

#if defined(__arm__)
#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"

static void har_debug_log(const char* s) { fputs(s, stderr); }
// TFLM's cortex_m_generic DebugLog drops messages until a callback is registered.
__attribute__((constructor)) static void har_register_debug_log(void) { RegisterDebugLogCallback(har_debug_log); }
#endif

namespace {

FILE* g_in;
uint32_t g_windows, g_steps, g_window, g_step;

void open_input(void) {
  g_in = fopen("har_windows.bin", "rb");
  char magic[4];
  uint32_t channels = 0;
  if (g_in == nullptr || fread(magic, 1, 4, g_in) != 4 || memcmp(magic, "HARW", 4) != 0 ||
      fread(&g_windows, 4, 1, g_in) != 1 || fread(&g_steps, 4, 1, g_in) != 1 || fread(&channels, 4, 1, g_in) != 1 ||
      channels != HAR_CHANNELS) {
    printf("har_windows.bin: missing or not a HARW file for %d channels\n", HAR_CHANNELS);
    exit(2);
  }
}

}  // namespace

extern "C" int har_board_read_sample(float sample_si[HAR_CHANNELS]) {
  if (g_in == nullptr) open_input();
  if (g_window == g_windows) {
    printf("done %u windows\n", (unsigned)g_windows);
    exit(0);
  }
  if (g_step == 0) har_restart();  // a new segment: this window's decision comes from its samples alone
  if (fread(sample_si, sizeof(float), HAR_CHANNELS, g_in) != HAR_CHANNELS) {
    printf("har_windows.bin: truncated at window %u\n", (unsigned)g_window);
    exit(2);
  }
  if (++g_step == g_steps) {
    g_step = 0;
    ++g_window;
  }
  return 1;
}

extern "C" void har_board_report(const HarDecision* d) {
  printf("decision %d", d->class_index);
  for (int c = 0; c < HAR_NUM_CLASSES; ++c) printf(" %u", (unsigned)d->counts[c]);
  printf("\n");
}
