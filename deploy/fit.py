"""Does the bundle fit the device? RAM: the tensor arenas (one per lane: per overlapping window, or one for a
stream run; the state variables inside them) plus the profile's stack allowance; storage: the model plus the
profile's code allowance."""

from __future__ import annotations

from deploy.profiles import DeviceProfile
from training.errors import ExitCode, HarError


def check_fit(profile: DeviceProfile, model_bytes: int, arena_bytes: int, lanes: int, state_bytes: int,
              elf: dict | None = None) -> dict:
    """ST-style memory block; `arena_bytes` is per lane (state included), `state_bytes` is reported separately.
    `elf` (text, data, bss of the built firmware, `har deploy --verify`) replaces the code allowance and the
    arena sum with the measured sizes."""
    if elf is None:
        ram = lanes * arena_bytes + profile.stack_bytes  # RAM = L x arena + stack
        flash = model_bytes + profile.code_bytes  # flash = model + code
        code, basis = profile.code_bytes, "estimate: model + the profile's code allowance; lanes x arena + stack"
    else:
        ram = elf["data"] + elf["bss"] + profile.stack_bytes  # RAM = data + bss (arenas inside) + stack
        flash = elf["text"] + elf["data"]  # flash = text (code + model) + data initialisers
        code, basis = flash - model_bytes, "measured: text + data of the built ELF; data + bss + stack allowance"
    return {
        "flash_bytes": flash,
        "flash_available": profile.flash_bytes,
        "ram_bytes": ram,
        "ram_available": profile.ram_bytes,
        "fits": ram <= profile.ram_bytes and flash <= profile.flash_bytes,
        "model_bytes": model_bytes,
        "code_bytes": code,
        "basis": basis,
        "arena_bytes": arena_bytes,
        "lanes": lanes,
        "state_bytes": state_bytes,
        "stack_bytes": profile.stack_bytes,
    }


def require_fit(profile: DeviceProfile, fit: dict) -> None:
    problems = []
    if fit["ram_bytes"] > fit["ram_available"]:
        problems.append(f"RAM {fit['ram_bytes']:,} B needed ({fit['lanes']} x {fit['arena_bytes']:,} B arena + "
                        f"{fit['stack_bytes']:,} B stack) > {fit['ram_available']:,} B")
    if fit["flash_bytes"] > fit["flash_available"]:
        problems.append(f"flash {fit['flash_bytes']:,} B needed ({fit['model_bytes']:,} B model + "
                        f"{fit['code_bytes']:,} B code) > {fit['flash_available']:,} B")
    if problems:
        raise HarError(f"the model does not fit {profile.name} ({profile.path}): {'; '.join(problems)}",
                       ExitCode.DOMAIN)
