"""Running compiler commands in parallel: a failure raises with the compiler's message, diagnostics are returned."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from training.errors import ExitCode, HarError

def run_compiles(jobs: list[list[str]], what: str = "TFLM library", workers: int | None = None,
                 on_done: Callable[[list[str]], None] | None = None) -> list[str]:
    """Run every compile command (each has `-c SOURCE`) on `workers` processes (default: the CPU count);
    `on_done(cmd)` runs after each success. Returns the compilers' non-empty stderr texts (warnings); raises
    HarError (exit 3) with the first failure's message."""
    def run(cmd: list[str]) -> subprocess.CompletedProcess:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode == 0 and on_done is not None:
            on_done(cmd)
        return done

    diagnostics = []
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        for cmd, done in zip(jobs, pool.map(run, jobs)):
            source = cmd[cmd.index("-c") + 1]
            if done.returncode != 0:
                raise HarError(f"{what} build failed on {source}:\n{done.stderr.strip()}", ExitCode.DOMAIN)
            if done.stderr.strip():
                diagnostics.append(done.stderr.strip())
    return diagnostics
