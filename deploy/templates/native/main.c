/* Example firmware main for the har integer engine (generated project, see README.md): read raw IMU samples from
 * the board, normalise and quantise them at the boundary (the only floating point), feed the lanes, report every
 * decision. Replace the two weak board functions with your drivers. */
#include <math.h>

#include "har_config.h"
#include "har_stream.h"

/* One raw sample in SI units, loader channel order (acc x, y, z in m/s^2, gyro x, y, z in rad/s); 0 = no more. */
__attribute__((weak)) int har_board_read_sample(float raw[HAR_N_INPUTS]) {
    (void)raw;
    return 0;
}

__attribute__((weak)) void har_board_report(const har_decision_t *d) { (void)d; }

static har_stream_t stream;

/* x_q = clip(round_half_even(z 2^11), -32768, 32767), z = (x - mean) / std */
static int16_t har_quantise(float raw, float mean, float std) {
    float z = (raw - mean) / std * (float)(1 << HAR_INPUT_BITS);
    if (z > 32767.0f) return 32767;
    if (z < -32768.0f) return -32768;
    return (int16_t)lrintf(z);
}

int main(void) {
    float raw[HAR_N_INPUTS];
    int16_t x[HAR_N_INPUTS];
    har_decision_t d;
    unsigned c;
    if (har_stream_init(&stream, HAR_WINDOW, HAR_HOP, HAR_LANES, HAR_RESET_WINDOWS) != 0) return 1;
    while (har_board_read_sample(raw)) {
        for (c = 0; c < HAR_N_INPUTS; c++) x[c] = har_quantise(raw[c], har_mean[c], har_std[c]);
        if (har_stream_push(&stream, x, &d)) har_board_report(&d);
    }
    return 0;
}
