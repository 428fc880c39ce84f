"""Offline BLE test rig: an emulated watch (bumble GATT server) behind a fake BlueZ on a private D-Bus.

    from rig import system_bus, emulated_watch_on_dbus   # the fixture must be imported into the test module

    async def test_x(system_bus):                         # private dbus-daemon, DBUS_SYSTEM_BUS_ADDRESS set
        async with emulated_watch_on_dbus(samples, 50.0, "pmd", speed=10) as rig:
            source = BleSource(rig.address)               # or rig.name; the real bleak finds it over D-Bus
            frames = await collect(source, done)          # until done(frames); then stop + disconnect
            ...                                           # rig.watch: delivered samples, faults; rig.bluez: failures

`samples` is (n, 6) SI units (acc m/s^2 xyz, gyro rad/s xyz) at 50 Hz here; `speed=10` streams it ten times faster
than real time while the packets keep the device's own timestamps (sample k at k / fs).

A subprocess (e.g. `har live --ble ...`) reaches the same fake BlueZ with env=rig.env while the test's event loop
keeps serving it (await it with asyncio.create_subprocess_exec, or run a CliRunner in asyncio.to_thread).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass

import numpy as np
import pytest
from bumble.link import LocalLink

from har_app.sources.base import ImuFrame, ImuSource
from rig.emulated_watch import EmulatedWatch, Faults
from rig.fake_bluez import BluezBridge, private_system_bus

__all__ = ["EmulatedWatch", "Faults", "BluezBridge", "WatchOnDbus", "emulated_watch_on_dbus", "system_bus", "collect"]


@pytest.fixture
def system_bus(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private dbus-daemon as the system bus for this test (killed in teardown)."""
    if shutil.which("dbus-daemon") is None:
        pytest.skip("dbus-daemon is not installed")
    with private_system_bus() as address:
        monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
        yield address


@dataclass
class WatchOnDbus:
    address: str  # as bleak sees it (the watch's advertising address)
    name: str  # advertised name
    watch: EmulatedWatch
    bluez: BluezBridge
    bus_address: str

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that should find this watch through the fake BlueZ."""
        return {**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus_address}


@asynccontextmanager
async def emulated_watch_on_dbus(samples: np.ndarray, fs_hz: float, profile: str = "pmd", *,
                                 bus_address: str | None = None, **watch_options) -> AsyncIterator[WatchOnDbus]:
    """An emulated watch streaming `samples` (n, 6) SI at `fs_hz` over `profile` (pmd or har-imu), reachable by
    bleak through a fake BlueZ on `bus_address` (default: DBUS_SYSTEM_BUS_ADDRESS, as the `system_bus` fixture
    sets it). `watch_options` go to EmulatedWatch: name, address, speed, samples_per_packet, pmd_compressed,
    faults."""
    bus_address = bus_address or os.environ["DBUS_SYSTEM_BUS_ADDRESS"]
    link = LocalLink()
    watch = EmulatedWatch(link, samples, fs_hz, profile, **watch_options)
    await watch.start()
    try:
        bluez = BluezBridge(link, bus_address)
        try:
            await bluez.start()
            yield WatchOnDbus(watch.address, watch.name, watch, bluez, bus_address)
        finally:
            await bluez.close()
    finally:
        await watch.close()


async def collect(source: ImuSource, done: Callable[[list[ImuFrame]], bool], timeout_s: float = 10.0
                  ) -> list[ImuFrame]:
    """Frames from `source` until `done(frames)`; the stream is closed (stop command, disconnect) on return."""
    frames: list[ImuFrame] = []

    async def run() -> None:
        async with aclosing(source.frames()) as stream:
            async for frame in stream:
                frames.append(frame)
                if done(frames):
                    return

    await asyncio.wait_for(run(), timeout_s)
    return frames
