"""Keeping LiteRT's C++ INFO line "Created TensorFlow Lite XNNPACK delegate for CPU." off the user's stderr.

LiteRT creates its default XNNPACK delegate at an interpreter's first invoke and logs that line from C++ straight to
file descriptor 2; no Python or environment setting turns it off (TF_CPP_MIN_LOG_LEVEL does not). So the first invoke
runs with fd 2 sent to a temporary file, and everything else written there meanwhile is passed on to the real stderr.
Standard library only: the Linux bundle ships a copy (`har_native_log.py`) for its runner.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

NOISE = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",)


@contextmanager
def native_noise_filtered() -> Iterator[None]:
    """Within the block, native writes to fd 2 are captured; afterwards they are re-written without the NOISE lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode(errors="replace").splitlines(keepends=True)
                    if line.strip() not in NOISE]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
