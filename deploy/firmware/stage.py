"""The firmware stage of `har deploy` for MCU bundles: `--verify` measures the written bundle on the emulated core
(deploy/firmware/verify.py) and keeps the measurement in the run directory; without `--verify` the op-count
estimate is compared with the last measurement of the same model on the same device, if there is one."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from deploy.bundle_stm32 import rewrite_arena
from deploy.energy import estimate_latency, latency_from_instructions, step_cycles
from deploy.firmware.qemu import plugin_header_dir
from deploy.firmware.targets import target_for_core
from deploy.firmware.tflm_lib import locate_tree
from deploy.firmware.verify import FirmwareMeasurement, model_digest, require_bit_exact, verify_bundle
from deploy.profiles import DeviceProfile
from deploy.tflite_model import StepModelInfo
from deploy.tflm_arena_probe import ArenaMeasurement, target_arena
from training.errors import ExitCode, HarError
from training.run_dir import FIRMWARE_DIR, Run, write_json


def measurement_path(run: Run, device: str) -> Path:
    return run.path / FIRMWARE_DIR / f"{device}.json"


def require_verifiable(profile: DeviceProfile, tflm_root: str | Path | None) -> None:
    """Fail before any work when --verify cannot run: not an MCU, no emulated core, no TFLM tree or no tools."""
    if profile.bundle != "mcu":
        raise HarError(f"--verify builds and runs MCU firmware; {profile.name} builds a {profile.bundle} bundle")
    try:
        target = target_for_core(profile.core)
    except ValueError as exc:
        raise HarError(f"--verify: {exc}") from None
    locate_tree(target, tflm_root)
    plugin_header_dir(tflm_root)
    missing = [tool for tool in (target.cxx, "qemu-system-arm", "gcc") if shutil.which(tool) is None]
    if missing:
        raise HarError(f"--verify needs {', '.join(missing)}: run `make system-deps` (docs/firmware.md)",
                       ExitCode.DOMAIN)


def verify_stage(folder: Path, model: bytes, run: Run, info: StepModelInfo, arena: ArenaMeasurement,
                 profile: DeviceProfile, windows: int, tflm_root: str | Path | None,
                 say: Callable[[str], None]) -> tuple[FirmwareMeasurement, ArenaMeasurement]:
    """Measure the bundle in `folder` on the profile's core; its arena is re-sized from the target's own
    allocation (the bundle is rewritten). Raises (exit 1) unless the firmware is bit-exact with tflite_micro."""
    from deploy.parity import held_out_windows

    target = target_for_core(profile.core)
    raw, _ = held_out_windows(run, windows)
    sized: list[ArenaMeasurement] = []

    def resize(min_bytes: int) -> int:
        sized.append(target_arena(min_bytes, target.name))
        rewrite_arena(folder, run, info, sized[-1])
        return sized[-1].arena_bytes

    measured = verify_bundle(folder, model, run, raw, target, arena.arena_bytes, resize, tflm_root, say)
    require_bit_exact(measured)
    write_json(measurement_path(run, profile.name), measured.as_dict())
    return measured, sized[-1]


def last_measurement(run: Run, profile: DeviceProfile, model: bytes) -> dict | None:
    """The last --verify measurement of this model on this device, or None."""
    path = measurement_path(run, profile.name)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if data.get("model_sha256") == model_digest(model) else None


def mcu_latency(profile: DeviceProfile, step_ops: dict, run: Run, model: bytes,
                measured: FirmwareMeasurement | None) -> dict:
    """Latency from the measured instructions (--verify), else the op-count estimate with its distance from the
    last measurement."""
    if measured is not None:
        return latency_from_instructions(profile, measured.as_dict())
    estimate = estimate_latency(profile, step_ops, run.steps_per_decision)
    return {**estimate, "vs_last_measurement": compare_with_measurement(step_cycles(profile, step_ops), profile,
                                                                        last_measurement(run, profile, model))}


def compare_with_measurement(estimated_cycles_per_step: float, profile: DeviceProfile,
                             measured: dict | None) -> dict:
    """How far the op-count estimate of one step is from the last measured instructions x the profile's CPI."""
    if measured is None:
        return {"measured": None,
                "note": "op-count estimate; never measured for this model on this device (run with --verify)"}
    cycles = measured["instructions_per_step"]["median"] * profile.cycles_per_instruction  # cycles = insns x CPI
    return {"measured_instructions_per_step": measured["instructions_per_step"]["median"],
            "measured_cycles_per_step": cycles, "estimated_cycles_per_step": estimated_cycles_per_step,
            "estimate_over_measured": estimated_cycles_per_step / cycles,
            "note": (f"op-count estimate; the last --verify on {measured['target']} measured "
                     f"{measured['instructions_per_step']['median']:,} instructions per step "
                     f"(x CPI {profile.cycles_per_instruction:g} = {cycles:,.0f} cycles): the estimate is "
                     f"{estimated_cycles_per_step / cycles:.2f}x that")}
