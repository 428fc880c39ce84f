"""Merging ACC and GYRO streams by timestamp and resampling them to the model rate, incrementally."""

from __future__ import annotations

import numpy as np
from scipy.signal import resample_poly

from har_app.live.merge import StreamMerger
from har_app.sources.base import ImuFrame
from training.sources import load_dataset

FREQS = np.array([0.3, 0.5, 0.7, 0.9, 1.1, 1.3])  # Hz, well inside the 10 Hz pass band of a 20 Hz model rate


def signal(t: np.ndarray) -> np.ndarray:
    """Known smooth 6-axis signal: one sine per channel."""
    return np.sin(2 * np.pi * FREQS * np.asarray(t)[:, None] + np.arange(6))


def interleaved_frames(t_acc, t_gyro, per_frame=4):
    """ACC and GYRO as separate frames, delivered in the order their last sample was taken."""
    frames = []
    for t, sensor in ((t_acc, "acc"), (t_gyro, "gyro")):
        cols = slice(0, 3) if sensor == "acc" else slice(3, 6)
        for i in range(0, len(t), per_frame):
            ts = t[i : i + per_frame]
            frames.append(ImuFrame(ts, **{sensor: signal(ts)[:, cols]}, label="walk"))
    return sorted(frames, key=lambda f: f.t_s[-1])


def run(merger, frames):
    out, emitted_after = [], []
    for f in frames:
        new = merger.push(f)
        out += new
        emitted_after.append((f, new))
    return out, emitted_after


def test_two_streams_at_different_rates_are_merged_on_the_model_grid():
    # ACC at 52 Hz from t=0.013 s, GYRO at 104 Hz from t=0.020 s with jitter: both resampled to 20 Hz.
    rng = np.random.default_rng(0)
    t_acc = 0.013 + np.arange(52 * 20) / 52
    t_gyro = 0.020 + np.arange(104 * 20) / 104 + rng.uniform(-1e-3, 1e-3, 104 * 20)
    merger = StreamMerger(fs_out=20.0, fs_in=52.0)
    out, emitted_after = run(merger, interleaved_frames(t_acc, t_gyro))
    out += merger.flush()

    t = np.array([s.t_s for s in out])
    assert t[0] == max(t_acc[0], t_gyro[0])  # the grid starts when both sensors have data
    np.testing.assert_allclose(np.diff(t), 1 / 20, atol=1e-9)  # in order, on the 20 Hz grid
    assert t[-1] <= min(t_acc[-1], t_gyro[-1]) and t[-1] > min(t_acc[-1], t_gyro[-1]) - 1 / 20
    x = np.stack([s.x for s in out])
    truth = signal(t)
    interior = (t > t[0] + 0.5) & (t < t[-1] - 0.5)  # full kernel on both sides
    assert np.abs(x[interior, :3] - truth[interior, :3]).max() < 3e-3  # regular 52 Hz: the kernel's pass-band ripple
    assert np.abs(x[interior, 3:] - truth[interior, 3:]).max() < 1e-2  # +-1 ms jitter at 1.3 Hz moves ~0.8 %
    assert np.abs(x - truth).max() < 0.05  # one-sided at the ends, still close
    assert [s.new_segment for s in out] == [True] + [False] * (len(out) - 1)
    assert all(s.label == "walk" for s in out)
    # causal: a sample is emitted only once both sensors reach 0.5 s (10 periods at 20 Hz) past it
    seen = {"acc": -np.inf, "gyro": -np.inf}
    for frame, new in emitted_after:
        seen["acc" if frame.acc is not None else "gyro"] = frame.t_s[-1]
        assert all(s.t_s <= min(seen.values()) - 0.5 + 1e-9 for s in new)
    assert merger.counts.late == 0 and merger.counts.samples == {"acc": len(t_acc), "gyro": len(t_gyro)}


def test_regular_50hz_watch_data_matches_the_training_resampler():
    # Real bundled watch data at 50 Hz -> 20 Hz: the stream equals scipy's resample_poly(2, 5) away from the ends.
    rec = load_dataset("seglearn").recordings[0]
    t = np.arange(len(rec.samples)) / rec.fs_hz
    merger = StreamMerger(fs_out=20.0, fs_in=50.0)
    out = []
    for i in range(0, len(t), 7):
        out += merger.push(ImuFrame(t[i : i + 7], rec.samples[i : i + 7, :3], rec.samples[i : i + 7, 3:]))
    out += merger.flush()
    x = np.stack([s.x for s in out])
    ref = resample_poly(rec.samples.astype(np.float64), 2, 5, axis=0)
    assert len(x) == (len(t) - 1) * 2 // 5 + 1
    scale = rec.samples.std(0)
    assert (np.abs(x[10:-10] - ref[10 : len(x) - 10]) / scale).max() < 1e-3


def test_late_and_duplicate_samples_are_counted_and_dropped():
    t = np.arange(200) / 50
    merger = StreamMerger(fs_out=20.0, fs_in=50.0)
    out = merger.push(ImuFrame(t, signal(t)[:, :3], signal(t)[:, 3:]))
    last = out[-1].t_s
    late_t = np.array([last - 0.3, last - 0.1, last])  # at or before the last emitted output
    again = merger.push(ImuFrame(late_t, signal(late_t)[:, :3], signal(late_t)[:, 3:]))
    assert merger.counts.late == 6  # 3 samples x 2 sensors
    assert again == []
    dup = t[-1:]  # same time as a held sample: dropped as well
    merger.push(ImuFrame(dup, np.full((1, 3), 99.0), np.full((1, 3), 99.0)))
    assert merger.counts.late == 8
    t2 = 4.0 + np.arange(100) / 50
    out2 = merger.push(ImuFrame(t2, signal(t2)[:, :3], signal(t2)[:, 3:])) + merger.flush()
    times = np.array([s.t_s for s in out + out2])
    np.testing.assert_allclose(np.diff(times), 1 / 20, atol=1e-9)  # the grid went on in order, untouched
    assert np.abs(np.stack([s.x for s in out2]) - signal(times[len(out):])).max() < 0.05


def test_non_finite_samples_are_dropped():
    t = np.arange(100) / 50
    acc = signal(t)[:, :3].copy()
    acc[40] = np.nan
    merger = StreamMerger(fs_out=20.0, fs_in=50.0)
    out = merger.push(ImuFrame(t, acc, signal(t)[:, 3:])) + merger.flush()
    assert merger.counts.non_finite == 1
    assert np.isfinite(np.stack([s.x for s in out])).all()


def test_a_long_gap_starts_a_new_segment_and_a_short_hole_is_bridged():
    t = np.arange(0, 10, 1 / 50)
    keep = (t < 3.0) | (t >= 3.3)  # 0.3 s hole: bridged
    keep &= (t < 6.0) | (t >= 8.0)  # 2 s gap: a new segment
    t = t[keep]
    merger = StreamMerger(fs_out=20.0, fs_in=50.0, max_gap_s=1.0)
    out = []
    for i in range(0, len(t), 5):
        out += merger.push(ImuFrame(t[i : i + 5], signal(t[i : i + 5])[:, :3], signal(t[i : i + 5])[:, 3:]))
    out += merger.flush()
    starts = [s.t_s for s in out if s.new_segment]
    assert starts == [0.0, 8.0] and merger.counts.gaps == 1
    times = np.array([s.t_s for s in out])
    first = times[times < 8.0]
    np.testing.assert_allclose(np.diff(first), 1 / 20, atol=1e-9)  # continuous across the short hole
    assert max(t[t < 6.0]) - 1 / 20 < first[-1] <= max(t[t < 6.0])  # the segment is flushed up to its last sample
    assert not np.any((times > max(t[t < 6.0])) & (times < 8.0))  # nothing invented inside the gap
    x = np.stack([s.x for s in out])
    hole = (times > 3.0) & (times < 3.3)
    assert hole.sum() == 5
    # inside the hole each value lies between the samples either side
    lo, hi = signal(np.array([2.98])), signal(np.array([3.3]))
    assert np.all((x[hole] >= np.minimum(lo, hi) - 1e-6) & (x[hole] <= np.maximum(lo, hi) + 1e-6))


def test_memory_stays_bounded_on_a_long_stream():
    merger = StreamMerger(fs_out=20.0, fs_in=50.0)
    sizes = []
    for k in range(600):  # 60 s in 0.1 s frames
        tk = k * 0.1 + np.arange(5) / 50
        merger.push(ImuFrame(tk, signal(tk)[:, :3], signal(tk)[:, 3:]))
        sizes.append(max(len(b.t) for b in merger.buffers.values()))
    assert max(sizes) <= 2 * 50 * 0.5 + 10  # about one kernel width of samples, however long the stream


def test_a_silent_sensor_ends_the_segment_and_memory_stays_bounded():
    # GYRO stops after 2 s while ACC runs on for 20 s: outputs stop at the last gyro time, the ACC buffer stays
    # bounded, and when GYRO returns a new segment starts.
    merger = StreamMerger(fs_out=20.0, fs_in=50.0)
    out, sizes = [], []
    for k in range(300):
        tk = k * 0.1 + np.arange(5) / 50
        gyro = signal(tk)[:, 3:] if (tk[-1] < 2.0 or tk[0] >= 25.0) else None
        out += merger.push(ImuFrame(tk, signal(tk)[:, :3], gyro))
        sizes.append(len(merger.buffers["acc"].t))
    out += merger.flush()
    t = np.array([s.t_s for s in out])
    assert merger.counts.gaps == 1  # the silence ended the segment; the return starts the next
    assert max(sizes) <= 50 * 6.5  # a few seconds of ACC, not the 23 s it ran alone
    assert not np.any((t > 2.0) & (t < 25.0))
    assert [s.t_s for s in out if s.new_segment] == [0.0, 25.0]


def test_a_source_slower_than_the_model_is_interpolated():
    # 12.5 Hz -> 20 Hz (upsampling): the kernel cuts off at 6.25 Hz, the slow signal comes through.
    t = np.arange(0, 30, 1 / 12.5)
    merger = StreamMerger(fs_out=20.0, fs_in=12.5)
    out = []
    for i in range(0, len(t), 3):
        out += merger.push(ImuFrame(t[i : i + 3], signal(t[i : i + 3])[:, :3], signal(t[i : i + 3])[:, 3:]))
    out += merger.flush()
    times = np.array([s.t_s for s in out])
    assert len(out) == int(t[-1] * 20) + 1
    interior = (times > 1.0) & (times < t[-1] - 1.0)
    assert np.abs(np.stack([s.x for s in out])[interior] - signal(times[interior])).max() < 0.01
