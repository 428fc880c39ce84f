"""The one data representation every source produces: continuous 6-axis recordings in SI units."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = ("m/s^2",) * 3 + ("rad/s",) * 3
STANDARD_GRAVITY = 9.80665  # m/s^2 per g


@dataclass
class Recording:
    """One continuous recording of one activity by one subject: samples (n, 6), acc m/s^2 then gyro rad/s."""

    samples: np.ndarray
    fs_hz: float
    label: str
    subject: str

    def __post_init__(self) -> None:
        self.samples = np.asarray(self.samples, dtype=np.float32)
        if self.samples.ndim != 2 or self.samples.shape[1] != len(CHANNELS):
            raise ValueError(f"samples must have shape (n, 6), got {self.samples.shape}")
        if self.fs_hz <= 0:
            raise ValueError(f"fs_hz must be positive, got {self.fs_hz}")

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.fs_hz


@dataclass
class Dataset:
    """A named set of recordings with an ordered class list (label index = position in `classes`)."""

    name: str
    recordings: list[Recording]
    classes: list[str]
    skipped_lines: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def subjects(self) -> list[str]:
        return sorted({r.subject for r in self.recordings}, key=_natural_key)

    @property
    def fs_hz(self) -> float:
        rates = {r.fs_hz for r in self.recordings}
        return rates.pop() if len(rates) == 1 else float("nan")

    def only_subjects(self, subjects: list[str]) -> Dataset:
        keep = set(subjects)
        recs = [r for r in self.recordings if r.subject in keep]
        return Dataset(self.name, recs, self.classes, self.skipped_lines, list(self.notes))


def _natural_key(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)
