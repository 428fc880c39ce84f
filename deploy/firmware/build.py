"""Building one firmware image (an ELF for QEMU, or a native executable for the host target) from the caller's
C/C++ sources, with or without the cached TFLM library. Only the caller's files and the harness's board files are
compiled here, so a build with a warm library cache takes seconds."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from deploy.firmware.compile import run_compiles
from deploy.firmware.targets import Target
from deploy.firmware.tflm_lib import compile_command, locate_tree, tflm_library
from training.errors import ExitCode, HarError

BOARD = resources.files("deploy.firmware") / "board"
LINKER_SCRIPT = "an386.ld"
MARKERS = ("prof_begin", "prof_end")


@dataclass(frozen=True)
class FirmwareSources:
    """What to build: the caller's sources (.c, .cc, .cpp) and include folders. `use_tflm` links the TFLM library
    of the target's tree and adds its include paths."""

    sources: tuple[Path, ...]
    include_dirs: tuple[Path, ...] = ()
    defines: tuple[str, ...] = ()          # e.g. ("-DHAR_X=1",)
    use_tflm: bool = False
    optimisation: str = "-O2"


@dataclass(frozen=True)
class ElfSizes:
    """arm-none-eabi-size (Berkeley format): text = code + constants (flash), data = initialised RAM (also
    stored in flash), bss = zeroed RAM."""

    text: int
    data: int
    bss: int


@dataclass(frozen=True)
class Firmware:
    path: Path
    target: Target
    sizes: ElfSizes
    markers: tuple[int, int] | None        # entry addresses of prof_begin / prof_end (QEMU targets that call them)
    warnings: tuple[str, ...] = field(default=())  # compiler diagnostics of the caller's sources (empty = clean)


def _board_sources(target: Target) -> list[Path]:
    names = ["prof.c"] if target.is_host else ["prof.c", "startup.c"]
    return [Path(str(BOARD / n)) for n in names]


def link_command(target: Target, objs: list[Path], libs: list[Path], out: Path) -> list[str]:
    if target.is_host:
        return [target.cxx, "-Wl,--gc-sections", *map(str, objs), *map(str, libs), "-lm", "-o", str(out)]
    return [target.cxx, *target.cpu_flags, "-T", str(BOARD / LINKER_SCRIPT), "-nostartfiles", "--specs=nano.specs",
            "--specs=rdimon.specs", "-u", "_printf_float", "-Wl,--gc-sections", f"-Wl,-Map,{out}.map",
            *map(str, objs), *map(str, libs), "-lm", "-o", str(out)]


def elf_sizes(path: Path, target: Target) -> ElfSizes:
    done = subprocess.run([target.tool("size"), str(path)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in done.stdout.splitlines()[1].split()[:3])
    return ElfSizes(text, data, bss)


def marker_addresses(path: Path, target: Target) -> tuple[int, int] | None:
    """prof_begin / prof_end entry addresses (Thumb bit cleared) from the symbol table; None when the program
    never calls them (the linker's --gc-sections dropped them)."""
    done = subprocess.run([target.tool("nm"), str(path)], capture_output=True, text=True, check=True)
    found = {m.group(2): int(m.group(1), 16) & ~1
             for m in re.finditer(r"^([0-9a-fA-F]+) [Tt] (\w+)$", done.stdout, re.M)}
    return (found[MARKERS[0]], found[MARKERS[1]]) if all(name in found for name in MARKERS) else None


def build_firmware(app: FirmwareSources, target: Target, out_dir: Path, name: str = "app",
                   tflm_root: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> Firmware:
    """Compile `app` for `target` into `out_dir/name` (+ `.map` on Cortex-M); the TFLM library is taken from the
    cache or built first. Raises HarError (exit 3) when a compile or the link fails."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    includes = [*map(Path, app.include_dirs), Path(str(BOARD))]
    libs: list[Path] = []
    if app.use_tflm:
        tree = locate_tree(target, tflm_root)
        libs.append(tflm_library(tree, progress))
        includes += tree.include_dirs
    own = [Path(s) for s in app.sources]
    board = _board_sources(target)
    objs = [out_dir / f"{name}.{i:02d}.{src.stem}.o" for i, src in enumerate(own + board)]
    jobs = [compile_command(target, src, obj, includes, app.optimisation, app.defines)
            for src, obj in zip(own + board, objs)]
    diagnostics = run_compiles(jobs, what=name)
    out = out_dir / name
    done = subprocess.run(link_command(target, objs, libs, out), capture_output=True, text=True)
    if done.returncode != 0:
        raise HarError(f"linking {name} for {target.name} failed:\n{done.stderr.strip()}", ExitCode.DOMAIN)
    markers = None if target.is_host else marker_addresses(out, target)
    return Firmware(out, target, elf_sizes(out, target), markers, tuple(diagnostics))
