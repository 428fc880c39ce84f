#include "har_stream.h"

int har_stream_init(har_stream_t *s, uint16_t window, uint16_t hop, uint8_t lanes, uint8_t reset_windows) {
    if (window == 0 || hop == 0 || lanes == 0 || lanes > HAR_MAX_LANES) return -1;
    if (reset_windows ? lanes != (window + hop - 1) / hop : (lanes != 1 || window > HAR_MAX_WINDOW)) return -1;
    s->window = window;
    s->hop = hop;
    s->lanes = lanes;
    s->reset_windows = reset_windows;
    har_stream_restart(s);
    return 0;
}

void har_stream_restart(har_stream_t *s) {
    uint8_t l;
    uint16_t c;
    s->index = 0;
    for (l = 0; l < HAR_MAX_LANES; l++) {
        s->start[l] = -1;
        har_lane_reset(&s->lane[l]);
    }
    for (c = 0; c < HAR_N_CLASSES; c++) s->counts[0][c] = 0;
}

static void har_decide(const uint16_t counts[HAR_N_CLASSES], har_decision_t *d) {
    uint16_t c;
    d->class_index = 0;
    d->total = 0;
    for (c = 0; c < HAR_N_CLASSES; c++) {
        d->counts[c] = counts[c];
        d->total = (uint16_t)(d->total + counts[c]);
        if (counts[c] > counts[d->class_index]) d->class_index = (uint8_t)c;
    }
}

/* zero-state-per-stream: one lane, never reset inside a segment; n_c = the last `window` output spikes */
static int har_stream_push_running(har_stream_t *s, const int16_t x[HAR_N_INPUTS], har_decision_t *d) {
    uint8_t *slot = s->ring[s->index % s->window], spikes[HAR_N_CLASSES];
    uint16_t c;
    har_lane_step(&s->lane[0], x, spikes);
    for (c = 0; c < HAR_N_CLASSES; c++) {
        if (s->index >= s->window) s->counts[0][c] = (uint16_t)(s->counts[0][c] - slot[c]); /* leaves the ring */
        s->counts[0][c] = (uint16_t)(s->counts[0][c] + spikes[c]);
        slot[c] = spikes[c];
    }
    s->index++;
    if (s->index < s->window || s->index % s->hop != 0) return 0;
    har_decide(s->counts[0], d);
    return 1;
}

int har_stream_push(har_stream_t *s, const int16_t x[HAR_N_INPUTS], har_decision_t *d) {
    uint8_t l, spikes[HAR_N_CLASSES];
    uint16_t c;
    int decided = 0;
    if (!s->reset_windows) return har_stream_push_running(s, x, d);
    if (s->index % s->hop == 0) { /* window index / hop opens here */
        l = (uint8_t)((s->index / s->hop) % s->lanes);
        har_lane_reset(&s->lane[l]);
        s->start[l] = (int32_t)s->index;
        for (c = 0; c < HAR_N_CLASSES; c++) s->counts[l][c] = 0;
    }
    for (l = 0; l < s->lanes; l++) {
        if (s->start[l] < 0) continue;
        har_lane_step(&s->lane[l], x, spikes);
        for (c = 0; c < HAR_N_CLASSES; c++) s->counts[l][c] = (uint16_t)(s->counts[l][c] + spikes[c]);
        if (s->index - (uint32_t)s->start[l] + 1 == s->window) {
            har_decide(s->counts[l], d);
            decided = 1;
            s->start[l] = -1;
        }
    }
    s->index++;
    return decided;
}
