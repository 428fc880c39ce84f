"""Recording what a source delivered, merged to 6-axis samples at the source's rate, as a trainable CSV file.

Rows are written as they arrive to a temporary file beside the target; `close()` renames it into place, so the
file appears whole (also after Ctrl-C, which the live session turns into a normal close) and memory stays bounded.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from har_app.live.merge import ModelSample, StreamMerger
from har_app.sources.base import ImuFrame
from training.atomic import atomic_path
from training.sources.csv_recordings import format_csv

UNLABELLED = "unlabelled"


class Recorder:
    """Writes frames as `timestamp_s, acc_x..gyro_z, label, subject` rows (the `har train --data csv:DIR` format)."""

    def __init__(self, path: Path, label: str | None = None, subject: str = "live") -> None:
        self.path, self.label, self.subject = Path(path), label, subject
        self.merger: StreamMerger | None = None
        self.rows = 0
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = self._stack.enter_context(tmp.open("w", encoding="utf-8", newline=""))
        self._file.write(format_csv(np.zeros(0), np.zeros((0, 6)), [], subject))

    def start(self, rate_hz: float) -> None:
        """Rows go on a grid at the source's rate (known once it streams)."""
        self.merger = StreamMerger(fs_out=rate_hz, fs_in=rate_hz)

    def add(self, frame: ImuFrame) -> None:
        self._write(self.merger.push(frame))

    def restart(self) -> None:
        """The source reconnected: end the merged segment here."""
        self._write(self.merger.restart())

    def _write(self, samples: list[ModelSample]) -> None:
        if not samples:
            return
        labels = [s.label or self.label or UNLABELLED for s in samples]
        self._file.write(format_csv(np.array([s.t_s for s in samples]), np.stack([s.x for s in samples]), labels,
                                    self.subject, header=False))
        self.rows += len(samples)

    def close(self) -> bool:
        """Write what the merger still holds and move the file into place; with no rows at all, leave no file."""
        if self.merger is not None:
            self._write(self.merger.flush())
        if self.rows:
            self._stack.close()
        else:
            self._stack.__exit__(RuntimeError, RuntimeError("nothing received"), None)  # atomic_path drops the temp
        return self.rows > 0
