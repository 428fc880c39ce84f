"""Running a firmware image: natively for the host target, under `qemu-system-arm` with semihosting for Cortex-M
targets, optionally counting executed instructions with the harness's TCG plugin (plugin/insn_regions.c).

Semihosting (newlib's rdimon) gives the guest the host's stdin/stdout and files relative to the run folder, and its
exit() code becomes QEMU's exit status (docs/firmware.md)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from deploy.firmware.build import Firmware
from deploy.firmware.tflm_lib import cache_dir, compiler_version, default_root
from training.atomic import atomic_path
from training.errors import ExitCode, HarError

PLUGIN_SOURCE = resources.files("deploy.firmware") / "plugin" / "insn_regions.c"
PLUGIN_API_ENV = "HAR_QEMU_PLUGIN_API"
PLUGIN_API_DIR = "qemu_7.2_plugin_api"   # beside the TFLM trees under the TFLM root
FAULT_EXIT = 99                           # startup.c: every fault handler exits with it
RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class RunResult:
    exit_code: int
    stdout: bytes
    stderr: str
    total_instructions: int | None        # all guest instructions (counting runs only)
    regions: tuple[int, ...] | None       # instructions of each prof_begin()..prof_end() pair, in order


def plugin_header_dir(tflm_root: str | Path | None = None) -> Path:
    """The folder holding QEMU 7.2's qemu-plugin.h: $HAR_QEMU_PLUGIN_API, else <TFLM root>/qemu_7.2_plugin_api."""
    explicit = os.environ.get(PLUGIN_API_ENV)
    root = default_root(tflm_root)
    candidates = [Path(explicit)] if explicit else ([root / PLUGIN_API_DIR, root.parent / PLUGIN_API_DIR]
                                                   if root else [])
    for folder in candidates:
        if (folder / "qemu-plugin.h").is_file():
            return folder
    raise HarError(f"no qemu-plugin.h (QEMU 7.2 plugin API) found: set {PLUGIN_API_ENV} to its folder or put "
                   f"{PLUGIN_API_DIR}/ in the TFLM root (docs/firmware.md)")


def counting_plugin(tflm_root: str | Path | None = None) -> Path:
    """The instruction-counting plugin, compiled once per source/header/compiler into the firmware cache."""
    header = plugin_header_dir(tflm_root) / "qemu-plugin.h"
    source = PLUGIN_SOURCE.read_bytes()
    key = hashlib.sha256(source + header.read_bytes() + compiler_version("gcc").encode()).hexdigest()[:16]
    lib = cache_dir() / f"plugin-{key}" / "libinsn_regions.so"
    if lib.is_file():
        return lib
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "insn_regions.c"
        src.write_bytes(source)
        with atomic_path(lib) as out:
            done = subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", f"-I{header.parent}",
                                   str(src), "-o", str(out)], capture_output=True, text=True)
            if done.returncode != 0:
                raise HarError(f"building the QEMU plugin failed:\n{done.stderr.strip()}", ExitCode.DOMAIN)
    return lib


def qemu_command(fw: Firmware, plugin: Path | None = None, counts: Path | None = None) -> list[str]:
    cmd = ["qemu-system-arm", "-M", fw.target.qemu_machine, "-nographic", "-monitor", "none", "-serial", "none",
           "-semihosting-config", "enable=on,target=native", "-kernel", str(fw.path.resolve())]
    if plugin is not None:
        begin, end = fw.markers
        cmd += ["-plugin", f"{plugin},begin={begin:#x},end={end:#x},out={counts}"]
    return cmd


def parse_counts(text: str) -> tuple[int, tuple[int, ...]]:
    total, regions = 0, []
    for line in text.splitlines():
        kind, value = line.split()
        if kind == "total":
            total = int(value)
        else:
            regions.append(int(value))
    return total, tuple(regions)


def run_firmware(fw: Firmware, stdin: bytes = b"", cwd: Path | None = None, count: bool = False,
                 tflm_root: str | Path | None = None, timeout: float = RUN_TIMEOUT_S) -> RunResult:
    """Run `fw` with `stdin`, in `cwd` (the guest's files are relative to it); `count` adds the instruction counts
    (Cortex-M targets only). A fault in the guest gives exit code FAULT_EXIT."""
    if count and (fw.target.is_host or fw.markers is None):
        raise ValueError("instruction counts need a QEMU target and a program calling prof_begin()/prof_end()")
    with tempfile.TemporaryDirectory(prefix="har-fw-run-") as tmp:
        counts = Path(tmp) / "counts.txt"
        if fw.target.is_host:
            cmd = [str(fw.path.resolve())]
        else:
            cmd = qemu_command(fw, counting_plugin(tflm_root) if count else None, counts)
        try:
            done = subprocess.run(cmd, input=stdin, capture_output=True, cwd=cwd or tmp, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise HarError(f"{fw.path.name} on {fw.target.name} did not finish within {timeout:g} s", ExitCode.FAILURE) from None
        except OSError as exc:
            raise HarError(f"cannot run {cmd[0]}: {exc.strerror}; run `make system-deps`",
                           ExitCode.DOMAIN) from None
        total, regions = parse_counts(counts.read_text()) if count and counts.exists() else (None, None)
    return RunResult(done.returncode, done.stdout, done.stderr.decode(errors="replace"), total, regions)
