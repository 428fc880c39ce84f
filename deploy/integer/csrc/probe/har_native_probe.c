/* Test firmware for the integer engine (not part of a user's project): reads windows from stdin (semihosting),
 * 1) steps one lane through each window from the zero state, one prof_begin()/prof_end() region per step, and
 *    writes every membrane after every step to stdout;
 * 2) feeds the same samples as one segment to the lanes of har_stream, one region per har_stream_push(), and
 *    writes each decision (class, counts).
 * stdin: uint32 n_windows, steps, window, hop, lanes, reset_windows; then n_windows * steps * HAR_N_INPUTS int16
 * samples. */
#include <stdio.h>
#include <stdlib.h>

#include "har_stream.h"
#include "prof.h"

#define HAR_PROBE_MAX_SAMPLES 4096

static int16_t samples[HAR_PROBE_MAX_SAMPLES][HAR_N_INPUTS];
static har_stream_t stream;

static int read_u32(uint32_t *v) { return fread(v, sizeof *v, 1, stdin) == 1 ? 0 : -1; }

int main(void) {
    uint32_t n, steps, window, hop, lanes, reset, i;
    har_decision_t d;
    uint8_t spikes[HAR_N_CLASSES];
    if (read_u32(&n) || read_u32(&steps) || read_u32(&window) || read_u32(&hop) || read_u32(&lanes) || read_u32(&reset)) return 2;
    if (n * steps > HAR_PROBE_MAX_SAMPLES) return 2;
    if (fread(samples, sizeof samples[0], n * steps, stdin) != n * steps) return 2;
    for (i = 0; i < n * steps; i++) {
        if (i % steps == 0) har_lane_reset(&stream.lane[0]);
        prof_begin();
        har_lane_step(&stream.lane[0], samples[i], spikes);
        prof_end();
        fwrite(stream.lane[0].u, sizeof stream.lane[0].u, 1, stdout);
    }
    if (har_stream_init(&stream, (uint16_t)window, (uint16_t)hop, (uint8_t)lanes, (uint8_t)reset) != 0) return 3;
    for (i = 0; i < n * steps; i++) {
        int decided;
        prof_begin();
        decided = har_stream_push(&stream, samples[i], &d);
        prof_end();
        if (decided) {
            fwrite(&d.class_index, 1, 1, stdout);
            fwrite(d.counts, sizeof d.counts, 1, stdout);
        }
    }
    fflush(stdout);
    return 0;
}
