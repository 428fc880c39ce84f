/* Lanes and the decision rule of the deployment contract over the integer engine.
 * Window k starts at sample k * hop; with window resets, lane k mod lanes takes it from the zero state and a
 * decision is made when it completes (the contract's zero-state-per-window). Without resets (zero-state-per-stream;
 * lanes must be 1) the state runs on from the segment start and, once `window` samples have passed, a decision is
 * made every `hop` samples over the output spikes of the last `window` steps (a ring of HAR_MAX_WINDOW steps).
 * class = argmax of the summed output spikes, ties to the lowest index. */
#ifndef HAR_STREAM_H
#define HAR_STREAM_H

#include "har_engine.h"

#ifndef HAR_MAX_LANES
#define HAR_MAX_LANES 2
#endif
#ifndef HAR_MAX_WINDOW
#define HAR_MAX_WINDOW 1 /* the ring of the no-reset rule; set it to the window for such runs */
#endif

typedef struct {
    uint8_t class_index;
    uint16_t counts[HAR_N_CLASSES];
    uint16_t total; /* confidence = counts[class_index] / total (0 without spikes) */
} har_decision_t;

typedef struct {
    har_lane_t lane[HAR_MAX_LANES];
    uint16_t counts[HAR_MAX_LANES][HAR_N_CLASSES];
    int32_t start[HAR_MAX_LANES]; /* sample index where the lane's window began; -1 while idle */
    uint8_t ring[HAR_MAX_WINDOW][HAR_N_CLASSES]; /* no-reset rule: output spikes of the last `window` steps */
    uint32_t index;
    uint16_t window, hop;
    uint8_t lanes, reset_windows;
} har_stream_t;

/* 0 on success; -1 when the parameters are inconsistent (lanes != ceil(window / hop) with resets; lanes != 1 or
 * window > HAR_MAX_WINDOW without; lanes > HAR_MAX_LANES). */
int har_stream_init(har_stream_t *s, uint16_t window, uint16_t hop, uint8_t lanes, uint8_t reset_windows);
/* Start a new segment: every lane idle, the next sample opens window 0. */
void har_stream_restart(har_stream_t *s);
/* Feed one sample; returns 1 and fills *d when a window completes, else 0. */
int har_stream_push(har_stream_t *s, const int16_t x[HAR_N_INPUTS], har_decision_t *d);

#endif
