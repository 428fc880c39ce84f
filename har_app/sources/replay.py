"""Replaying a labelled recording as a live stream: a CSV file, or the bundled watch data of a run's test subjects.

Frames of a few samples are released at the recording's own rate (`speed` 1), faster or slower (`speed` X), or as
fast as the consumer takes them (`speed` 0). Timestamps are the recording's; every frame carries its label.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np

from deploy.stream_resampler import monotonic_timeline
from har_app.sources.base import ImuFrame, SourceStats
from training.errors import HarError
from training.run_dir import Run
from training.validate import Rule, require

FRAME_SAMPLES = 5  # samples per frame: 0.1 s at 50 Hz, like a BLE notification carrying a few samples
SPEED = Rule(float, lambda v: v >= 0, ">= 0 (0: as fast as possible)")


class ReplaySource:
    """An ImuSource over a recording held in memory: t_s (n,) seconds, samples (n, 6) SI, one label per sample."""

    def __init__(self, t_s: np.ndarray, samples: np.ndarray, labels: list[str] | None, speed: float = 1.0,
                 name: str = "replay", frame_samples: int = FRAME_SAMPLES,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        require(speed, SPEED, "--speed")
        if len(t_s) < 2:
            raise HarError(f"{name}: a replay needs at least two samples")
        self.t_s, self.samples, self.labels = monotonic_timeline(np.asarray(t_s, np.float64)), samples, labels
        self.speed, self.name, self.frame_samples = speed, name, frame_samples
        self.clock, self.sleep = clock, sleep
        period = float(np.median(np.diff(self.t_s)))
        self.expected_rate_hz = round(1.0 / period, 6)
        if not self.expected_rate_hz > 0:
            raise HarError(f"{name}: the timestamps give a sample rate of {1.0 / period:.3g} Hz (a median step of "
                           f"{period:.6g} s); timestamp_s must be in seconds")
        self.stats = SourceStats()

    @property
    def seconds(self) -> float:
        return float(self.t_s[-1] - self.t_s[0])

    def _frame_bounds(self) -> list[tuple[int, int]]:
        """Consecutive index ranges of at most `frame_samples` samples, never spanning a label change."""
        cuts = set(range(0, len(self.t_s), self.frame_samples))
        if self.labels is not None:
            cuts |= {i for i in range(1, len(self.labels)) if self.labels[i] != self.labels[i - 1]}
        starts = sorted(cuts)
        return list(zip(starts, starts[1:] + [len(self.t_s)]))

    async def frames(self) -> AsyncIterator[ImuFrame]:
        start, t0 = self.clock(), self.t_s[0]
        for seq, (a, b) in enumerate(self._frame_bounds()):
            # a frame is released once its last sample is due: wall = start + (t_last - t0) / speed
            delay = start + (self.t_s[b - 1] - t0) / self.speed - self.clock() if self.speed else 0.0
            await self.sleep(max(delay, 0.0))
            self.stats.packets += 1
            yield ImuFrame(self.t_s[a:b], self.samples[a:b, :3], self.samples[a:b, 3:], seq=seq,
                           label=self.labels[a] if self.labels is not None else None)


def replay_csv(path: Path, speed: float) -> ReplaySource:
    """A CSV recording in the `har train --data csv:DIR` format, rows in file order."""
    from training.sources.csv_recordings import read_csv_rows

    path = Path(path)
    if not path.is_file():
        raise HarError(f"replay file not found: {path}")
    rows = read_csv_rows(path)
    source = ReplaySource(rows.t, rows.x, rows.labels, speed, name=path.name)
    source.stats.malformed_packets = rows.malformed
    return source


def bundled_test_recordings(run: Run) -> tuple[np.ndarray, list[str], float]:
    """The run's held-out test subjects in the bundled seglearn data, recordings concatenated in dataset order:
    samples (n, 6), one label per sample, and the rate."""
    from training.sources import load_dataset

    data = run.config["data"]
    if data.get("spec") != "seglearn":
        raise HarError(f"--replay bundled needs a run trained on the bundled seglearn data; {run.path.name} used "
                       f"{data.get('spec')!r}: pass --replay FILE")
    dataset = load_dataset("seglearn", data.get("activities"))
    test = set(run.config["split"]["test"])
    recordings = [r for r in dataset.recordings if r.subject in test]
    if not recordings:
        raise HarError(f"the bundled data has no recordings of the run's test subjects {sorted(test)}")
    samples = np.concatenate([r.samples for r in recordings])
    labels = [r.label for r in recordings for _ in range(len(r.samples))]
    return samples, labels, recordings[0].fs_hz


def replay_bundled(run: Run, speed: float) -> ReplaySource:
    samples, labels, fs = bundled_test_recordings(run)
    t = np.arange(len(samples)) / fs
    name = f"bundled test subjects {','.join(run.config['split']['test'])}"
    return ReplaySource(t, samples, labels, speed, name=name)


def open_replay(spec: str, run: Run, speed: float) -> ReplaySource:
    """`bundled` or a CSV file path."""
    return replay_bundled(run, speed) if spec == "bundled" else replay_csv(Path(spec).expanduser(), speed)
