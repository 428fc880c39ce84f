"""Float L2MU weights (a trained, possibly pruned run) -> the integer L2MU of deploy.integer.model.

Scales are powers of two: a matrix with largest magnitude a gets k = floor(log2(127 / a)), so w_q = round(W 2^k)
uses the int8 range and a zero weight stays zero (pruning costs nothing). A population's fraction bits are the
largest k into it plus up to GUARD_BITS more, as many as the worst-case membrane leaves room for in int32.
"""

from __future__ import annotations

import math

import numpy as np

from deploy.integer.model import (BETA_BITS, INPUT_BITS, INT32, InputProjection, IntegerL2MU, Population,
                                  Projection)
from training.config import L2MUConfig
from training.errors import ExitCode, HarError
from training.l2mu_layout import MODEL_CHANNEL_ORDER
from training.network import INPUT, Network, Synapse, describe

GUARD_BITS = 12  # extra fraction bits below the finest weight scale: leak rounding error ~2^-(k + 12) per step
INT8_MAX = 127


def power_of_two_exponent(w: np.ndarray) -> int:
    """k = floor(log2(127 / max|W|)), so that max |W 2^k| <= 127; 0 for an all-zero matrix."""
    top = float(np.max(np.abs(w))) if w.size else 0.0
    return math.floor(math.log2(INT8_MAX / top)) if top > 0 else 0


def to_int8(w: np.ndarray, k: int) -> np.ndarray:
    return np.clip(np.rint(np.asarray(w, np.float64) * 2.0**k), -INT8_MAX, INT8_MAX).astype(np.int8)


def full_matrix(net: Network, s: Synapse, stored: np.ndarray) -> np.ndarray:
    """The (target size, source size) matrix of a synapse between populations: a shared per-memory-channel block
    repeated on the diagonal (I_m,k = block s_k for every channel k), a dense matrix as stored."""
    if s.form == "per_memory_channel":
        return np.kron(np.eye(net.memory_channels), np.reshape(stored, net.shape(s)))
    return stored


def memory_matrices(cfg: L2MUConfig, a_bar: np.ndarray, b_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A_bar, B_bar as one (M d, M d) and one (M d, M) matrix: I_m,k = A_bar s_m,k[t-1] + B_bar s_u,k[t] per channel k."""
    net = describe(cfg)
    return full_matrix(net, net.synapse("A_bar"), a_bar), full_matrix(net, net.synapse("B_bar"), b_bar)


def _matrices(net: Network, w: dict[str, np.ndarray]) -> list[tuple[str, str, bool, np.ndarray]]:
    """(target, source, delayed, float matrix) of every synapse between populations, in step order
    (training/network.py)."""
    return [(s.target, s.source, s.delay == 1, full_matrix(net, s, w[s.weight_key]))
            for s in net.synapses if s.source != INPUT]


def _neuron(cfg: L2MUConfig, w: dict[str, np.ndarray], pop: str) -> tuple[float, float]:
    beta, thr = cfg.neuron_params[pop]
    beta = float(np.clip(w.get(f"lif.{pop}.beta", beta), 0.0, 1.0))  # snnTorch clamps beta to [0, 1]
    return beta, float(w.get(f"lif.{pop}.threshold", thr))


def quantize_l2mu(cfg: L2MUConfig, w: dict[str, np.ndarray]) -> IntegerL2MU:
    if cfg.neuron != "leaky":
        raise HarError("the integer engine implements the leaky neuron law only; this run uses synaptic neurons", ExitCode.DOMAIN)
    P = cfg.pop_per_channel
    net = describe(cfg)
    biases = {s.target: w[s.bias_key].reshape(-1) for s in net.synapses if s.bias}
    gains = next(s for s in net.synapses if s.source == INPUT)  # I_c = w_c x_c + b_c into the per-channel populations
    w_in = w[gains.weight_key]
    k_in = power_of_two_exponent(w_in)
    scaled = [(t, s, d, m, power_of_two_exponent(m)) for t, s, d, m in _matrices(net, w)]
    mats = [entry for entry in scaled if np.any(to_int8(entry[3], entry[4]))]  # all-zero matrices are dropped
    pops, projections = [], []
    for name, size in net.sizes().items():
        beta, thr = _neuron(cfg, w, name)
        into = [m for m in mats if m[0] == name]
        bias = np.asarray(biases.get(name, np.zeros(size)), np.float64)
        if name == gains.target:
            base = k_in + INPUT_BITS
            peak = np.abs(w_in).reshape(-1) * 2.0 ** (15 - INPUT_BITS) + np.abs(bias)  # |x_q| <= 2^15
        else:
            base = max((k for *_, k in into), default=0)
            peak = np.abs(bias) + sum(np.abs(to_int8(m, k).astype(np.float64)).sum(1) * 2.0**-k for *_, m, k in into)
        # |U| <= max|I| / (1 - beta) + thr; leave one bit of int32 headroom
        bound = float(np.max(peak, initial=0.0)) / max(1.0 - beta, 2.0**-BETA_BITS) + thr
        room = math.floor(math.log2(2.0 ** (INT32[1].bit_length() - 1) / bound)) - base if bound > 0 else GUARD_BITS
        frac = base + min(GUARD_BITS, room)
        if room < 0:
            raise HarError(f"integer L2MU: population {name} cannot hold its worst-case membrane in int32", ExitCode.DOMAIN)
        scale = 2.0**frac
        pops.append(Population(name, size, frac, round(beta * 2**BETA_BITS), round(thr * scale),
                               np.rint(bias * scale).astype(np.int32)))
        projections += [Projection(t, s, d, to_int8(m, k), frac - k) for t, s, d, m, k in into]
    channel = np.repeat(np.array(MODEL_CHANNEL_ORDER), P)  # neuron c P + p listens to model channel c
    inp = InputProjection(to_int8(w_in, k_in).reshape(-1), channel, pops[0].frac_bits - k_in - INPUT_BITS)
    return IntegerL2MU(tuple(pops), tuple(projections), inp)
