"""`har deploy --verify`: build the written MCU bundle for the profile's core, run it under QEMU on held-out windows
and measure it: instructions of every Invoke(), text/data/bss of the ELF, the arena the target uses, and whether
step outputs and decisions are exactly those of the tflite_micro Python interpreter."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from deploy.firmware.build import ElfSizes
from deploy.firmware.har_bundle import build_decision_firmware, build_step_probe, run_decisions
from deploy.firmware.targets import Target
from deploy.firmware.tflm_probe import run_probe
from training.errors import ExitCode, HarError
from training.run_dir import Run


@dataclass(frozen=True)
class Reference:
    """The tflite_micro Python interpreter on the same windows: inputs as the firmware gets them."""

    q_inputs: np.ndarray     # (N, T, 6) int8, quantised with the model's own parameters
    outputs: np.ndarray      # (N, T, C) int8 raw step outputs
    counts: np.ndarray       # (N, C) output spikes per window


def reference_run(model: bytes, z_windows: np.ndarray, arena_bytes: int) -> Reference:
    """Step outputs and window counts of normalised windows (N, T, 6) on tflite_micro, Reset() per window."""
    from deploy.step_runtimes import TFLMStep

    tflm = TFLMStep(model, arena_bytes)
    q = np.array([[tflm.io.quantize(z)[0] for z in window] for window in z_windows])
    outputs, counts = [], []
    for window in q:
        tflm.reset()
        raw = [tflm.step_raw(x[None])[0] for x in window]
        outputs.append(raw)
        counts.append(sum(tflm.io.spikes(r[None]) for r in raw))
    return Reference(q.astype(np.int8), np.array(outputs, dtype=np.int8), np.array(counts).astype(np.int64))


def model_digest(model: bytes) -> str:
    return hashlib.sha256(model).hexdigest()


def _spread(values: np.ndarray) -> dict:
    return {"median": int(np.median(values)), "min": int(values.min()), "max": int(values.max())}


@dataclass(frozen=True)
class FirmwareMeasurement:
    target: str
    machine: str
    windows: int
    steps: int
    instructions_per_step: dict          # one MicroInterpreter::Invoke(): median, min, max over all steps
    instructions_per_decision: dict      # one window = HAR_WINDOW invokes: median, min, max over the windows
    elf: ElfSizes
    arena_bytes: int                     # smallest arena in which a lane works on the target (firmware bisection)
    arena_used_bytes: int                # MicroInterpreter::arena_used_bytes() on the target after the run
    arena_reserved_bytes: int            # HAR_ARENA_BYTES of the verified bundle (target arena + margin)
    bit_exact: bool                      # step outputs and decisions identical to tflite_micro
    step_outputs_exact: float
    window_counts_exact: float
    golden_self_test: bool
    compiler_warnings: int
    model_sha256: str

    def as_dict(self) -> dict:
        return asdict(self)


def verify_bundle(bundle: Path, model: bytes, run: Run, raw_windows: np.ndarray, target: Target,
                  host_arena_bytes: int, resize_arena: Callable[[int], int], tflm_root: str | Path | None = None,
                  progress: Callable[[str], None] | None = None) -> FirmwareMeasurement:
    """Measure the bundle in `bundle` on `target`. `resize_arena(min_bytes)` rewrites the bundle with an arena
    sized from the smallest arena that works on the target and returns the new HAR_ARENA_BYTES; the decision firmware is built
    after it, so the verified decisions are those of the bundle as finally written."""
    say = progress or (lambda _msg: None)
    ref = reference_run(model, run.normalization.apply(raw_windows), host_arena_bytes)
    with tempfile.TemporaryDirectory(prefix="har-verify-") as tmp:
        say(f"building the step probe for {target.name}")
        probe = build_step_probe(bundle, target, Path(tmp) / "probe", tflm_root, say)
        say(f"running {ref.q_inputs.shape[0] * ref.q_inputs.shape[1]} steps on QEMU {target.qemu_machine}")
        steps = run_probe(probe, ref.q_inputs, count=True, tflm_root=tflm_root)
        reserved = resize_arena(steps.arena_min_bytes)
        say(f"building the bundle's firmware for {target.name}")
        firmware = build_decision_firmware(bundle, target, Path(tmp) / "decisions", tflm_root, say)
        say(f"running {len(raw_windows)} held-out windows through har_push_sample on QEMU")
        decisions = run_decisions(firmware, raw_windows.astype(np.float32), tflm_root)
    same_steps = np.all(steps.outputs == ref.outputs, axis=2)
    same_counts = np.all(decisions.counts == ref.counts, axis=1)
    per_window = steps.instructions.sum(axis=1)
    return FirmwareMeasurement(
        target=target.name, machine=target.qemu_machine, windows=len(raw_windows), steps=int(same_steps.size),
        instructions_per_step=_spread(steps.instructions), instructions_per_decision=_spread(per_window),
        elf=firmware.sizes, arena_bytes=steps.arena_min_bytes, arena_used_bytes=steps.arena_used_bytes,
        arena_reserved_bytes=reserved,
        bit_exact=bool(same_steps.all() and same_counts.all() and decisions.golden_ok),
        step_outputs_exact=float(same_steps.mean()), window_counts_exact=float(same_counts.mean()),
        golden_self_test=decisions.golden_ok, compiler_warnings=len(probe.warnings) + len(firmware.warnings),
        model_sha256=model_digest(model))


def require_bit_exact(m: FirmwareMeasurement) -> None:
    if not m.bit_exact:
        raise HarError(f"the firmware on {m.target} is not bit-exact with tflite_micro: step outputs "
                       f"{m.step_outputs_exact:.1%}, window counts {m.window_counts_exact:.1%} identical, golden "
                       f"self-test {'passed' if m.golden_self_test else 'FAILED'}",
                       ExitCode.FAILURE)
