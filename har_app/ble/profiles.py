"""The profiles `har` speaks, and which one a device speaks from what it advertises or serves."""

from __future__ import annotations

from collections.abc import Iterable

from har_app.ble.har_imu import HarImuProfile
from har_app.ble.pmd import PmdProfile
from har_app.ble.profile import Profile

PROFILES: dict[str, Profile] = {p.name: p for p in (PmdProfile(), HarImuProfile())}
POLAR_NAME_PREFIX = "Polar "  # Polar devices advertise "Polar <model> <id>" but not always the PMD service


def profile_by_name(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown BLE profile {name!r}: choose from {', '.join(PROFILES)}")
    return PROFILES[name]


def detect_profile(service_uuids: Iterable[str], name: str | None = None) -> Profile | None:
    """The profile whose service is among `service_uuids` (advertised or discovered), else a Polar name."""
    uuids = {u.lower() for u in service_uuids}
    for profile in PROFILES.values():
        if profile.service_uuid in uuids:
            return profile
    if name and name.startswith(POLAR_NAME_PREFIX):
        return PROFILES["pmd"]
    return None
