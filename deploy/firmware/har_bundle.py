"""The har MCU bundle on the harness: two programs built from the generated files, unchanged.

- the decision firmware: the bundle's own main.cc, har_inference.cc and har_model_data.cc plus a board driver
  (har/har_window_driver.cc) that feeds real windows through har_push_sample() and prints every decision;
- the step probe: har_model_data.cc + har_op_resolver.h in one lane built as har_inference.cc builds it, printing
  each Invoke()'s raw int8 output, counting its instructions and reading the arena the target uses.
"""

from __future__ import annotations

import re
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.firmware.build import Firmware, FirmwareSources, build_firmware
from deploy.firmware.qemu import FAULT_EXIT, run_firmware
from deploy.firmware.targets import Target
from training.errors import HarError

HAR_DIR = resources.files("deploy.firmware") / "har"
BUNDLE_SOURCES = ("main.cc", "har_inference.cc", "har_model_data.cc")
GOLDEN_OK = "golden window: matches the host TFLM reference"
VERIFY_FAILED = 1


@dataclass(frozen=True)
class DecisionRun:
    golden_ok: bool
    classes: np.ndarray      # (N,) class index of each window's decision
    counts: np.ndarray       # (N, C) output spikes per class summed over each window


@dataclass(frozen=True)
class StepRun:
    outputs: np.ndarray              # (N, T, C) int8 raw output of every Invoke()
    arena_used_bytes: int            # MicroInterpreter::arena_used_bytes() after the run
    instructions: np.ndarray | None  # (N, T) instructions of every Invoke() (QEMU targets, counting runs)


def _har_file(name: str) -> Path:
    return Path(str(HAR_DIR / name))


def build_decision_firmware(bundle: Path, target: Target, out_dir: Path, tflm_root: str | Path | None = None,
                            progress: Callable[[str], None] | None = None) -> Firmware:
    sources = (*(Path(bundle) / n for n in BUNDLE_SOURCES), _har_file("har_window_driver.cc"))
    return build_firmware(FirmwareSources(sources, (Path(bundle),), use_tflm=True), target, out_dir, "har_decisions",
                          tflm_root, progress)


def build_step_probe(bundle: Path, target: Target, out_dir: Path, tflm_root: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> Firmware:
    sources = (Path(bundle) / "har_model_data.cc", _har_file("har_step_probe.cc"))
    return build_firmware(FirmwareSources(sources, (Path(bundle),), use_tflm=True), target, out_dir, "har_steps",
                          tflm_root, progress)


def _container(magic: bytes, data: np.ndarray) -> bytes:
    n, t, c = data.shape
    return magic + struct.pack("<3I", n, t, c) + np.ascontiguousarray(data).tobytes()


def _checked(fw: Firmware, result, what: str) -> str:
    out = result.stdout.decode(errors="replace")
    if result.exit_code != 0:
        why = "a fault (exit 99)" if result.exit_code == FAULT_EXIT else f"exit status {result.exit_code}"
        last = (out.strip().splitlines() or [result.stderr.strip()])[-1:]
        raise HarError(f"{what} on {fw.target.name} ended with {why}: {' '.join(last)}", VERIFY_FAILED)
    return out


def run_decisions(fw: Firmware, raw_windows: np.ndarray, tflm_root: str | Path | None = None) -> DecisionRun:
    """The generated main.cc (golden self-test, then its loop) over raw windows (N, T, 6) in SI units."""
    with tempfile.TemporaryDirectory(prefix="har-fw-") as tmp:
        Path(tmp, "har_windows.bin").write_bytes(_container(b"HARW", raw_windows.astype("<f4")))
        out = _checked(fw, run_firmware(fw, cwd=Path(tmp), tflm_root=tflm_root), "the decision firmware")
    rows = [list(map(int, m.group(1).split())) for m in re.finditer(r"^decision ([\d ]+)$", out, re.M)]
    if len(rows) != len(raw_windows):
        raise HarError(f"the decision firmware gave {len(rows)} decisions for {len(raw_windows)} windows",
                       VERIFY_FAILED)
    table = np.array(rows, dtype=np.int64)
    return DecisionRun(GOLDEN_OK in out, table[:, 0], table[:, 1:])


def run_steps(fw: Firmware, q_windows: np.ndarray, count: bool = False,
              tflm_root: str | Path | None = None) -> StepRun:
    """The step probe over quantised windows (N, T, 6) int8, each from the zero state (Reset())."""
    n, t, _ = q_windows.shape
    with tempfile.TemporaryDirectory(prefix="har-fw-") as tmp:
        Path(tmp, "har_steps.bin").write_bytes(_container(b"HARQ", q_windows.astype(np.int8)))
        result = run_firmware(fw, cwd=Path(tmp), count=count, tflm_root=tflm_root)
        out = _checked(fw, result, "the step probe")
    hexes = re.findall(r"^out ([0-9a-f]+)$", out, re.M)
    arena = re.search(r"^arena_used (\d+)$", out, re.M)
    if len(hexes) != n * t or arena is None:
        raise HarError(f"the step probe printed {len(hexes)} of {n * t} step outputs", VERIFY_FAILED)
    outputs = np.array([np.frombuffer(bytes.fromhex(h), dtype=np.int8) for h in hexes]).reshape(n, t, -1)
    instructions = None
    if count:
        if result.regions is None or len(result.regions) != n * t:
            raise HarError(f"the counting plugin saw {len(result.regions or ())} of {n * t} Invoke() regions",
                           VERIFY_FAILED)
        instructions = np.array(result.regions, dtype=np.int64).reshape(n, t)
    return StepRun(outputs, int(arena.group(1)), instructions)
