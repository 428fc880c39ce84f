"""The TFLM tensor arena a model actually needs, measured with the real TFLM allocator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from deploy.step_runtimes import TFLMStep
from training.errors import HarError


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """TFLM's C++ allocator prints every failed allocation to fd 2; the bisection expects many."""
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _runs_with(model: bytes, arena_size: int) -> bool:
    try:
        runner = TFLMStep(model, arena_size=arena_size)
        runner.step(np.zeros(6, np.float32))
        return True
    except HarError:
        return False


def measure_arena_bytes(model: bytes, upper: int = 1 << 20) -> int:
    """Smallest arena (to 16 bytes) in which tflite_micro allocates and invokes the model: a bisection."""
    with _quiet_native_stderr():
        if not _runs_with(model, upper):
            raise HarError(f"the model does not run in TFLM even with a {upper}-byte arena", 1)
        lo, hi = 0, upper  # invariant: hi works, lo does not
        while hi - lo > 16:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if _runs_with(model, mid) else (mid, hi)
    return hi
