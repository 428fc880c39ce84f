"""The TFLM static library of a target, built once from a read-only source tree and cached outside it.

The cache key hashes every source and header of the tree (path + content), the compile flags and the compiler's
version, so a changed tree, flag or toolchain gives a new library; an unchanged one is found in milliseconds."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy.firmware.compile import run_compiles
from deploy.firmware.targets import C_FLAGS, COMMON_DEFINES, COMMON_FLAGS, CXX_FLAGS, TFLM_WARNINGS, Target
from training.errors import ExitCode, HarError

ROOT_ENV = "HAR_TFLM_ROOT"
CACHE_ENV = "HAR_FIRMWARE_CACHE"
JOBS_ENV = "HAR_FIRMWARE_JOBS"
LIBRARY_NAME = "libtflm.a"
_SOURCE_SUFFIXES = (".c", ".cc")
_HASHED_SUFFIXES = (".c", ".cc", ".h", ".hpp", ".inc")


@dataclass(frozen=True)
class TflmTree:
    """A TFLM source tree (TFLM's create_tflm_tree.py layout) for one target."""

    path: Path
    target: Target

    @property
    def include_dirs(self) -> list[Path]:
        t = self.path
        dirs = [t, t / "third_party/flatbuffers/include", t / "third_party/gemmlowp", t / "third_party/kissfft",
                t / "third_party/ruy"]
        if self.target.cmsis_nn:
            dirs += [t / "third_party/cmsis", t / "third_party/cmsis/CMSIS/Core/Include",
                     t / "third_party/cmsis/Cortex_DFP/Device/ARMCM4/Include", t / "third_party/cmsis_nn",
                     t / "third_party/cmsis_nn/Include"]
        return dirs

    def library_sources(self) -> list[Path]:
        """Every .c/.cc under tensorflow/ and signal/ (+ CMSIS-NN's Source/), never examples/ or kissfft/*.c."""
        roots = [self.path / "tensorflow", self.path / "signal"]
        if self.target.cmsis_nn:
            roots.append(self.path / "third_party/cmsis_nn/Source")
        return sorted(p for root in roots for p in root.rglob("*") if p.suffix in _SOURCE_SUFFIXES)

    def optimisation(self, source: Path) -> str:
        """TFLM's split: -O2 for kernels, signal and CMSIS-NN, -Os for the interpreter core."""
        rel = source.relative_to(self.path).as_posix()
        fast = rel.startswith(("tensorflow/lite/micro/kernels/", "signal/", "third_party/cmsis_nn/"))
        return "-O2" if fast else "-Os"


def default_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """`explicit` (the --tflm-root option), else $HAR_TFLM_ROOT, else None."""
    value = explicit if explicit is not None else os.environ.get(ROOT_ENV)
    return Path(value).expanduser().resolve() if value else None


def locate_tree(target: Target, root: str | os.PathLike | None = None) -> TflmTree:
    """The tree for `target`: `root` itself if it is a TFLM tree, else `root/<target.tree>` (docs/firmware.md)."""
    base = default_root(root)
    if base is None:
        raise HarError(f"no TFLM source tree: pass --tflm-root PATH or set {ROOT_ENV} (docs/firmware.md)")
    for candidate in (base, base / target.tree):
        if (candidate / "tensorflow/lite/micro/micro_interpreter.h").is_file():
            if target.cmsis_nn and not (candidate / "third_party/cmsis_nn/Include").is_dir():
                continue
            return TflmTree(candidate, target)
    need = "with CMSIS-NN (third_party/cmsis_nn)" if target.cmsis_nn else "(reference kernels)"
    raise HarError(f"{base}: no TFLM tree {need} for {target.name} here or in {base / target.tree} "
                   f"(set --tflm-root / {ROOT_ENV}; docs/firmware.md)")


def cache_dir() -> Path:
    """$HAR_FIRMWARE_CACHE, else $XDG_CACHE_HOME/har/firmware, else ~/.cache/har/firmware."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "har" / "firmware"


def compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HarError(f"compiler {compiler} not found or broken ({exc}); run `make system-deps`",
                       ExitCode.DOMAIN) from exc


def compile_command(t: Target, source: Path, obj: Path, include_dirs: list[Path], opt: str,
                    extra: tuple[str, ...] = ()) -> list[str]:
    """The compiler command line for one source file, with TFLM's flags and warning set."""
    lang = (t.cxx, *CXX_FLAGS) if source.suffix in (".cc", ".cpp") else (t.cc, *C_FLAGS)
    return [*lang, *t.cpu_flags, *COMMON_FLAGS, *COMMON_DEFINES, *t.defines, *TFLM_WARNINGS, *t.extra_warnings,
            opt, *extra, *(f"-I{d}" for d in include_dirs), "-c", str(source), "-o", str(obj)]


def library_key(tree: TflmTree) -> str:
    """sha256 over the tree's sources and headers, the flags of every library object and the compilers' versions."""
    h = hashlib.sha256()
    for path in sorted(p for p in tree.path.rglob("*") if p.suffix in _HASHED_SUFFIXES and p.is_file()):
        h.update(path.relative_to(tree.path).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    probe = compile_command(tree.target, Path("x.cc"), Path("x.o"), [], "-O2") + compile_command(
        tree.target, Path("x.c"), Path("x.o"), [], "-Os")
    h.update("\0".join(probe).encode())
    h.update(compiler_version(tree.target.cxx).encode() + compiler_version(tree.target.cc).encode())
    return f"{tree.target.name}-{h.hexdigest()[:16]}"


def build_jobs() -> int:
    """Parallel compiler processes: $HAR_FIRMWARE_JOBS, else the CPU count."""
    value = os.environ.get(JOBS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else (os.cpu_count() or 1)


def tflm_library(tree: TflmTree, progress: Callable[[str], None] | None = None) -> Path:
    """The cached libtflm.a for `tree`, building it first if absent (minutes, once per tree/flags/toolchain).
    One builder per key at a time (a lock file); an interrupted build resumes from the objects it finished."""
    final = cache_dir() / library_key(tree)
    lib = final / LIBRARY_NAME
    if lib.is_file():
        return lib
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".{final.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building the same library: wait for it
        if lib.is_file():
            return lib
        sources = tree.library_sources()
        work = final.parent / f".{final.name}.partial"
        work.mkdir(exist_ok=True)
        objs = [work / f"{i:04d}_{src.stem}.o" for i, src in enumerate(sources)]
        todo = [(src, obj) for src, obj in zip(sources, objs) if not obj.is_file()]
        if progress:
            progress(f"building the TFLM library for {tree.target.name} from {tree.path} ({len(todo)} of "
                     f"{len(sources)} files to compile, once; cached in {final})")
        # each object is compiled to a temporary name and renamed, so a present .o is always complete
        jobs = [compile_command(tree.target, src, obj.with_suffix(".o.tmp"), tree.include_dirs, tree.optimisation(src))
                for src, obj in todo]
        run_compiles(jobs, workers=build_jobs(), on_done=lambda cmd: _finish_object(cmd[-1]))
        archive = work / LIBRARY_NAME
        subprocess.run([tree.target.tool("ar"), "rcs", str(archive), *map(str, objs)], check=True)
        final.mkdir(exist_ok=True)
        os.replace(archive, lib)
        shutil.rmtree(work, ignore_errors=True)
    return lib


def _finish_object(tmp: str) -> None:
    os.replace(tmp, tmp.removesuffix(".tmp"))
