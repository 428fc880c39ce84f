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
from training.validate import check_folder, check_normalization, check_run_config, is_kind

# The artifacts of a run directory, by the stage that writes them (docs/run-artifacts.md). `har train`:
CONFIG = "config.json"
WEIGHTS = "weights.safetensors"
NORMALIZATION = "normalization.json"
HISTORY = "history.json"
CONFUSION_PLOT = "confusion_matrix.png"
CURVES_PLOT = "training_curves.png"
RASTER_PLOT = "spike_raster.png"
METRICS = "metrics.json"  # written last (after the compression stages): a run without it is not finished
MODEL_CARD = "README.md"
# `har train --compress prune|int8`:
PRUNED_WEIGHTS = "weights_pruned.safetensors"
FP32_MODEL = "model_fp32.tflite"
INT8_MODEL = "model_int8.tflite"
INT8_C_ARRAY = "model_int8"  # the C array of INT8_MODEL, in INT8_C_SOURCE, declared in INT8_C_HEADER
INT8_C_SOURCE = f"{INT8_C_ARRAY}.cc"
INT8_C_HEADER = f"{INT8_C_ARRAY}.h"
QUANTIZATION_REPORT = "quantization_report.md"
INTEGER_WEIGHTS = "weights_integer.safetensors"
INTEGER_C_HEADER = "har_model.h"  # the integer engine's model, also in a native bundle (har_engine.h includes it)
INTEGER_C_SOURCE = "har_model.c"
# `har deploy`:
DEPLOY_DIR = "deploy"  # DEPLOY_DIR/<device>/: the default bundle folder
FIRMWARE_DIR = "firmware"  # FIRMWARE_DIR/<device>.json: the last `--verify` measurement on that device


def lanes_needed(window: int, hop: int) -> int:
    """Overlapping windows in flight, each with its own state copy: L = ceil(window / hop)."""
    return -(-window // hop)


def new_run_dir(runs_root: Path, name: str) -> Path:
    """A new, empty folder `runs_root/<time>-<name>[-N]/`; an existing folder is never reused."""
    check_folder(runs_root, "--runs-dir")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for suffix in range(1, 1000):
        path = Path(runs_root) / (f"{stamp}-{safe}" if suffix == 1 else f"{stamp}-{safe}-{suffix}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
        except OSError as exc:
            raise HarError(f"cannot create a run directory in {runs_root}: {exc.strerror}") from None
    raise HarError(f"cannot create a run directory in {runs_root}: 999 runs named {safe} this second")


def is_trained(path: Path) -> bool:
    """Whether `path` is a finished `har train` run: config, normalisation, weights, and metrics.json (written
    last) recording at least one completed epoch."""
    path = Path(path)
    if not all((path / name).is_file() for name in (CONFIG, WEIGHTS, NORMALIZATION, METRICS)):
        return False
    try:
        training = json.loads((path / METRICS).read_text(encoding="utf-8")).get("training", {})
        return isinstance(training, dict) and is_kind(training.get("best_epoch"), int) and training["best_epoch"] >= 1
    except (OSError, ValueError, AttributeError):
        return False


def latest_run(runs_root: Path) -> Path:
    """The newest trained run in `runs_root` (names start with their creation time); untrained, interrupted
    or half-written runs are skipped."""
    check_folder(runs_root, "--runs-dir")
    runs = sorted(p for p in Path(runs_root).glob("*/") if not p.name.startswith(".") and is_trained(p))
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

    @property
    def stream(self) -> bool:
        """Trained by `har train --stream`: one lane, reset only at a stream start, a gap or a reconnect."""
        return self.config["data"].get("stream", False) is True

    @property
    def lanes(self) -> int:
        """State copies a runtime keeps: 1 for a stream run, else L = ceil(window / hop)."""
        return 1 if self.stream else lanes_needed(self.window, self.hop)

    @property
    def steps_per_decision(self) -> int:
        """Model steps a decision costs: a stream run's one lane steps `hop` samples between decisions; a windowed
        decision integrates one window from the zero state (`window` steps, spread over its lanes)."""
        return self.hop if self.stream else self.window


def read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:  # not UTF-8, or not JSON
        raise HarError(f"{path} is not valid JSON: {exc}") from None


def open_run(path: Path) -> Run:
    """A run directory with its config and normalisation validated (types, ranges, shapes)."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise HarError(f"{path} is not a run directory (no {CONFIG})")
    config = check_run_config(read_json(path / CONFIG), str(path / CONFIG))
    mean, std = check_normalization(read_json(path / NORMALIZATION), str(path / NORMALIZATION))
    metrics = read_json(path / METRICS) if (path / METRICS).exists() else {}
    if not isinstance(metrics, dict):
        raise HarError(f"{path / METRICS} must hold a JSON object")
    return Run(path, config, Normalization(np.array(mean, np.float32), np.array(std, np.float32)), metrics)


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
