"""ReplaySource: pacing at the recording's rate times --speed, frames with source timestamps and labels."""

from __future__ import annotations

import numpy as np
import pytest

from har_app.sources.replay import ReplaySource, bundled_test_recordings, replay_bundled, replay_csv
from training.errors import HarError
from training.run_dir import open_run
from training.sources import load_dataset
from training.sources.csv_recordings import format_csv


class FakeClock:
    """A clock that moves only when the source sleeps or the consumer says it worked."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def recording(n=230, fs=50.0):
    rec = load_dataset("seglearn").recordings[0]
    labels = ["a"] * 100 + ["b"] * (n - 100)
    return np.arange(n) / fs + 3.0, rec.samples[:n], labels


async def collect(source, clock, work_s=0.0):
    frames, released = [], []
    async for frame in source.frames():
        frames.append(frame)
        released.append(clock.now)
        clock.now += work_s
    return frames, released


@pytest.mark.parametrize("speed", [1.0, 4.0, 0.5])
async def test_frames_are_released_when_their_last_sample_is_due(speed):
    t, x, labels = recording()
    clock = FakeClock()
    source = ReplaySource(t, x, labels, speed, clock=clock, sleep=clock.sleep)
    frames, released = await collect(source, clock)
    due = [100.0 + (f.t_s[-1] - t[0]) / speed for f in frames]
    np.testing.assert_allclose(released, due, atol=1e-9)
    assert source.expected_rate_hz == pytest.approx(50.0)


async def test_a_slow_consumer_gets_late_frames_at_once():
    t, x, labels = recording()
    clock = FakeClock()
    frames, released = await collect(ReplaySource(t, x, labels, 1.0, clock=clock, sleep=clock.sleep), clock,
                                      work_s=0.25)  # 0.25 s of work per 0.1 s frame: always behind
    assert all(s <= 1e-12 for s in clock.sleeps[1:])
    np.testing.assert_allclose(np.diff(released), 0.25)


async def test_speed_zero_never_waits():
    t, x, labels = recording()
    clock = FakeClock()
    frames, released = await collect(ReplaySource(t, x, labels, 0.0, clock=clock, sleep=clock.sleep), clock)
    assert clock.sleeps == [0.0] * len(frames) and released[-1] == 100.0


async def test_frames_carry_the_recording_in_order_with_labels():
    t, x, labels = recording()
    clock = FakeClock()
    frames, _ = await collect(ReplaySource(t, x, labels, 0.0, frame_samples=7, clock=clock, sleep=clock.sleep), clock)
    assert all(1 <= len(f.t_s) <= 7 for f in frames)
    np.testing.assert_array_equal(np.concatenate([f.t_s for f in frames]), t)
    np.testing.assert_array_equal(np.concatenate([np.hstack([f.acc, f.gyro]) for f in frames]), x)
    per_sample = [f.label for f in frames for _ in f.t_s]
    assert per_sample == labels  # no frame spans the label change
    assert [f.seq for f in frames] == list(range(len(frames)))


def test_csv_replay_rows_in_file_order(tmp_path):
    t, x, labels = recording()
    # two recordings appended in one file, each with its own clock from 0, plus one malformed row
    text = format_csv(t[:100] - 3.0, x[:100], labels[:100], "1") + format_csv(
        t[100:] - t[100], x[100:], labels[100:], "1", header=False) + "1.0,2.0,oops\n"
    path = tmp_path / "two.csv"
    path.write_text(text)
    source = replay_csv(path, speed=0.0)
    assert source.stats.malformed_packets == 1
    assert np.all(np.diff(source.t_s) > 0)  # the second recording continues after the first
    np.testing.assert_allclose(np.diff(source.t_s), 1 / 50, atol=1e-6)
    np.testing.assert_allclose(source.samples, x, rtol=1e-5, atol=1e-5)
    assert source.labels == labels


def test_bundled_replay_is_the_runs_test_subjects(tiny_run):
    run = open_run(tiny_run)
    samples, labels, fs = bundled_test_recordings(run)
    data = load_dataset("seglearn", run.classes)
    test = [r for r in data.recordings if r.subject in run.config["split"]["test"]]
    assert fs == 50.0 and len(samples) == sum(len(r.samples) for r in test) == len(labels)
    assert set(labels) <= set(run.classes)
    source = replay_bundled(run, 0.0)
    assert source.expected_rate_hz == pytest.approx(50.0) and source.seconds == pytest.approx((len(samples) - 1) / 50)


def test_bad_replay_input_is_refused(tmp_path, tiny_run):
    t, x, labels = recording()
    with pytest.raises(HarError, match="speed"):
        ReplaySource(t, x, labels, -1.0)
    with pytest.raises(HarError, match="not found"):
        replay_csv(tmp_path / "missing.csv", 1.0)
    run = open_run(tiny_run)
    run.config["data"]["spec"] = "csv:mine"
    with pytest.raises(HarError, match="bundled"):
        replay_bundled(run, 1.0)
