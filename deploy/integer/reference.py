"""The numpy reference of the integer L2MU step: the specification every other implementation is tested against.

Per population p, in step order, with R = [U[t-1] > thr] (the previous step's spike, also the reset):
    U[t] = ((beta_q U[t-1] + 2^14) >> 15) - R thr + b + sum_j s_j w_q[:, j] << shift     (all integers)
    S[t] = [U[t] > thr]
A membrane outside int32 is an error of the quantisation, not wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploy.integer.model import BETA_BITS, INT32, IntegerL2MU
from training.errors import ExitCode, HarError

HALF = 1 << (BETA_BITS - 1)


@dataclass
class ReferenceRun:
    counts: np.ndarray  # (N, C) output spikes summed over each window
    spikes: dict[str, np.ndarray]  # population -> (N, T, n) uint8, only with record
    membranes: np.ndarray | None  # (N, T, neurons) int32 in population order, only with record


def leak(beta_q: int, u: np.ndarray) -> np.ndarray:
    """round(beta U) with ties towards +infinity: (beta_q U + 2^14) >> 15, arithmetic shift."""
    return (beta_q * u + HALF) >> BETA_BITS


def run_reference(model: IntegerL2MU, xq: np.ndarray, record: bool = False) -> ReferenceRun:
    """Run int16 windows xq (N, T, 6) each from the zero state."""
    xq = np.asarray(xq, np.int64)
    n, steps = xq.shape[:2]
    pops = model.populations
    u = {p.name: np.zeros((n, p.size), np.int64) for p in pops}
    weights = {id(q): (q.weight_q.astype(np.int64) << q.shift).T for q in model.projections}
    w_in = model.input.weight_q.astype(np.int64) << model.input.shift
    counts = np.zeros((n, model.n_classes), np.int64)
    trace = {p.name: [] for p in pops}
    mem_trace = []
    for t in range(steps):
        prev = {p.name: (u[p.name] > p.threshold_q).astype(np.int64) for p in pops}  # S[t-1] = R[t]
        now: dict[str, np.ndarray] = {}
        for p in pops:
            v = leak(p.beta_q, u[p.name]) - prev[p.name] * p.threshold_q + p.bias_q.astype(np.int64)
            if p is pops[0]:
                v = v + xq[:, t, model.input.channel] * w_in
            for q in model.into(p.name):
                v = v + (prev if q.delayed else now)[q.source] @ weights[id(q)]
            if v.size and (v.min() < INT32[0] or v.max() > INT32[1]):
                raise HarError(f"integer L2MU: a {p.name} membrane left int32 at step {t}", ExitCode.DOMAIN)
            u[p.name], now[p.name] = v, (v > p.threshold_q).astype(np.int64)
        counts += now[pops[-1].name]
        if record:
            for p in pops:
                trace[p.name].append(now[p.name].astype(np.uint8))
            mem_trace.append(np.concatenate([u[p.name] for p in pops], 1).astype(np.int32))
    if not record:
        return ReferenceRun(counts, {}, None)
    return ReferenceRun(counts, {k: np.stack(v, 1) for k, v in trace.items()}, np.stack(mem_trace, 1))
