"""Streaming inference: one model step per model-rate sample in staggered lanes, one decision every hop.

As in training, every window is `window` samples run from the zero state. Window k starts at sample k * hop of the
segment, so L = ceil(window / hop) lanes run at once, lane k mod L taking window k and resetting at its start. The
decision rule is the deployment contract's (deploy/har_contract.py `decide`); a decision's label is the majority label
of its window.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from deploy.har_contract import decide
from har_app.live.backends import StepModel
from har_app.live.merge import ModelSample
from training.run_dir import lanes_needed

LATENCY_HISTORY = 100_000  # step latencies kept for the percentiles (the most recent ones)


@dataclass
class Decision:
    t_s: float  # time of the window's last sample
    class_index: int
    confidence: float
    counts: np.ndarray  # summed output spikes (C,)
    label: str | None  # majority ground-truth label of the window, where the source carries labels


@dataclass
class Lane:
    model: StepModel
    start: int | None = None  # segment sample index where its current window began; None while idle
    counts: np.ndarray | None = None
    labels: Counter = field(default_factory=Counter)


class StepTimes:
    """Wall-clock time of each backend step (time.perf_counter_ns around `step`)."""

    def __init__(self) -> None:
        self.recent: deque[int] = deque(maxlen=LATENCY_HISTORY)
        self.count = 0
        self.total_ns = 0

    def add(self, ns: int) -> None:
        self.recent.append(ns)
        self.count += 1
        self.total_ns += ns

    def percentiles_us(self) -> dict[str, float | None]:
        if not self.recent:
            return {"p50": None, "p99": None}
        p50, p99 = np.percentile(np.fromiter(self.recent, np.int64), [50, 99]) / 1e3
        return {"p50": float(p50), "p99": float(p99)}


class LaneRunner:
    """Feeds model-rate samples to the lanes and returns a decision whenever a window completes."""

    def __init__(self, lanes: list[StepModel], window: int, hop: int,
                 normalize: Callable[[np.ndarray], np.ndarray]) -> None:
        if len(lanes) != lanes_needed(window, hop):
            raise ValueError(f"window {window}, hop {hop}: needs {lanes_needed(window, hop)} lanes, got {len(lanes)}")
        self.lanes = [Lane(m) for m in lanes]
        self.window, self.hop, self.normalize = window, hop, normalize
        self.times = StepTimes()
        self.resets = 0  # segment starts (the first one included)
        self.index = 0

    def reset(self) -> None:
        """Start a new segment: every lane idle; the next sample opens window 0."""
        self.index = 0
        self.resets += 1
        for lane in self.lanes:
            lane.start = None

    def push(self, sample: ModelSample) -> Decision | None:
        if sample.new_segment:
            self.reset()
        i = self.index
        if i % self.hop == 0:  # window i // hop starts here, on its lane, from the zero state
            lane = self.lanes[(i // self.hop) % len(self.lanes)]
            lane.model.reset()
            lane.start, lane.counts, lane.labels = i, None, Counter()
        z = self.normalize(sample.x)
        decision = None
        for lane in self.lanes:
            if lane.start is None:
                continue
            t0 = time.perf_counter_ns()
            spikes = lane.model.step(z)
            self.times.add(time.perf_counter_ns() - t0)
            lane.counts = spikes.astype(np.float64) if lane.counts is None else lane.counts + spikes
            lane.labels[sample.label] += 1
            if i - lane.start + 1 == self.window:
                decision = self._decision(lane, sample.t_s)
                lane.start = None
        self.index += 1
        return decision

    @staticmethod
    def _decision(lane: Lane, t_s: float) -> Decision:
        best, confidence = decide(lane.counts)
        labels = Counter({k: v for k, v in lane.labels.items() if k is not None})
        label = labels.most_common(1)[0][0] if labels else None
        return Decision(t_s, best, confidence, lane.counts, label)
