"""`har scan` against emulated watches behind the fake BlueZ: the real CLI, the real bleak scanner."""

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack
from pathlib import Path

import numpy as np
from bumble.link import LocalLink
from typer.testing import CliRunner

from har_app.cli import app
from rig import BluezBridge, EmulatedWatch, system_bus  # noqa: F401  (system_bus: fixture)

HAR = str(Path(sys.executable).parent / "har")
WATCHES = [("pmd", "Polar Sense EMU00001", "C0:FF:EE:00:00:01"), ("har-imu", "DIY wrist", "C0:FF:EE:00:00:02")]


async def two_watches_and_bluez(stack: AsyncExitStack, bus_address: str) -> None:
    """A PMD watch and a har-imu board advertising on one virtual link, seen through one fake BlueZ."""
    link = LocalLink()
    for profile, name, address in WATCHES:
        watch = EmulatedWatch(link, np.zeros((10, 6)), 50.0, profile, name=name, address=address)
        await watch.start()
        stack.push_async_callback(watch.close)
    bluez = BluezBridge(link, bus_address)
    await bluez.start()
    stack.push_async_callback(bluez.close)


async def test_scan_json_lists_both_watches_with_their_profiles(system_bus):
    async with AsyncExitStack() as stack:
        await two_watches_and_bluez(stack, system_bus)
        proc = await asyncio.create_subprocess_exec(HAR, "scan", "--timeout", "0.5", "--json",
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                                                    env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": system_bus})
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    devices = {d["address"]: d for d in json.loads(stdout)["devices"]}
    assert {a: (d["name"], d["profile"]) for a, d in devices.items()} == {
        address: (name, profile) for profile, name, address in WATCHES}
    assert all(isinstance(d["rssi"], int) for d in devices.values())


async def test_scan_table(system_bus):
    async with AsyncExitStack() as stack:
        await two_watches_and_bluez(stack, system_bus)
        # the CLI runs its own event loop in a thread while this loop serves the fake BlueZ
        result = await asyncio.to_thread(CliRunner().invoke, app, ["scan", "--timeout", "0.5"])
    assert result.exit_code == 0, result.output
    for profile, name, address in WATCHES:
        line = next(line for line in result.stdout.splitlines() if address in line)
        assert name in line and profile in line


def test_scan_without_bluez_is_one_line_and_exit_3(system_bus):
    result = CliRunner().invoke(app, ["scan", "--timeout", "0.2"])  # a bus, but no org.bluez on it
    assert result.exit_code == 3
    assert "cannot reach BlueZ" in result.stderr and "Traceback" not in result.output
