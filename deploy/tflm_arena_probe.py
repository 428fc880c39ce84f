"""The TFLM tensor arena a step model needs, measured with the real TFLM kernels (the `tflite_micro` interpreter).

An arena that is too small does not raise in `tflite_micro`: the process dies (SIGSEGV after "Failed to allocate
tail memory"). So every trial runs in a child process (`python -m deploy.tflm_arena_probe MODEL ARENA_BYTES`), which
allocates, invokes, resets and invokes again, and exits 0 only if all of it worked. The smallest working size is
found by bisection on 16-byte steps (TFLM aligns arena allocations to 16 bytes).
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from training.atomic import write_bytes
from training.errors import HarError

ALIGN = 16
MARGIN = 0.10  # the bundle's arena = measured minimum + 10 %, rounded up to 16 bytes
MAX_ARENA = 64 << 20
PROBE_TIMEOUT_S = 60


@dataclass(frozen=True)
class ArenaMeasurement:
    min_arena_bytes: int  # smallest arena_size with which tflite_micro allocates and runs the model
    recorded_bytes: int | None  # "Arena allocation total" of TFLM's RecordingMicroAllocator at a generous size
    arena_bytes: int  # what the bundle reserves: minimum + margin

    @property
    def margin_bytes(self) -> int:
        return self.arena_bytes - self.min_arena_bytes


def _probe(model_path: Path, arena: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.tflm_arena_probe", str(model_path), str(arena)],
                          capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, cwd=Path(__file__).parent.parent)


def with_margin(min_arena: int) -> int:
    return ALIGN * math.ceil(min_arena * (1 + MARGIN) / ALIGN)


def measure_arena(model: bytes) -> ArenaMeasurement:
    with tempfile.TemporaryDirectory(prefix="har-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        write_bytes(path, model)
        hi = max(16 * 1024, 4 * len(model))
        while True:
            trial = _probe(path, hi)
            if trial.returncode == 0:
                break
            last = (trial.stderr.strip().splitlines() or [f"exit status {trial.returncode}"])[-1]
            if trial.returncode > 0:  # a Python error (e.g. an op TFLM lacks), not an arena overflow (a signal)
                raise HarError(f"TFLM cannot run the model: {last}", 3)
            if hi >= MAX_ARENA:
                raise HarError(f"TFLM cannot run the model even with a {MAX_ARENA >> 20} MiB arena: {last}", 3)
            hi *= 2
        found = re.search(r"Arena allocation total (\d+) bytes", trial.stdout + trial.stderr)
        recorded = int(found.group(1)) if found else None
        lo = 0  # invariant: lo fails (0 always does), hi works
        while hi - lo > ALIGN:
            mid = (lo + hi) // 2 // ALIGN * ALIGN
            if mid <= lo:
                break
            if _probe(path, mid).returncode == 0:
                hi = mid
            else:
                lo = mid
    return ArenaMeasurement(hi, recorded, with_margin(hi))


def _run_probe(model_path: str, arena: int) -> None:
    import numpy as np
    from tflite_micro import runtime as tflm

    interp = tflm.Interpreter.from_bytes(Path(model_path).read_bytes(), arena_size=arena)
    details = interp.get_input_details(0)
    x = np.zeros(details["shape"], details["dtype"])
    interp.set_input(x, 0)
    interp.invoke()
    interp.reset()
    interp.set_input(x, 0)
    interp.invoke()
    interp.print_allocations()


if __name__ == "__main__":
    _run_probe(sys.argv[1], int(sys.argv[2]))
