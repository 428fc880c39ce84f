"""Device columns from executed instructions: every TFLM model of the benchmark (the L2MU int8 step, the int8 LSTM
and 1D-CNN) is built with the firmware harness (deploy/firmware) for the stm32l4r5's Cortex-M4F with CMSIS-NN,
run under QEMU mps2-an386 on real test windows, and each Invoke() is counted. Latency = instructions per decision
x the profile's cycles per instruction / clock; energy = latency x active power (both still estimates: cycles and
power are not measured). Without the TFLM trees or the toolchain the columns stay op-count estimates and say so."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from deploy.profiles import load_profile
from training.errors import HarError

EMULATED_PROFILE = "stm32l4r5"
PROBE_MIN_ARENA = 128 * 1024
WINDOWS = 8  # test windows run per model and fold: counts vary with the data by well under 1 %
KIT = Path(__file__).resolve().parents[2] / "shared" / "third_party"  # this repository's TFLM kit, if present


def tflm_root() -> Path | None:
    """$HAR_TFLM_ROOT, else the kit beside the repository, else None (no emulated columns)."""
    root = os.environ.get("HAR_TFLM_ROOT")
    return Path(root) if root else (KIT if KIT.is_dir() else None)


def emulated_decision(model: bytes, ops: Sequence[str], inputs: np.ndarray, arena_bytes: int,
                      resource_variables: int = 0) -> dict | None:
    """Instructions per decision of an int8 model on the emulated core: `inputs` (N windows, K invokes per
    decision, input bytes) int8, Reset() per window. None when the harness cannot run here (reason in 'why')."""
    from deploy.firmware.targets import target_for_core
    from deploy.firmware.tflm_probe import build_probe, run_probe, write_model_sources
    from deploy.tflm_arena_probe import with_margin

    profile = load_profile(EMULATED_PROFILE)
    root = tflm_root()
    if root is None:
        return None
    target = target_for_core(profile.core)
    try:
        with tempfile.TemporaryDirectory(prefix="har-bench-fw-") as tmp:
            folder = Path(tmp)
            # the host (reference-kernel) arena can be too small for CMSIS-NN's scratch buffers: the probe gets
            # room to spare and reports what the target needs
            probe_arena = max(4 * with_margin(arena_bytes), PROBE_MIN_ARENA)
            sources = write_model_sources(folder / "model", model, sorted(set(ops)), probe_arena, resource_variables)
            fw = build_probe(sources, [folder / "model"], target, folder / "build", root)
            run = run_probe(fw, inputs[:WINDOWS], count=True, tflm_root=root)
    except HarError as exc:
        return {"error": str(exc).splitlines()[0]}
    per_decision = run.instructions.sum(axis=1)
    return {"target": target.name, "machine": target.qemu_machine, "windows": int(len(per_decision)),
            "invokes_per_decision": int(inputs.shape[1]),
            "instructions_per_decision": {"median": int(np.median(per_decision)), "max": int(per_decision.max())},
            "elf_text": fw.sizes.text, "arena_used_bytes": run.arena_used_bytes,
            "arena_min_bytes": run.arena_min_bytes}


def device_from_instructions(emulated: dict) -> dict:
    """stm32l4r5 latency and energy per decision from the measured instructions."""
    profile = load_profile(EMULATED_PROFILE)
    insns = emulated["instructions_per_decision"]["median"]
    latency = insns * profile.cycles_per_instruction / profile.clock_mhz  # t = instructions x CPI / f
    return {"latency_us": latency, "energy_uj": latency * profile.active_mw * 1e-3, "estimate": True,
            "from_instructions": True, "instructions_per_decision": insns,
            "basis": (f"{insns:,} instructions per decision executed on {emulated['target']} (QEMU "
                      f"{emulated['machine']}, {emulated.get('kernels', 'CMSIS-NN')}, median of "
                      f"{emulated['windows']} test windows) x CPI "
                      f"{profile.cycles_per_instruction:g} at {profile.clock_mhz:g} MHz; E = t x "
                      f"{profile.active_mw:g} mW")}
