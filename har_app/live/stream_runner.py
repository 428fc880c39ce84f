"""Streaming inference of a stream run (`har train --stream`): one lane, one model step per model-rate sample.

The lane starts from the zero state only at a segment start (a stream start, a gap or a reconnect: the contract's
reset rule "zero-state-per-stream") and is never reset inside a segment. A ring buffer holds the output spikes of the
last `window` steps; every `hop` samples (from the first full window on) the decision is the contract's rule applied
to their sum, n_c[t] = sum_{k=t-window+1..t} s_o,c[k], exactly as training/streaming.py trains it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable

import numpy as np

from deploy.har_contract import decide
from har_app.live.backends import StepModel
from har_app.live.merge import ModelSample
from har_app.live.runtime import Decision, StepTimes


class StreamRunner:
    """Feeds model-rate samples to the one lane and returns a decision every hop once a window has passed."""

    def __init__(self, lanes: list[StepModel], window: int, hop: int,
                 normalize: Callable[[np.ndarray], np.ndarray]) -> None:
        if len(lanes) != 1:
            raise ValueError(f"a stream run steps one lane, got {len(lanes)}")
        self.model = lanes[0]
        self.window, self.hop, self.normalize = window, hop, normalize
        self.times = StepTimes()
        self.resets = 0  # segment starts (the first one included)
        self.index = 0
        self.recent: deque[np.ndarray] = deque(maxlen=window)  # output spikes of the last `window` steps
        self.labels: deque[str | None] = deque(maxlen=window)

    def reset(self) -> None:
        """Start a new segment: the lane back to the zero state, the ring buffer empty."""
        self.index = 0
        self.resets += 1
        self.model.reset()
        self.recent.clear()
        self.labels.clear()

    def push(self, sample: ModelSample) -> Decision | None:
        if sample.new_segment:
            self.reset()
        t0 = time.perf_counter_ns()
        spikes = self.model.step(self.normalize(sample.x))
        self.times.add(time.perf_counter_ns() - t0)
        self.recent.append(np.asarray(spikes, np.float64))
        self.labels.append(sample.label)
        self.index += 1
        if self.index < self.window or self.index % self.hop:
            return None
        counts = np.sum(self.recent, axis=0)  # n_c[t] = sum of the last `window` output spikes
        best, confidence = decide(counts)
        labels = Counter(label for label in self.labels if label is not None)
        return Decision(sample.t_s, best, confidence, counts, labels.most_common(1)[0][0] if labels else None)
