"""The TFLM tensor arena a step model needs, measured with the real TFLM kernels (the `tflite_micro` interpreter).

An arena that is too small does not always raise in `tflite_micro`: the process may die (SIGSEGV after "Failed to
allocate tail memory"). So the measurement runs in a child process (`python -m deploy.tflm_arena_probe MODEL`) that
tries every size in a forked grandchild of its own. A size works when the grandchild does what the firmware does
with a lane (allocate, invoke, reset at a window start, invoke again) and exits 0. The smallest working size is
found by doubling, then bisection on 16-byte steps (TFLM aligns arena allocations to 16 bytes).
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from training.atomic import write_bytes
from training.errors import ExitCode, HarError

ALIGN = 16
MARGIN = 0.10  # the bundle's arena = measured minimum + 10 %, rounded up to 16 bytes
MAX_ARENA = 64 << 20
MEASURE_TIMEOUT_S = 300
RESULT = "har-min-arena-bytes"


HOST_BASIS = ("smallest arena_size with which the tflite_micro Python interpreter allocates, invokes, resets and "
              "invokes the model again; 64-bit host pointers")


@dataclass(frozen=True)
class ArenaMeasurement:
    min_arena_bytes: int  # the arena the model needs, measured as `basis` says
    recorded_bytes: int | None  # "Arena allocation total" of TFLM's RecordingMicroAllocator at that size
    arena_bytes: int  # what a bundle reserves: minimum + margin
    basis: str = HOST_BASIS

    @property
    def margin_bytes(self) -> int:
        return self.arena_bytes - self.min_arena_bytes


def with_margin(min_arena: int) -> int:
    return ALIGN * math.ceil(min_arena * (1 + MARGIN) / ALIGN)


def target_arena(min_bytes: int, target: str) -> ArenaMeasurement:
    """The arena measured by the firmware itself on `target` (32-bit pointers)."""
    basis = (f"smallest arena in which the bundle's lane is created, allocated, invoked, reset and invoked on "
             f"{target} under QEMU (32-bit pointers), bisection in the firmware")
    return ArenaMeasurement(min_bytes, None, with_margin(min_bytes), basis)


def measure_arena(model: bytes) -> ArenaMeasurement:
    with tempfile.TemporaryDirectory(prefix="har-arena-") as tmp:
        path = Path(tmp) / "model.tflite"
        write_bytes(path, model)
        done = subprocess.run([sys.executable, "-m", "deploy.tflm_arena_probe", str(path)], capture_output=True,
                              text=True, timeout=MEASURE_TIMEOUT_S, cwd=Path(__file__).parent.parent)
    result = re.search(rf"{RESULT} (\d+)", done.stdout)  # TFLM's own prints may share its line
    if done.returncode != 0 or not result:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise HarError(f"TFLM cannot run the model: {last}", ExitCode.DOMAIN)
    min_arena = int(result.group(1))
    recorded = re.search(r"Arena allocation total (\d+) bytes", done.stdout + done.stderr)
    return ArenaMeasurement(min_arena, int(recorded.group(1)) if recorded else None, with_margin(min_arena))


# --- the child process ---

def _exercise(model: bytes, arena: int, report: bool = False) -> None:
    """A lane's life on the firmware: allocate, invoke, reset (window start), invoke."""
    import numpy as np
    from tflite_micro import runtime as tflm

    interp = tflm.Interpreter.from_bytes(model, arena_size=arena)
    details = interp.get_input_details(0)
    x = np.zeros(details["shape"], details["dtype"])
    interp.set_input(x, 0)
    interp.invoke()
    interp.reset()
    interp.set_input(x, 0)
    interp.invoke()
    if report:
        interp.print_allocations()


def _works(model: bytes, arena: int) -> tuple[bool, str]:
    """Try one size in a forked grandchild with its output silenced; (worked, why not)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)  # TFLM prints every failed allocation
        try:
            _exercise(model, arena)
        except Exception as exc:  # the interpreter raises RuntimeError or ValueError on models it cannot run
            os.write(write_end, f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}".encode())
            os._exit(1)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode(errors="replace")
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return status == 0, message or (f"killed by signal {-status}" if status < 0 else f"exit status {status}")


def _smallest_arena(model: bytes) -> int:
    lo, hi = 0, ALIGN * math.ceil(max(16 * 1024, 4 * len(model)) / ALIGN)  # once found: lo fails (0 does), hi works
    while True:
        ok, why = _works(model, hi)
        if ok:
            break
        if hi >= MAX_ARENA:
            sys.exit(f"it fails even with a {MAX_ARENA >> 20} MiB arena ({why})")
        lo, hi = hi, hi * 2
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if mid <= lo:
            break
        lo, hi = (lo, mid) if _works(model, mid)[0] else (mid, hi)
    return hi


if __name__ == "__main__":
    import numpy  # noqa: F401  (imported once here rather than in every forked trial)
    from tflite_micro import runtime  # noqa: F401

    data = Path(sys.argv[1]).read_bytes()
    smallest = _smallest_arena(data)
    _exercise(data, smallest, report=True)  # known to work: prints TFLM's allocation record
    sys.stdout.flush()
    print(f"\n{RESULT} {smallest}", flush=True)
