"""A run directory `runs/<time>-<name>/`: the unit every downstream command reads. No torch needed here."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.atomic import write_text
from training.errors import HarError
from training.normalization import Normalization

CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
NORMALIZATION = "normalization.json"
METRICS = "metrics.json"


def lanes_needed(window: int, hop: int) -> int:
    """Overlapping windows in flight, each with its own state copy: L = ceil(window / hop)."""
    return -(-window // hop)


def new_run_dir(runs_root: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    path = Path(runs_root) / f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = path.with_name(f"{time.strftime('%Y%m%d-%H%M%S')}-{safe}-{suffix}")
    path.mkdir(parents=True)
    return path


def latest_run(runs_root: Path) -> Path:
    runs = sorted(p for p in Path(runs_root).glob("*/") if (p / CONFIG).exists() and (p / WEIGHTS).exists())
    if not runs:
        raise HarError(f"no trained run in {runs_root}/: run `har train` first or pass --run RUN_DIR")
    return runs[-1]


@dataclass
class Run:
    """What downstream commands need of a run: its folder, config, normalisation and metrics."""

    path: Path
    config: dict
    normalization: Normalization
    metrics: dict

    @property
    def classes(self) -> list[str]:
        return self.config["data"]["classes"]

    @property
    def fs_hz(self) -> float:
        return self.config["data"]["fs_hz"]

    @property
    def window(self) -> int:
        return self.config["data"]["window"]

    @property
    def hop(self) -> int:
        return self.config["data"]["hop"]


def open_run(path: Path) -> Run:
    path = Path(path)
    if not (path / CONFIG).exists():
        raise HarError(f"{path} is not a run directory (no {CONFIG})")
    try:
        config = json.loads((path / CONFIG).read_text())
        norm = Normalization.load(path / NORMALIZATION)
        metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).exists() else {}
    except (OSError, ValueError, KeyError) as exc:
        raise HarError(f"corrupt run directory {path}: {exc}") from None
    return Run(path, config, norm, metrics)


def _plain(o: object) -> object:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (np.ndarray, Path)):
        return o.tolist() if isinstance(o, np.ndarray) else str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def to_json(obj: dict) -> str:
    """JSON text of a result, with numpy scalars and arrays as plain numbers and lists."""
    return json.dumps(obj, indent=2, default=_plain) + "\n"


def write_json(path: Path, obj: dict) -> None:
    write_text(path, to_json(obj))
