"""Recording what a source delivered, merged to 6-axis samples at the source's rate, as a trainable CSV file.

Rows are written as they arrive to a temporary file beside the target; `close()` moves it into place, so the
file appears whole (also after Ctrl-C, which the live session turns into a normal close) and memory stays bounded.
The target must be new or an empty file (`check_new_file`); a file that appears there while recording is not
overwritten: the recording then goes to the first free name `NAME-2.csv`, `NAME-3.csv`, ... (`Recorder.path`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from har_app.live.merge import ModelSample, StreamMerger
from har_app.sources.base import ImuFrame
from training.atomic import publish_new
from training.sources.csv_recordings import format_csv
from training.validate import check_new_file

UNLABELLED = "unlabelled"


class Recorder:
    """Writes frames as `timestamp_s, acc_x..gyro_z, label, subject` rows (the `har train --data csv:DIR` format)."""

    def __init__(self, path: Path, label: str | None = None, subject: str = "live") -> None:
        check_new_file(path, "--record")
        self.path, self.label, self.subject = Path(path), label, subject
        self.merger: StreamMerger | None = None
        self.rows = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "w", encoding="utf-8", newline="")
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
        try:
            if self.merger is not None:
                self._write(self.merger.flush())
        finally:
            self._file.close()
            if not self.rows:
                self._tmp.unlink()
        if self.rows:
            self.path = publish_new(self._tmp, self.path)
        return self.rows > 0
