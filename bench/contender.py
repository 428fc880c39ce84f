"""One contender of a fold (a trained model on one runtime) and how every contender is measured: accuracy and
macro-F1 on all test windows, host latency per decision interleaved across contenders."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from training.metrics import classification_metrics


@dataclass
class Workload:
    """What one decision costs on a device, for the profile's latency model (deploy.energy.estimate_latency):
    per invocation `macs` (weight multiply-accumulates), `elementwise` operations and `ops` (graph operators the
    runtime dispatches), and `invocations` per decision."""

    macs: float
    elementwise: float
    ops: int
    invocations: int

    def per_invocation(self) -> dict:
        return {"macs": round(self.macs), "elementwise": round(self.elementwise), "ops": self.ops}


@dataclass
class Contender:
    key: str
    label: str
    ours: bool
    runtime: str
    format: str  # what `model_bytes` counts
    decide: Callable[[np.ndarray], int]  # one normalised window (T, 6) -> class: what is timed
    predict: Callable[[np.ndarray], np.ndarray]  # normalised windows (N, T, 6) -> classes, same runtime and maths
    params: int
    model_bytes: int
    arena_bytes: int | None  # TFLM tensor arena (deploy.tflm_arena_probe); None where TFLM does not run it
    macs: float  # per decision: dense MACs from layer shapes, or the L2MU's effective (NeuroBench) MACs
    acs: float | None  # per decision: the L2MU's effective accumulates on spikes; None for non-spiking models
    dense_macs: float  # per decision: the MACs the runtime actually executes (dense kernels)
    workload: Workload | None  # None: the model is not deployable to the device profiles as is
    epochs: int | None = None  # training epochs run (early stopping), for trained neural models
    notes: list[str] = field(default_factory=list)
    emulated: dict | None = None  # instructions per decision on the emulated MCU (bench/device.py), TFLM models


def accuracy(c: Contender, test_x: np.ndarray, test_y: np.ndarray, classes: list[str]) -> dict:
    m = classification_metrics(test_y, np.asarray(c.predict(test_x)), classes)
    return {"accuracy": m.accuracy, "macro_f1": m.macro_f1, "windows": m.windows}


def time_decisions(contenders: list[Contender], windows: np.ndarray, warmup: int = 5) -> dict[str, list[float]]:
    """Microseconds per decision of each contender on the same windows. The contenders take turns window by
    window, in a rotating order, so machine load drifting during the pass hits them alike."""
    for c in contenders:
        for w in windows[:warmup]:
            c.decide(w)
    times: dict[str, list[float]] = {c.key: [] for c in contenders}
    for i, w in enumerate(windows):
        for j in range(len(contenders)):
            c = contenders[(i + j) % len(contenders)]
            t0 = time.perf_counter_ns()
            c.decide(w)
            times[c.key].append((time.perf_counter_ns() - t0) / 1e3)
    return times
