"""The integer engine on an emulated Cortex-M (the firmware harness, deploy/firmware): build engine + generated
model + a probe main with arm-none-eabi-gcc, run real windows under QEMU, check every membrane of every step against
the numpy reference, count the instructions of each step and each decision, and size what a user links."""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from deploy.firmware.build import ElfSizes, FirmwareSources, build_firmware
from deploy.firmware.qemu import run_firmware
from deploy.firmware.targets import Target
from deploy.held_out import window_sums
from deploy.integer.codegen import ModelSources
from deploy.integer.host import ENGINE_FILES
from deploy.integer.model import IntegerL2MU
from deploy.integer.reference import run_reference
from training.errors import ExitCode, HarError

PROBE = "har_native_probe.c"
OPTIMISATION = "-O2"  # as the bundle's Makefile (deploy/templates/native): fewer instructions than -O3, -Os
USER_OBJECTS = ("har_engine", "har_stream", "har_model")  # what a user links: engine, decision loop, weights
STACK_CHAIN = ("har_stream_push", "har_lane_step", "har_model_step")  # the deepest call chain of a push ...
GENERATED_LEAVES = re.compile(r"(fire|add)_\w+$")  # ... ends in one of har_model.c's instances (codegen.py)


@dataclass(frozen=True)
class NativeMeasurement:
    target: str
    machine: str
    windows: int
    bit_exact: bool  # every membrane after every step equals the reference
    decisions_match: bool  # har_stream's decisions equal the reference counts of the contract's windows
    instructions_per_step: dict  # median, min, max
    instructions_per_decision: dict  # hop pushes of every lane
    elf: dict  # text, data, bss of engine + weights + decision loop
    whole_elf: dict  # the probe ELF, with newlib, semihosting and its test data
    state_bytes: int  # har_stream_t of all lanes
    stack_bytes: int  # -fstack-usage of the deepest chain below har_stream_push
    nonzero_weights: int

    def to_dict(self) -> dict:
        return asdict(self)


def _spread(v: np.ndarray) -> dict:
    return {"median": int(np.median(v)), "min": int(v.min()), "max": int(v.max())}


def write_sources(folder: Path, model: ModelSources) -> list[Path]:
    root = resources.files("deploy.integer") / "csrc"
    for name in ENGINE_FILES:
        (folder / name).write_text((root / name).read_text())
    for name, text in model.files().items():
        (folder / name).write_text(text)
    return [folder / n for n in (*ENGINE_FILES, *model.files()) if n.endswith(".c")]


def object_sizes(objects: list[Path], target: Target) -> ElfSizes:
    done = subprocess.run([target.tool("size"), "-t", *map(str, objects)], capture_output=True, text=True, check=True)
    text, data, bss = (int(v) for v in done.stdout.splitlines()[-1].split()[:3])
    return ElfSizes(text, data, bss)


def symbol_size(elf: Path, target: Target, name: str) -> int:
    done = subprocess.run([target.tool("nm"), "-S", str(elf)], capture_output=True, text=True, check=True)
    m = re.search(rf"^[0-9a-f]+ ([0-9a-f]+) [bBdD] {name}$", done.stdout, re.M)
    if m is None:
        raise HarError(f"{elf}: no symbol {name}", ExitCode.FAILURE)
    return int(m.group(1), 16)


def stack_usage(su_files: list[Path]) -> int:
    frames = {}
    for path in su_files:
        for line in path.read_text().splitlines():
            m = re.match(r"\S+:(\w+)\t(\d+)\t", line)
            if m:
                frames[m.group(1)] = int(m.group(2))
    leaf = max((size for name, size in frames.items() if GENERATED_LEAVES.match(name)), default=0)
    return sum(frames.get(f, 0) for f in STACK_CHAIN) + leaf


def expected_decisions(model: IntegerL2MU, segment: np.ndarray, window: int, hop: int, reset_windows: bool) -> np.ndarray:
    """The reference's counts at each decision of har_stream over one segment (N decisions, C)."""
    if reset_windows:  # window k = samples k hop .. k hop + window - 1, each from the zero state
        starts = range(0, len(segment) - window + 1, hop)
        return run_reference(model, np.stack([segment[s:s + window] for s in starts])).counts
    out = run_reference(model, segment[None], record=True).spikes[model.populations[-1].name][0]
    at = np.array([i - 1 for i in range(window, len(segment) + 1) if i % hop == 0], np.int64)
    return window_sums(out, at, window)


def measure_native(model: IntegerL2MU, sources: ModelSources, xq: np.ndarray, window: int, hop: int, lanes: int,
                   target: Target, tflm_root: str | Path | None = None, reset_windows: bool = True) -> NativeMeasurement:
    """`lanes` and `reset_windows` are the run's contract (a stream run: 1 lane, no window resets)."""
    n, steps = xq.shape[:2]
    with tempfile.TemporaryDirectory(prefix="har-native-fw-") as tmp:
        folder = Path(tmp)
        own = write_sources(folder, sources)
        (folder / PROBE).write_text((resources.files("deploy.integer") / "csrc" / "probe" / PROBE).read_text())
        app = FirmwareSources(tuple([*own, folder / PROBE]), (folder,),
                              (f"-DHAR_MAX_LANES={lanes}", f"-DHAR_MAX_WINDOW={1 if reset_windows else window}",
                               "-fstack-usage", "-Werror"), optimisation=OPTIMISATION)
        fw = build_firmware(app, target, folder / "build", "native")
        objects = sorted(p for p in (folder / "build").glob("native.*.o") if p.stem.split(".")[-1] in USER_OBJECTS)
        user = object_sizes(objects, target)
        stack = stack_usage(sorted((folder / "build").glob("native.*.su")))
        state = symbol_size(fw.path, target, "stream")
        header = np.array([n, steps, window, hop, lanes, int(reset_windows)], np.uint32).tobytes()
        result = run_firmware(fw, header + np.ascontiguousarray(xq, np.int16).tobytes(), count=True,
                              tflm_root=tflm_root)
    if result.exit_code != 0:
        raise HarError(f"the engine firmware exited with {result.exit_code} on {target.name}: {result.stderr[-200:]}",
                       ExitCode.FAILURE)
    ref = run_reference(model, xq, record=True)
    mem_bytes = n * steps * model.n_neurons * 4
    membranes = np.frombuffer(result.stdout[:mem_bytes], np.int32).reshape(n, steps, model.n_neurons)
    expected = expected_decisions(model, xq.reshape(-1, xq.shape[-1]), window, hop, reset_windows)
    rec = np.frombuffer(result.stdout[mem_bytes:], np.uint8).reshape(-1, 1 + 2 * model.n_classes)
    counts = rec[:, 1:].copy().view(np.uint16).astype(np.int64)
    regions = np.array(result.regions, np.int64)
    per_step, per_push = regions[:n * steps], regions[n * steps:]
    # a decision's cost: the `hop` pushes ending at it, from the second decision on (every lane running)
    ends = window - 1 + hop * np.arange(1, max(len(expected), 2))
    per_decision = per_push[ends[:, None] - np.arange(hop)[None, :]].sum(1)
    return NativeMeasurement(
        target.name, target.qemu_machine, n, bool(np.array_equal(membranes, ref.membranes)),
        bool(np.array_equal(counts, expected)), _spread(per_step), _spread(per_decision), asdict(user),
        asdict(fw.sizes), state, stack, model.nonzero_weights())
