"""Merging accelerometer and gyroscope frames by timestamp and resampling them to the model rate, as a stream.

Each sensor is resampled on its own onto the shared model-rate grid t_n = t0 + n / fs_out with the anti-aliasing
kernel that `scipy.signal.resample_poly` uses (a Kaiser-windowed sinc, beta 5, cut off at half the slower rate,
10 slower-rate periods each side), evaluated at the real time offsets. On a regular stream this reproduces the
polyphase resampling used in training (training.windowing.resample) away from the ends; jittered or unaligned
streams are handled the same way. A model-rate sample is emitted once both sensors have samples 10 slower-rate
periods past its time, so the merge adds that much latency (0.5 s at 20 Hz) and never looks at the future twice.

Samples that arrive with a time at or before the last emitted output are late: counted and dropped. A hole longer
than `max_gap_s` in either sensor ends the segment: the next output starts a new segment (the runtime resets).
So does one sensor falling silent while the other runs on for MAX_LEAD_S. Shorter holes are bridged by linear
interpolation between the samples either side.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from deploy.stream_resampler import HOLE_PERIODS, KERNEL_PERIODS, MAX_GAP_S, TIME_EPS_S, value_at
from har_app.sources.base import ImuFrame

SENSORS = ("acc", "gyro")
MAX_LEAD_S = 5.0  # one sensor this far ahead of the other: the other has stalled (bounds the memory held)


@dataclass
class ModelSample:
    """One 6-axis sample at the model rate: x = (acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z) in SI units."""

    t_s: float
    x: np.ndarray
    label: str | None
    new_segment: bool  # first sample after the start, a gap or a restart: every model state must reset here


@dataclass
class MergeCounts:
    samples: Counter = field(default_factory=Counter)  # received per sensor
    late: int = 0  # at or before the last emitted output time: dropped
    non_finite: int = 0  # NaN/inf values: dropped
    gaps: int = 0  # holes longer than max_gap_s: segment restarts
    emitted: int = 0


class SensorBuffer:
    """The recent samples of one sensor (3 axes), kept sorted by time and trimmed as outputs are emitted."""

    def __init__(self) -> None:
        self.t = np.zeros(0)
        self.x = np.zeros((0, 3))
        self.labels: list[str | None] = []

    @property
    def empty(self) -> bool:
        return len(self.t) == 0

    @property
    def first(self) -> float:
        return float(self.t[0])

    @property
    def last(self) -> float:
        return float(self.t[-1])

    def insert(self, t: float, x: np.ndarray, label: str | None) -> bool:
        """Insert one sample in time order; False if a sample with this exact time is already held."""
        i = int(np.searchsorted(self.t, t))
        if i < len(self.t) and self.t[i] == t:
            return False
        self.t = np.insert(self.t, i, t)
        self.x = np.insert(self.x, i, x, axis=0)
        self.labels.insert(i, label)
        return True

    def keep_from(self, t_min: float, keep_one_before: bool = True) -> None:
        """Drop samples before t_min, by default keeping the last one before it (the left end of a hole)."""
        i = int(np.searchsorted(self.t, t_min))
        i = max(i - 1, 0) if keep_one_before else i
        self.t, self.x, self.labels = self.t[i:], self.x[i:], self.labels[i:]

    def value_at(self, t: float, fs_slow: float, hole_s: float) -> tuple[np.ndarray, str | None]:
        """Resampled value and nearest label at time t (within the held samples' span)."""
        value, nearest = value_at(self.t, self.x, t, fs_slow, hole_s)  # deploy/stream_resampler.py
        return value, self.labels[nearest]


class StreamMerger:
    """Turns frames of one or both sensors into 6-axis samples on the model-rate grid, incrementally."""

    def __init__(self, fs_out: float, fs_in: float, max_gap_s: float = MAX_GAP_S) -> None:
        if fs_out <= 0 or fs_in <= 0:
            raise ValueError(f"rates must be positive, got fs_out={fs_out}, fs_in={fs_in}")
        self.fs_out, self.fs_in, self.max_gap_s = fs_out, fs_in, max_gap_s
        self.fs_slow = min(fs_in, fs_out)
        self.half_s = KERNEL_PERIODS / self.fs_slow
        self.hole_s = HOLE_PERIODS / fs_in
        self.counts = MergeCounts()
        self.buffers = {s: SensorBuffer() for s in SENSORS}
        self._start_segment()

    def _start_segment(self) -> None:
        self.t0: float | None = None  # grid origin of the current segment
        self.n = 0  # next output index on the grid
        self.last_emitted = -np.inf

    def _grid(self, n: int) -> float:
        return self.t0 + n / self.fs_out  # t_n = t0 + n / fs_out

    def push(self, frame: ImuFrame) -> list[ModelSample]:
        """Add a frame; return the model-rate samples it completes (oldest first)."""
        out: list[ModelSample] = []
        for sensor in SENSORS:
            values = getattr(frame, sensor)
            if values is None:
                continue
            values = np.asarray(values, dtype=np.float64).reshape(-1, 3)
            for t, x in zip(np.asarray(frame.t_s, dtype=np.float64), values):
                out += self._add(sensor, float(t), x, frame.label)
        return out + self._emit(final=False)

    def _add(self, sensor: str, t: float, x: np.ndarray, label: str | None) -> list[ModelSample]:
        self.counts.samples[sensor] += 1
        if not (np.isfinite(t) and np.all(np.isfinite(x))):
            self.counts.non_finite += 1
            return []
        if t <= self.last_emitted:
            self.counts.late += 1
            return []
        buf, out = self.buffers[sensor], []
        if not buf.empty and t - buf.last > self.max_gap_s:
            self.counts.gaps += 1
            out = self.restart(keep_after=t)
        if not buf.insert(t, x, label):
            self.counts.late += 1
        other = self.buffers[SENSORS[1 - SENSORS.index(sensor)]]
        if other.empty:  # nothing to merge with yet: keep only what the first outputs can need
            buf.keep_from(buf.last - MAX_LEAD_S)
        elif buf.last - other.last > MAX_LEAD_S:  # the other sensor went silent: end the segment
            self.counts.gaps += 1
            out += self.restart(keep_after=buf.last)
        return out

    def _emit(self, final: bool) -> list[ModelSample]:
        if any(b.empty for b in self.buffers.values()):
            return []
        if self.t0 is None:
            self.t0 = max(b.first for b in self.buffers.values())
        margin = 0.0 if final else self.half_s
        covered = min(b.last for b in self.buffers.values()) - margin
        out = []
        while self._grid(self.n) <= covered + TIME_EPS_S:
            t = self._grid(self.n)
            (acc, label), (gyro, gyro_label) = (self.buffers[s].value_at(t, self.fs_slow, self.hole_s) for s in SENSORS)
            out.append(ModelSample(t, np.concatenate([acc, gyro]).astype(np.float32),
                                   label if label is not None else gyro_label, new_segment=self.n == 0))
            self.last_emitted = t
            self.n += 1
        if out:
            self.counts.emitted += len(out)
            for b in self.buffers.values():
                b.keep_from(self._grid(self.n) - self.half_s)
        return out

    def flush(self) -> list[ModelSample]:
        """End of stream: emit every grid sample up to the last time both sensors reached."""
        return self._emit(final=True)

    def restart(self, keep_after: float | None = None) -> list[ModelSample]:
        """End the segment (after a gap or a reconnect): flush it, then start a new grid at the next samples.

        Samples held at or after `keep_after` (the first sample past a gap) stay for the new segment."""
        out = self.flush()
        for b in self.buffers.values():
            b.keep_from(np.inf if keep_after is None else keep_after, keep_one_before=False)
        self._start_segment()
        return out
