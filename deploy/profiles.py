"""Device profiles: one TOML file per target (package data in `device_profiles/`), validated on load.

The schema is documented in docs/device-profiles.md. Every field is required; unknown fields are rejected so that a
typo cannot silently fall back to a default. No TensorFlow or torch here: `har devices` must start instantly.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path

from training.errors import HarError

BUNDLES = ("mcu", "linux", "android")  # what `har deploy` builds: TFLM C++ project, Linux runner, Android assets
RUNTIMES = ("tflm", "litert")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    title: str
    bundle: str
    core: str
    cores: int
    clock_mhz: float
    runtime: str
    ram_bytes: int
    flash_bytes: int  # program storage: MCU flash, or the SD card / phone storage given to the app
    stack_bytes: int  # RAM the fit check reserves beside the model's arena: call stack and I/O buffers
    code_bytes: int  # storage the fit check reserves for the runtime and the application code
    supply_voltage_v: float
    active_mw: float  # power while running inference
    idle_mw: float  # power while waiting for the next sample
    cycles_per_mac: float  # latency model: core cycles per int8 multiply-accumulate of a weight matrix
    cycles_per_elementwise: float  # ... per int8 elementwise operation (add, mul, compare, select, requantise)
    overhead_cycles_per_op: float  # ... per graph operator invocation (interpreter dispatch, quantisation params)
    path: str  # the file the profile was read from
    cycles_per_instruction: float | None = None  # MCU only: core cycles per executed instruction (measured counts)


# (TOML table, key, Python type, check, what the check requires)
def _positive(v: float) -> bool:
    return v > 0


def _non_negative(v: float) -> bool:
    return v >= 0


SCHEMA: tuple[tuple[str, str, type, object, str], ...] = (
    ("device", "name", str, lambda v: bool(NAME_PATTERN.match(v)), "lower-case letters, digits, '-' or '_'"),
    ("device", "title", str, bool, "a non-empty string"),
    ("device", "bundle", str, lambda v: v in BUNDLES, f"one of {', '.join(BUNDLES)}"),
    ("device", "core", str, bool, "a non-empty string"),
    ("device", "cores", int, _positive, "a positive integer"),
    ("device", "clock_mhz", float, _positive, "a positive number"),
    ("device", "runtime", str, lambda v: v in RUNTIMES, f"one of {', '.join(RUNTIMES)}"),
    ("memory", "ram_bytes", int, _positive, "a positive integer"),
    ("memory", "flash_bytes", int, _positive, "a positive integer"),
    ("memory", "stack_bytes", int, _non_negative, "a non-negative integer"),
    ("memory", "code_bytes", int, _non_negative, "a non-negative integer"),
    ("power", "supply_voltage_v", float, _positive, "a positive number"),
    ("power", "active_mw", float, _positive, "a positive number"),
    ("power", "idle_mw", float, _non_negative, "a non-negative number"),
    ("latency", "cycles_per_mac", float, _positive, "a positive number"),
    ("latency", "cycles_per_elementwise", float, _non_negative, "a non-negative number"),
    ("latency", "overhead_cycles_per_op", float, _non_negative, "a non-negative number"),
)

# Only in MCU profiles, where `har deploy --verify` counts executed instructions (docs/firmware.md)
MCU_SCHEMA = (("latency", "cycles_per_instruction", float, _positive, "a positive number"),)


def _typed(value: object, kind: type) -> bool:
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def parse_profile(text: str, origin: str) -> DeviceProfile:
    """Validate one profile's TOML text; `origin` names it in error messages."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarError(f"device profile {origin}: not valid TOML: {exc}") from None
    mcu = isinstance(doc.get("device"), dict) and doc["device"].get("bundle") == "mcu"
    schema = SCHEMA + MCU_SCHEMA if mcu else SCHEMA
    known = {(table, key) for table, key, *_ in SCHEMA + MCU_SCHEMA}
    for table, body in doc.items():
        if not isinstance(body, dict):
            raise HarError(f"device profile {origin}: top-level key {table!r} must be a [table]")
        for key in body:
            if (table, key) not in known:
                raise HarError(f"device profile {origin}: unknown field [{table}] {key}")
    values = {}
    for table, key, kind, check, requirement in schema:
        if key not in doc.get(table, {}):
            raise HarError(f"device profile {origin}: missing field [{table}] {key}")
        value = doc[table][key]
        if not _typed(value, kind) or not check(value):
            raise HarError(f"device profile {origin}: [{table}] {key} must be {requirement}, got {value!r}")
        values[key] = float(value) if kind is float else value
    for table, key, *_ in MCU_SCHEMA:
        if not mcu and key in doc.get(table, {}):
            raise HarError(f"device profile {origin}: [{table}] {key} is only for mcu bundles")
    profile = DeviceProfile(**values, path=origin)
    if profile.bundle == "mcu" and profile.runtime != "tflm":
        raise HarError(f"device profile {origin}: [device] runtime must be tflm for an mcu bundle, "
                       f"got {profile.runtime!r}")
    if profile.bundle != "mcu" and profile.runtime != "litert":
        raise HarError(f"device profile {origin}: [device] runtime must be litert for a {profile.bundle} bundle, "
                       f"got {profile.runtime!r}")
    return profile


def _packaged() -> list[resources.abc.Traversable]:
    folder = resources.files("device_profiles")
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")), key=lambda f: f.name)


def list_profiles() -> list[DeviceProfile]:
    """Every profile shipped with har, sorted by name."""
    return [parse_profile(f.read_text(encoding="utf-8"), f.name) for f in _packaged()]


def load_profile(name_or_path: str) -> DeviceProfile:
    """A shipped profile by name (`stm32l4r5`), or a user's TOML file by path (anything ending in .toml or
    containing a path separator)."""
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        return load_profile_file(Path(name_or_path))
    for f in _packaged():
        if f.name == f"{name_or_path}.toml":
            return parse_profile(f.read_text(encoding="utf-8"), f.name)
    names = ", ".join(f.name.removesuffix(".toml") for f in _packaged())
    raise HarError(f"unknown device {name_or_path!r}: choose one of {names}, or pass --profile FILE")


def load_profile_file(path: Path) -> DeviceProfile:
    """A user's own profile TOML."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise HarError(f"cannot read device profile {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise HarError(f"device profile {path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                       f"{exc.start}); TOML files are UTF-8") from None
    return parse_profile(text, str(path))


def profile_dict(profile: DeviceProfile) -> dict:
    return {f.name: getattr(profile, f.name) for f in fields(profile)}
