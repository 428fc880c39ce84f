"""The C engine on this machine: compiled with the system C compiler on first use, cached outside the source tree
(keyed by the sources, the generated model, the compiler and the flags), loaded with ctypes."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.integer.codegen import ModelSources
from deploy.integer.model import INPUT_BITS, INT16
from training.errors import ExitCode, HarError

ENGINE_FILES = ("har_engine.h", "har_engine.c", "har_stream.h", "har_stream.c")
HOST_FILE = "har_host.c"
CFLAGS = ("-std=c99", "-O2", "-fno-jump-tables", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC", "-shared",
          "-DHAR_MAX_WINDOW=256")  # host: room for the no-reset rule's ring of any window up to 256
LIBRARY = "libhar_native.so"
SCALE_IN = float(2**INPUT_BITS)


def engine_sources() -> dict[str, str]:
    """The engine's C files, shipped as package data."""
    root = resources.files("deploy.integer") / "csrc"
    return {name: (root / name).read_text() for name in (*ENGINE_FILES, HOST_FILE)}


def compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "har" / "native"


def build_library(model: ModelSources, cc: str | None = None) -> Path:
    """The shared library of engine + model, built once per distinct input."""
    cc = cc or compiler()
    if cc is None:
        raise HarError("the native engine needs a C compiler (cc or gcc, or $CC): none found", ExitCode.FAILURE)
    files = {**engine_sources(), **model.files()}
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HarError(f"C compiler {cc} does not run: {exc}", ExitCode.FAILURE) from None
    key = hashlib.sha256("\0".join([cc, version, *CFLAGS, *(f"{k}\0{v}" for k, v in sorted(files.items()))]).encode())
    out = cache_root() / key.hexdigest()[:32] / LIBRARY
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out.parent) as tmp:
        for name, text in files.items():
            (Path(tmp) / name).write_text(text)
        sources = [name for name in files if name.endswith(".c")]
        done = subprocess.run([cc, *CFLAGS, "-o", LIBRARY, *sources], cwd=tmp, capture_output=True, text=True)
        if done.returncode != 0:
            raise HarError(f"compiling the native engine failed: {(done.stderr.strip().splitlines() or ['?'])[0]}",
                           ExitCode.FAILURE)
        os.replace(Path(tmp) / LIBRARY, out)  # atomic: a concurrent build produces the same file
    return out


class NativeLibrary:
    """ctypes view of one built engine + model."""

    def __init__(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        for name in ("har_lane_bytes", "har_stream_bytes"):
            getattr(lib, name).restype = ctypes.c_size_t
        lib.har_n_neurons.restype = lib.har_n_classes.restype = ctypes.c_uint
        lib.har_lane_reset.argtypes = [ctypes.c_void_p]
        lib.har_lane_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        lib.har_run_windows.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_void_p,
                                        ctypes.c_void_p]
        lib.har_stream_init.argtypes = [ctypes.c_void_p, ctypes.c_uint16, ctypes.c_uint16, ctypes.c_uint8,
                                        ctypes.c_uint8]
        lib.har_stream_push.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.lib = lib
        self.neurons, self.classes = lib.har_n_neurons(), lib.har_n_classes()

    def run_windows(self, xq: np.ndarray, membranes: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Output spike counts (N, C) of int16 windows (N, T, 6) and, optionally, every membrane after every step."""
        x = np.ascontiguousarray(xq, np.int16)
        n, steps = x.shape[:2]
        counts = np.zeros((n, self.classes), np.uint16)
        mem = np.zeros((n, steps, self.neurons), np.int32) if membranes else None
        self.lib.har_run_windows(x.ctypes.data, n, steps, counts.ctypes.data, None if mem is None else mem.ctypes.data)
        return counts.astype(np.int64), mem


class NativeStep:
    """One lane of the engine (the StepModel of har_app.live.backends): int16 boundary, C step."""

    def __init__(self, library: NativeLibrary) -> None:
        self.lib = library.lib
        self.state = ctypes.create_string_buffer(self.lib.har_lane_bytes())
        self.spikes = np.zeros(library.classes, np.uint8)
        self.x, self.z = np.zeros(6, np.int16), np.zeros(6, np.float64)
        self._x, self._spikes = self.x.ctypes.data, self.spikes.ctypes.data
        self.step_q = functools.partial(self.lib.har_lane_step, self.state)
        self.reset()

    def reset(self) -> None:
        self.lib.har_lane_reset(self.state)

    def step(self, z: np.ndarray) -> np.ndarray:
        np.multiply(z, SCALE_IN, out=self.z)  # the boundary of deploy.integer.model.quantize_input, in place
        np.rint(self.z, out=self.z)
        np.clip(self.z, *INT16, out=self.z)
        self.x[:] = self.z
        self.step_q(self._x, self._spikes)
        return self.spikes.astype(np.float32)
