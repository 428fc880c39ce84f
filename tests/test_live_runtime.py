"""Lanes and decisions: a decision every hop, each window from the zero state, resets on gaps; torch streaming."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from har_app.live.backends import TorchStep
from har_app.live.merge import ModelSample, StreamMerger
from har_app.live.runtime import LaneRunner, decide
from training.run_dir import lanes_needed
from har_app.sources.base import ImuFrame
from training.checkpoint import load_model
from training.run_dir import open_run
from training.windowing import resample

C = 4


class TracingStep:
    """A step model that logs what it sees: its output spike is channel 0 of the input, as a class index."""

    def __init__(self, log: list) -> None:
        self.log = log
        self.window: list[int] = []

    def reset(self) -> None:
        self.window = []
        self.log.append(self.window)

    def step(self, z: np.ndarray) -> np.ndarray:
        self.window.append(int(z[0]))
        spikes = np.zeros(C)
        spikes[int(z[0]) % C] = 1
        return spikes


def samples(values, labels=None, new_segment_at=()):
    labels = labels or [None] * len(values)
    return [ModelSample(i / 20, np.array([v, 0, 0, 0, 0, 0], np.float32), lab, i == 0 or i in new_segment_at)
            for i, (v, lab) in enumerate(zip(values, labels))]


@pytest.mark.parametrize("window,hop", [(40, 20), (10, 5), (5, 2), (6, 6)])
def test_a_decision_every_hop_each_from_its_own_aligned_window(window, hop):
    rng = np.random.default_rng(window)
    values = rng.integers(0, 50, 200)
    labels = [["sit", "walk", "run"][v % 3] for v in rng.integers(0, 3, 200)]
    log: list = []
    runner = LaneRunner([TracingStep(log) for _ in range(lanes_needed(window, hop))], window, hop, lambda x: x)
    decided = {}
    for i, s in enumerate(samples(values, labels)):
        d = runner.push(s)
        if d is not None:
            decided[i] = d
    ends = list(range(window - 1, 200, hop))
    assert sorted(decided) == ends  # the first once a window is full, then one every hop
    starts = [e - window + 1 for e in ends]
    for start, end in zip(starts, ends):
        d = decided[end]
        x = values[start : end + 1]
        counts = np.bincount(x % C, minlength=C)
        assert d.t_s == pytest.approx(end / 20)
        np.testing.assert_array_equal(d.counts, counts)
        assert d.class_index == int(np.argmax(counts))
        assert d.confidence == pytest.approx(counts.max() / counts.sum())
        top = Counter(labels[start : end + 1]).most_common()
        assert d.label in [lab for lab, n in top if n == top[0][1]]
    # every reset opened a window at a multiple of hop, and each lane saw exactly its window from its start
    windows = [w for w in log if len(w) == window]
    assert [list(w) for w in windows] == [list(values[s : s + window]) for s in starts]
    assert len(log) == len(range(0, 200, hop))


def test_decision_rule_ties_and_silence():
    assert decide(np.array([2.0, 5.0, 5.0, 1.0])) == (1, pytest.approx(5 / 13))
    assert decide(np.zeros(3)) == (0, 0.0)


def test_a_new_segment_resets_every_lane():
    window, hop = 8, 4
    log: list = []
    runner = LaneRunner([TracingStep(log) for _ in range(2)], window, hop, lambda x: x)
    values = np.arange(40)
    ends = []
    for i, s in enumerate(samples(values, new_segment_at={13})):
        if runner.push(s) is not None:
            ends.append(i)
    # segment 1: samples 0..12 -> windows end at 7, 11; segment 2 starts at 13 -> ends 20, 24, ...
    assert ends == [7, 11, 20, 24, 28, 32, 36]
    full = [w for w in log if len(w) == window]
    assert all(not (w[0] < 13 <= w[-1]) for w in full)  # no window spans the gap
    assert [w[0] for w in log if w and w[0] >= 13][:2] == [13, 17]  # windows restart at the segment start
    assert runner.resets == 2


def test_a_gap_in_the_stream_restarts_the_decisions(tiny_run):
    # Stream -> merger -> lanes with a 3 s dropout: decisions resume one full window after the gap, never across it.
    run = open_run(tiny_run)
    log: list = []
    runner = LaneRunner([TracingStep(log) for _ in range(2)], run.window, run.hop, lambda x: x)
    merger = StreamMerger(run.fs_hz, 50.0)
    t = np.arange(0, 20, 1 / 50)
    t = t[(t < 6.0) | (t >= 9.0)]
    decisions = []
    for i in range(0, len(t), 5):
        tk = t[i : i + 5]
        for s in merger.push(ImuFrame(tk, np.zeros((len(tk), 3)), np.zeros((len(tk), 3)))):
            if (d := runner.push(s)) is not None:
                decisions.append(d.t_s)
    window_s, hop_s = run.window / run.fs_hz, run.hop / run.fs_hz
    before = [d for d in decisions if d < 6.0]
    after = [d for d in decisions if d >= 9.0]
    assert before[0] == pytest.approx(window_s - 1 / run.fs_hz)
    assert after[0] == pytest.approx(9.0 + window_s - 1 / run.fs_hz)
    np.testing.assert_allclose(np.diff(after), hop_s)
    assert len(before) + len(after) == len(decisions)


def test_torch_streaming_gives_the_window_forward_decisions(tiny_run):
    run = open_run(tiny_run)
    model = load_model(run)
    from training.sources import load_dataset

    rec = load_dataset("seglearn", run.classes).only_subjects(run.config["split"]["test"]).recordings[0]
    x = run.normalization.apply(resample(rec.samples, rec.fs_hz, run.fs_hz))[:240]
    runner = LaneRunner([TorchStep(model) for _ in range(lanes_needed(run.window, run.hop))], run.window, run.hop,
                        lambda z: z)
    streamed = [d for i, z in enumerate(x) if (d := runner.push(ModelSample(i / run.fs_hz, z, None, i == 0)))]
    starts = np.arange(0, len(x) - run.window + 1, run.hop)
    with torch.no_grad():
        counts = model(torch.from_numpy(np.stack([x[s : s + run.window] for s in starts]))).numpy()
    assert len(streamed) == len(starts)
    np.testing.assert_array_equal(np.stack([d.counts for d in streamed]), counts)
    assert [d.class_index for d in streamed] == [decide(c)[0] for c in counts]
