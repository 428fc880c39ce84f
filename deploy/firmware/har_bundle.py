"""The har MCU bundle on the harness: two programs built from the generated files, unchanged.

- the decision firmware: the bundle's own main.cc, har_inference.cc and har_model_data.cc plus a board driver
  (har/har_window_driver.cc) that feeds real windows through har_push_sample() and prints every decision;
- the step probe: the TFLM probe (deploy/firmware/tflm_probe.py) on har_model_data.cc, har_op_resolver.h and
  HAR_ARENA_BYTES, printing each Invoke()'s raw int8 output, counting its instructions and reading the arena the
  target uses (run it with deploy.firmware.tflm_probe.run_probe).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.bundle_stm32 import MODEL_ARRAY, MODEL_HEADER
from deploy.firmware.build import Firmware, FirmwareSources, build_firmware
from deploy.firmware.qemu import run_firmware
from deploy.firmware.targets import Target
from deploy.firmware.tflm_probe import CONFIG, build_probe, checked_output, container, probe_config
from training.atomic import write_text
from training.errors import ExitCode, HarError

HAR_DIR = resources.files("deploy.firmware") / "har"
BUNDLE_SOURCES = ("main.cc", "har_inference.cc", "har_model_data.cc")
GOLDEN_OK = "golden window: matches the host TFLM reference"


@dataclass(frozen=True)
class DecisionRun:
    golden_ok: bool
    classes: np.ndarray      # (N,) class index of each window's decision
    counts: np.ndarray       # (N, C) output spikes per class summed over each window


def _har_file(name: str) -> Path:
    return Path(str(HAR_DIR / name))


def build_decision_firmware(bundle: Path, target: Target, out_dir: Path, tflm_root: str | Path | None = None,
                            progress: Callable[[str], None] | None = None) -> Firmware:
    sources = (*(Path(bundle) / n for n in BUNDLE_SOURCES), _har_file("har_window_driver.cc"))
    return build_firmware(FirmwareSources(sources, (Path(bundle),), use_tflm=True), target, out_dir, "har_decisions",
                          tflm_root, progress)


def build_step_probe(bundle: Path, target: Target, out_dir: Path, tflm_root: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> Firmware:
    """The TFLM probe on the bundle's model array, op resolver and arena (one lane, as har_inference.cc)."""
    config = Path(out_dir) / "config"
    write_text(config / CONFIG, probe_config([MODEL_HEADER, "har_op_resolver.h"], MODEL_ARRAY, "HAR_ARENA_BYTES",
                                             "HAR_NUM_RESOURCE_VARIABLES", "HarOpResolver", "har_register_ops"))
    return build_probe([Path(bundle) / "har_model_data.cc"], [config, Path(bundle)], target, out_dir, tflm_root,
                       progress)


def run_decisions(fw: Firmware, raw_windows: np.ndarray, tflm_root: str | Path | None = None) -> DecisionRun:
    """The generated main.cc (golden self-test, then its loop) over raw windows (N, T, 6) in SI units."""
    with tempfile.TemporaryDirectory(prefix="har-fw-") as tmp:
        Path(tmp, "har_windows.bin").write_bytes(container(b"HARW", raw_windows.astype("<f4")))
        result = run_firmware(fw, cwd=Path(tmp), tflm_root=tflm_root)
    out = checked_output(fw, result, "the decision firmware")
    rows = [list(map(int, m.group(1).split())) for m in re.finditer(r"^decision ([\d ]+)$", out, re.M)]
    if len(rows) != len(raw_windows):
        raise HarError(f"the decision firmware gave {len(rows)} decisions for {len(raw_windows)} windows",
                       ExitCode.FAILURE)
    table = np.array(rows, dtype=np.int64)
    return DecisionRun(GOLDEN_OK in out, table[:, 0], table[:, 1:])
