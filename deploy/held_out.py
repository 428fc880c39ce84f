"""The held-out decisions every compression stage is scored on, as the run makes them when deployed.

A windowed run decides once per test window, from the zero state (docs/deployment-contract.md, "Reset rule"). A
stream run (`har train --stream`) steps each held-out subject's stream once from the zero state on one lane and
decides every hop from the first full window on, over the output spikes of the last `window` steps
(docs/streaming.md). Both are sequences run from the zero state with decisions at given steps, so one form serves
both: a runtime only has to give the output spikes at every step of a sequence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.splits import SubjectSplit
from training.windowing import Windows


def window_sums(spikes: np.ndarray, at: np.ndarray, window: int) -> np.ndarray:
    """The ring buffer's counts at the steps `at` of one sequence's output spikes (n, C):
    n_c[t] = sum_{k = t - window + 1 .. t} s_c[k] (from step 0 while fewer than `window` have passed)."""
    c = np.concatenate([np.zeros((1, spikes.shape[1]), np.int64), np.cumsum(spikes, 0, dtype=np.int64)])
    return c[at + 1] - c[np.maximum(at + 1 - window, 0)]


@dataclass(frozen=True)
class HeldOut:
    """Normalised sequences (n_i, 6), each from the zero state; at each step of `at[i]` a decision over the output
    spikes of the last `window` steps, whose true class is `y[i]` at that step."""

    sequences: list[np.ndarray]
    at: list[np.ndarray]
    labels: list[np.ndarray]
    window: int
    what: str  # "test windows" or "decisions on the test streams", for messages

    @property
    def decisions(self) -> int:
        return sum(len(a) for a in self.at)

    @property
    def y(self) -> np.ndarray:
        return np.concatenate(self.labels)

    def counts(self, spikes: list[np.ndarray]) -> np.ndarray:
        """Decision counts (D, C) from each sequence's output spikes (n_i, C)."""
        return np.concatenate([window_sums(s, at, self.window) for s, at in zip(spikes, self.at)])

    def counts_of(self, step_spikes: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """Decision counts of a runtime given as: normalised sequence (n, 6) -> output spikes (n, C) from zero."""
        return self.counts([step_spikes(z) for z in self.sequences])

    def counts_batched(self, batch_spikes: Callable[[np.ndarray], np.ndarray], size: int = 512) -> np.ndarray:
        """The same for a runtime that runs a batch of equal-length sequences (N, n, 6) -> (N, n, C): sequences of
        one length (every test window) go together, `size` at a time."""
        spikes: list[np.ndarray | None] = [None] * len(self.sequences)
        by_length: dict[int, list[int]] = {}
        for i, z in enumerate(self.sequences):
            by_length.setdefault(len(z), []).append(i)
        for idx in by_length.values():
            for k in range(0, len(idx), size):
                part = idx[k : k + size]
                for i, s in zip(part, batch_spikes(np.stack([self.sequences[i] for i in part]))):
                    spikes[i] = s
        return self.counts(spikes)


def held_out(run, windows: Windows, split: SubjectSplit) -> HeldOut:
    """The run's held-out decisions: its test windows, or for a stream run its test subjects' streams."""
    norm = run.normalization
    if not run.stream:
        test = windows.of_subjects(split.test)
        z = norm.apply(test.x)
        last = np.array([run.window - 1])
        return HeldOut(list(z), [last] * len(z), [np.array([y]) for y in test.y], run.window, "test windows")
    from training.sources import load_dataset
    from training.streaming import build_streams, decision_steps

    data = run.config["data"]
    dataset = load_dataset(data["spec"], data.get("activities"), data.get("subjects"))
    streams = build_streams(dataset, run.fs_hz, split.test)
    at = [decision_steps(len(s.y), run.hop, run.window) for s in streams]
    return HeldOut([norm.apply(s.x) for s in streams], at, [s.y[a] for s, a in zip(streams, at)], run.window,
                   "decisions on the test streams")


def runtime_spikes(runtime) -> Callable[[np.ndarray], np.ndarray]:
    """A step runtime (reset(), step(z) -> spikes) as sequence -> output spikes (n, C), reset before each."""

    def run(z: np.ndarray) -> np.ndarray:
        runtime.reset()
        return np.array([runtime.step(x) for x in z])

    return run


def torch_spikes(model) -> Callable[[np.ndarray], np.ndarray]:
    """The float model's output spikes (N, n, C) over sequences (N, n, 6) from the zero state (L2MU.trace, which
    never resets), for `HeldOut.counts_batched`."""
    import torch

    model.eval()

    def run(z: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.trace(torch.from_numpy(np.ascontiguousarray(z, np.float32)))[0]["out"].numpy()

    return run
