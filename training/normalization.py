"""Per-channel standardisation fitted on the training subjects only and saved beside the weights."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.atomic import write_text
from training.recordings import CHANNELS, UNITS


@dataclass
class Normalization:
    mean: np.ndarray  # (6,) in SI units
    std: np.ndarray  # (6,)

    @classmethod
    def fit(cls, x: np.ndarray) -> Normalization:
        flat = x.reshape(-1, x.shape[-1])
        return cls(flat.mean(0).astype(np.float32), np.maximum(flat.std(0), 1e-6).astype(np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)  # z = (x - mu) / sigma

    def to_dict(self) -> dict:
        return {"channels": list(CHANNELS), "units": list(UNITS), "mean": self.mean.tolist(), "std": self.std.tolist()}

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> Normalization:
        d = json.loads(Path(path).read_text())
        return cls(np.array(d["mean"], np.float32), np.array(d["std"], np.float32))
