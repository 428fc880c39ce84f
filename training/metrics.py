"""Classification metrics and NeuroBench-style workload metrics per window (metrics.json stages.float,
docs/run-artifacts.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from training.config import POPULATIONS
from training.json_form import OMIT_IF_NONE, JsonForm


@dataclass(frozen=True, kw_only=True)
class ClassificationMetrics(JsonForm):
    accuracy: float  # fraction of the test windows (decisions, for a stream run) classified right
    macro_f1: float  # mean F1 over the classes present in the test windows
    per_class_f1: dict[str, float]
    confusion_matrix: list[list[int]]  # [true class][predicted class], counts of windows
    windows: int


@dataclass(frozen=True, kw_only=True)
class WorkloadMetrics(JsonForm):
    """Per-window means over the test windows."""

    synops_per_window: float  # effective MACs + effective ACs
    effective_macs_per_window: float
    effective_acs_per_window: float
    dense_ops_per_window: int
    activation_sparsity: float  # 1 - spikes / neuron updates
    membrane_updates_per_window: int
    spikes_per_window: float


@dataclass(frozen=True, kw_only=True)
class HeldOutMetrics(WorkloadMetrics, ClassificationMetrics):
    """A model on the held-out test subjects: the classification fields, then the workload fields; a stream run
    (`har train --stream`, docs/streaming.md) adds the last two."""

    accuracy_every_sample: float | None = field(default=None, metadata=OMIT_IF_NONE)
    steps_per_decision: int | None = field(default=None, metadata=OMIT_IF_NONE)

    @classmethod
    def of(cls, classification: ClassificationMetrics, workload: WorkloadMetrics, **stream: float) -> HeldOutMetrics:
        return cls(**vars(classification), **vars(workload), **stream)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> ClassificationMetrics:
    n = len(classes)
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    tp = np.diag(cm).astype(float)
    precision = np.divide(tp, cm.sum(0), out=np.zeros(n), where=cm.sum(0) > 0)
    recall = np.divide(tp, cm.sum(1), out=np.zeros(n), where=cm.sum(1) > 0)
    # F1 = 2 P R / (P + R)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = cm.sum(1) > 0
    return ClassificationMetrics(
        accuracy=float(tp.sum() / max(cm.sum(), 1)),
        macro_f1=float(f1[present].mean()) if present.any() else 0.0,
        per_class_f1={c: float(v) for c, v in zip(classes, f1)},
        confusion_matrix=cm.tolist(),
        windows=int(cm.sum()),
    )


def workload_metrics(x: np.ndarray, spikes: dict[str, np.ndarray], fan_out: dict[str, tuple[int, int]],
                     pop_per_channel: int) -> WorkloadMetrics:
    """Per-window means. x (N, T, 6) real-valued input; spikes[pop] (N, T, n_pop) binary.

    Effective MACs: multiplications by non-zero real inputs (the per-channel input layer).
    Effective ACs: one accumulate per spike per synapse it drives, at this step and (for recurrent
    populations) at the next one. Dense ops count every synapse at every step.
    """
    n, steps = x.shape[0], x.shape[1]
    eff_macs = float(np.count_nonzero(x)) * pop_per_channel / n
    dense_macs = steps * x.shape[2] * pop_per_channel
    eff_acs, dense_acs, total_spikes, total_neurons, membrane = 0.0, 0, 0.0, 0, 0
    for pop in POPULATIONS:
        s = spikes[pop]
        now, nxt = fan_out[pop]
        eff_acs += float(s.sum() * now + s[:, :-1].sum() * nxt) / n
        dense_acs += s.shape[2] * (steps * now + (steps - 1) * nxt)
        total_spikes += float(s.sum()) / n
        total_neurons += s.shape[2] * steps
        membrane += s.shape[2] * steps
    return WorkloadMetrics(
        synops_per_window=eff_macs + eff_acs,
        effective_macs_per_window=eff_macs,
        effective_acs_per_window=float(eff_acs),
        dense_ops_per_window=int(dense_macs + dense_acs),
        activation_sparsity=float(1.0 - total_spikes / total_neurons),
        membrane_updates_per_window=int(membrane),
        spikes_per_window=float(total_spikes),
    )
