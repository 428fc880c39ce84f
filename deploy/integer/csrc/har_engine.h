/* The integer L2MU engine: one lane = one copy of the network state, advanced one int16 sample per step.
 * The arithmetic is the specification of docs/integer-engine.md (numpy reference: deploy/integer/reference.py).
 * C99, no malloc, no floating point, no library calls inside the step. */
#ifndef HAR_ENGINE_H
#define HAR_ENGINE_H

#include <stdint.h>

#include "har_model.h" /* generated: HAR_N_NEURONS, HAR_N_POPS, HAR_N_CLASSES, HAR_N_INPUTS, HAR_OUTPUT_OFFSET,
                          har_row_t */

#define HAR_BETA_BITS 15 /* beta_q = round(beta 2^15) */
#define HAR_INPUT_BITS 11 /* x_q = clip(round(z 2^11), -32768, 32767) */

/* The spike lists are this lane's S[t-1] at the start of a step and are overwritten population by population: a
 * projection that reads a population's previous spikes always belongs to a population at or before it in step
 * order (checked by the code generator), so it reads them before they are replaced. */
typedef struct {
    int32_t u[HAR_N_NEURONS];        /* U[t]: every membrane after the last step, population after population */
    int32_t v[HAR_N_NEURONS];        /* what the next step's membranes start from (har_fire_pass) */
    har_row_t spiked[HAR_N_NEURONS]; /* indices of the neurons that fired, at each population's offset */
    uint16_t n_spiked[HAR_N_POPS];
} har_lane_t;

void har_lane_reset(har_lane_t *lane);
/* One step on the sample x (loader channel order); spikes[c] = 1 where output neuron c fired. */
void har_lane_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS], uint8_t spikes[HAR_N_CLASSES]);

/* The generated model (har_model.c): per population an instance of har_fire_pass (its spike count), and the step:
 * every population in step order adds its projections' currents (instances of har_add_columns) and fires. */
typedef unsigned (*har_fire_t)(har_lane_t *lane, const int16_t x[HAR_N_INPUTS]);
extern const har_fire_t har_fire[HAR_N_POPS];
void har_model_step(har_lane_t *lane, const int16_t x[HAR_N_INPUTS]);

/* The templates below are instantiated by har_model.c with each projection's and population's constants (sizes,
 * shifts, leaks, thresholds), which become immediates once inlined. */
#if defined(__GNUC__)
#define HAR_INLINE static inline __attribute__((always_inline))
#else
#define HAR_INLINE static inline
#endif

typedef struct {
    har_row_t row;
    int8_t weight;
} har_synapse_t;

/* v[row] += weight << shift, modulo 2^32: the membrane is in int32 once all its currents are in */
HAR_INLINE void har_add_synapse(int32_t *v, const har_synapse_t *s, unsigned shift) {
    v[s->row] = (int32_t)((uint32_t)v[s->row] + ((uint32_t)(int32_t)s->weight << shift));
}

/* The n spikes of list into a target's membranes v through a matrix stored as compressed columns: source neuron j
 * adds synapse[col_start[j]] .. synapse[col_start[j+1] - 1] (zero weights are not stored; may_be_empty: some column
 * has none). Eight synapses per loop turn, entered at the remainder (Duff's device). */
HAR_INLINE void har_add_columns(int32_t *v, const har_row_t *list, unsigned n, const uint16_t *col_start,
                                const har_synapse_t *synapse, unsigned shift, int may_be_empty) {
    unsigned k;
    for (k = 0; k < n; k++) {
        const har_synapse_t *s = synapse + col_start[list[k]];
        unsigned count = col_start[list[k] + 1] - col_start[list[k]], turns = (count + 7u) / 8u;
        if (may_be_empty && count == 0) continue;
        switch (count % 8u) {
        case 0: do { har_add_synapse(v, s++, shift); /* fall through */
        case 7:      har_add_synapse(v, s++, shift); /* fall through */
        case 6:      har_add_synapse(v, s++, shift); /* fall through */
        case 5:      har_add_synapse(v, s++, shift); /* fall through */
        case 4:      har_add_synapse(v, s++, shift); /* fall through */
        case 3:      har_add_synapse(v, s++, shift); /* fall through */
        case 2:      har_add_synapse(v, s++, shift); /* fall through */
        case 1:      har_add_synapse(v, s++, shift);
                } while (--turns);
        }
    }
}

/* (beta_q m + 2^14) >> 15, arithmetic shift, the product in 64 bits. On Thumb-2 in three instructions: lsrs leaves
 * bit 14 of the product (the rounding half) in the carry, adc adds it to bits 15..46. */
HAR_INLINE int32_t har_leak(int32_t beta_q, int32_t m) {
#if defined(__GNUC__) && defined(__thumb2__)
    int32_t lo, hi, y;
    __asm__("smull %0, %1, %3, %4\n\t"
            "lsrs %0, %0, #15\n\t"
            "adc %2, %0, %1, lsl #17"
            : "=&r"(lo), "=&r"(hi), "=r"(y)
            : "r"(m), "r"(beta_q)
            : "cc");
    return y;
#else
    return (int32_t)(((int64_t)beta_q * m + ((int64_t)1 << (HAR_BETA_BITS - 1))) >> HAR_BETA_BITS);
#endif
}

/* The input gains of the channel populations: I_i = (weight[i] x[channel[i]]) << shift. */
typedef struct {
    const int8_t *weight;
    const uint8_t *channel;
    unsigned shift;
} har_input_t;

/* Neuron i of a population whose spike currents are in v (in: its input gains, or NULL):
 *   U[t] = v[i] (+ I_i), kept in u[i];  S[t] = [U[t] > thr], appended to list (n entries so far);
 *   v[i] = ((beta_q U[t] + 2^14) >> 15) - S[t] thr + b[i], the part of U[t+1] known now (R[t+1] = S[t]). */
HAR_INLINE unsigned har_fire_neuron(int32_t *u, int32_t *v, har_row_t *list, unsigned n, unsigned i, int32_t beta_q,
                                    int32_t thr, const int32_t *bias, const int16_t *x, const har_input_t *in) {
    int32_t m = v[i], y;
    if (in) m = (int32_t)((uint32_t)m + ((uint32_t)(in->weight[i] * x[in->channel[i]]) << in->shift));
    y = har_leak(beta_q, m);
    u[i] = m;
    if (m > thr) {
        list[n++] = (har_row_t)i;
        y -= thr;
    }
    v[i] = bias ? y + bias[i] : y;
    return n;
}

/* Every neuron of a population, four per loop turn; returns the number that fired. */
HAR_INLINE unsigned har_fire_pass(int32_t *u, int32_t *v, har_row_t *list, unsigned size, int32_t beta_q,
                                  int32_t thr, const int32_t *bias, const int16_t *x, const har_input_t *in) {
    unsigned i, n = 0;
    for (i = 0; i < size % 4u; i++) n = har_fire_neuron(u, v, list, n, i, beta_q, thr, bias, x, in);
    for (; i < size; i += 4) {
        n = har_fire_neuron(u, v, list, n, i, beta_q, thr, bias, x, in);
        n = har_fire_neuron(u, v, list, n, i + 1, beta_q, thr, bias, x, in);
        n = har_fire_neuron(u, v, list, n, i + 2, beta_q, thr, bias, x, in);
        n = har_fire_neuron(u, v, list, n, i + 3, beta_q, thr, bias, x, in);
    }
    return n;
}

#endif
