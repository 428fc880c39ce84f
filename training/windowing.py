"""Resampling recordings to the model rate and cutting them into fixed-length windows."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

from training.errors import HarError
from training.recordings import Dataset, Recording


@dataclass
class Windows:
    """x (N, T, 6) float32 at the model rate; y (N,) class index; subjects (N,) subject id."""

    x: np.ndarray
    y: np.ndarray
    subjects: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def where(self, mask: np.ndarray) -> Windows:
        return Windows(self.x[mask], self.y[mask], self.subjects[mask])

    def of_subjects(self, subjects: list[str]) -> Windows:
        return self.where(np.isin(self.subjects, subjects))


def resample(samples: np.ndarray, fs_in: float, fs_out: float) -> np.ndarray:
    """Polyphase resampling by the rational factor fs_out/fs_in (anti-aliased)."""
    if fs_in == fs_out:
        return samples.astype(np.float32)
    ratio = Fraction(fs_out / fs_in).limit_denominator(1000)
    return resample_poly(samples, ratio.numerator, ratio.denominator, axis=0).astype(np.float32)


def resample_recording(rec: Recording, fs_out: float) -> Recording:
    return Recording(resample(rec.samples, rec.fs_hz, fs_out), fs_out, rec.label, rec.subject)


def window_starts(n: int, window: int, hop: int) -> np.ndarray:
    return np.arange(0, n - window + 1, hop) if n >= window else np.zeros(0, int)


def make_windows(dataset: Dataset, fs_hz: float, window: int, hop: int) -> Windows:
    """Resample every recording to `fs_hz` and cut windows of `window` samples every `hop` samples."""
    if window < 1 or hop < 1:
        raise HarError(f"window and hop must be positive sample counts, got window={window}, hop={hop}")
    xs, ys, subjects = [], [], []
    for rec in dataset.recordings:
        samples = resample(rec.samples, rec.fs_hz, fs_hz)
        starts = window_starts(len(samples), window, hop)
        xs += [samples[s : s + window] for s in starts]
        ys += [dataset.classes.index(rec.label)] * len(starts)
        subjects += [rec.subject] * len(starts)
    if not xs:
        longest = max((r.seconds for r in dataset.recordings), default=0.0)
        raise HarError(
            f"window of {window} samples ({window / fs_hz:.2f} s at {fs_hz:g} Hz) is longer than every recording "
            f"(longest {longest:.2f} s)"
        )
    return Windows(np.stack(xs), np.array(ys, dtype=np.int64), np.array(subjects))
