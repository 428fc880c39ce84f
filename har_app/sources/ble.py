"""Streaming a BLE watch or sensor with bleak: find it, connect, start its profile, decode, reconnect on loss.

The device is named by address (or a macOS UUID) or by advertised name. The profile (`pmd`, `har-imu`) is given
or detected from the services the device serves. A lost connection is re-established with exponential backoff;
the first frame after it carries `reset_needed`, and the stream time lost is appended to `stats.gaps_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.exc import BleakBluetoothNotAvailableError, BleakDBusError, BleakError

from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.ble.profile import Profile, StreamDecoder
from har_app.ble.profiles import PROFILES, detect_profile, profile_by_name
from har_app.ble.resync import REORDER_HOLD_S
from har_app.sources.base import ImuFrame, SourceStats
from training.errors import ExitCode, HarError

ADDRESS = re.compile(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}$")
DISCONNECTED = object()  # queued by bleak's disconnect callback
TRANSIENT = (BleakError, TimeoutError, EOFError, ConnectionError)  # a connection attempt that may work next time
NO_BLUEZ = (BleakBluetoothNotAvailableError, BleakDBusError, OSError)  # scanning impossible: no adapter or daemon


@dataclass(frozen=True)
class ReconnectPolicy:
    """Exponential backoff: attempt k waits d_k = min(max_delay_s, first_delay_s * 2^(k - 1))."""

    attempts: int = 5  # consecutive failures before giving up
    first_delay_s: float = 0.5
    max_delay_s: float = 8.0

    def delay_s(self, attempt: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** (attempt - 1))


class Disconnected(Exception):
    """The device went away (or fell silent) mid-stream."""


class DeviceNotFound(HarError):
    def __init__(self, device_id: str, timeout_s: float) -> None:
        super().__init__(f"BLE device {device_id!r} not found within {timeout_s:g} s: is it on, advertising and in "
                         f"range? (`har scan` lists what is nearby)", ExitCode.DOMAIN)


def bluetooth_unavailable(exc: Exception) -> HarError:
    """No adapter, powered off, or no BlueZ on the system bus: one clear line, exit code 3."""
    if isinstance(exc, BleakBluetoothNotAvailableError):
        return HarError(f"Bluetooth is not available: {exc}", ExitCode.DOMAIN)
    return HarError(f"cannot reach BlueZ over D-Bus ({str(exc).strip()}); is bluetoothd running?", ExitCode.DOMAIN)


def stream_gap(last_t: float, first_t: float, host_gap_s: float, period_s: float) -> tuple[float, float]:
    """(stream time lost to a disconnect, offset for the samples after it). When the device clock kept running,
    the loss is its step minus one period and no offset is needed; when it restarted, the loss is the host's gap
    and the new samples are shifted to continue at last_t + period + gap."""
    if first_t > last_t:
        return max(first_t - last_t - period_s, 0.0), 0.0
    return host_gap_s, last_t + period_s + host_gap_s - first_t


async def decoded_frames(notifications: asyncio.Queue, decoder: StreamDecoder, stats: SourceStats,
                         stall_timeout_s: float) -> AsyncIterator[ImuFrame]:
    """The frames of one connection's notifications `(uuid, bytes, host time)`, in order; malformed packets counted
    and skipped. Raises Disconnected at DISCONNECTED, or when no sample was accepted for `stall_timeout_s`: the
    stall timer runs on accepted samples, so a device whose every packet is dropped is as silent as one that sends
    nothing. Frames left without samples by validation are not passed on; a reset they carry goes with the next."""
    last_sample_s = time.monotonic()
    resync = False
    while True:
        frames: list[ImuFrame] = []
        stall_s = last_sample_s + stall_timeout_s - time.monotonic()
        item = None
        if stall_s > 0:
            try:  # while packets are held, wake up in time to release them
                item = await asyncio.wait_for(notifications.get(),
                                              min(stall_s, REORDER_HOLD_S) if decoder.pending else stall_s)
            except TimeoutError:
                pass
        if item is DISCONNECTED or stall_s <= 0:
            frames, reason = decoder.flush(), ("the device disconnected" if item is DISCONNECTED
                                               else f"no valid data for {stall_timeout_s:g} s")
        elif item is None:
            frames, reason = decoder.tick(time.monotonic()), None
        else:
            uuid, data, host_s = item
            stats.packets += 1
            reason = None
            try:
                frames = decoder.decode(uuid, data, host_s)
            except MalformedPacket:
                stats.malformed_packets += 1
        for frame in frames:
            resync = resync or frame.reset_needed
            if not len(frame.t_s):
                continue
            frame.reset_needed, resync = resync, False
            last_sample_s = time.monotonic()
            yield frame
        if reason is not None:
            raise Disconnected(reason)


class BleakLink:
    """The GattLink a profile uses, over a connected BleakClient."""

    def __init__(self, client: BleakClient, responses: asyncio.Queue, timeout_s: float) -> None:
        self.client, self.responses, self.timeout_s = client, responses, timeout_s

    async def write(self, uuid: str, data: bytes) -> None:
        await self.client.write_gatt_char(uuid, data, response=True)

    async def read(self, uuid: str) -> bytes:
        return bytes(await self.client.read_gatt_char(uuid))

    async def control_response(self) -> bytes:
        try:
            return await asyncio.wait_for(self.responses.get(), self.timeout_s)
        except TimeoutError:
            raise DeviceRefused(f"no answer to a control command within {self.timeout_s:g} s") from None


@dataclass
class Session:
    """One connection: notifications in arrival order (uuid, bytes, host time) and the decoder for them."""

    notifications: asyncio.Queue
    decoder: StreamDecoder


class BleSource:
    """An ImuSource over BLE. `expected_rate_hz` is the requested rate until the device has agreed on one
    (final once the first frame is out); `profile` is the profile name once known."""

    def __init__(self, device_id: str, profile: str | None = None, rate_hz: float = 50.0, *,
                 scan_timeout_s: float = 10.0, connect_timeout_s: float = 20.0, response_timeout_s: float = 5.0,
                 stall_timeout_s: float = 10.0, reconnect: ReconnectPolicy = ReconnectPolicy(),
                 require_gyro: bool = True, pair: bool = False) -> None:
        if profile is not None and profile not in PROFILES:
            raise HarError(f"unknown --protocol {profile!r}: choose from {', '.join(PROFILES)}")
        self.device_id, self.profile, self.rate_hz = device_id, profile, rate_hz
        self.scan_timeout_s, self.connect_timeout_s = scan_timeout_s, connect_timeout_s
        self.response_timeout_s, self.stall_timeout_s = response_timeout_s, stall_timeout_s
        self.reconnect, self.require_gyro, self.pair = reconnect, require_gyro, pair
        self.expected_rate_hz = rate_hz
        self.stats = SourceStats()
        self.address: str | None = None
        self.name: str | None = None

    async def frames(self) -> AsyncIterator[ImuFrame]:
        failures, streamed_before = 0, False
        last_t = last_host = 0.0  # time of the last sample yielded (source clock) and of its packet's arrival (host)
        while True:
            try:
                async with self._session(first=not streamed_before) as session:
                    if streamed_before:
                        self.stats.reconnects += 1
                    first_after_gap, offset_s = streamed_before, 0.0
                    async for frame in decoded_frames(session.notifications, session.decoder, self.stats,
                                                      self.stall_timeout_s):
                        host_s = frame.host_s
                        if first_after_gap:
                            period_s = 1.0 / self.expected_rate_hz
                            gap_s, offset_s = stream_gap(last_t, float(frame.t_s[0]),
                                                         max(host_s - last_host - period_s, 0.0), period_s)
                            self.stats.gaps_s.append(gap_s)
                            frame.reset_needed, frame.reset_reason, first_after_gap = True, "reconnect", False
                        frame.t_s = frame.t_s + offset_s
                        last_t, last_host, failures, streamed_before = float(frame.t_s[-1]), host_s, 0, True
                        yield frame
            except (Disconnected, *TRANSIENT) as exc:
                failures += 1
                if failures > self.reconnect.attempts:
                    verb = "connection lost" if streamed_before else "could not connect"
                    raise HarError(f"BLE device {self.device_id!r}: {verb}; {self.reconnect.attempts} reconnect "
                                   f"attempts failed ({exc or type(exc).__name__})", ExitCode.DOMAIN) from None
                await asyncio.sleep(self.reconnect.delay_s(failures))

    async def _find(self, first: bool) -> BLEDevice:
        """The device by address, or by name until its address is known."""
        target = self.address or self.device_id
        by_address = ADDRESS.match(target) is not None
        find = BleakScanner.find_device_by_address if by_address else BleakScanner.find_device_by_name
        try:
            device = await find(target, timeout=self.scan_timeout_s)
        except NO_BLUEZ as exc:
            raise bluetooth_unavailable(exc) from None
        if device is None:
            if first:
                raise DeviceNotFound(self.device_id, self.scan_timeout_s)
            raise Disconnected(f"not advertising within {self.scan_timeout_s:g} s")
        self.address, self.name = device.address, device.name
        return device

    def _resolve_profile(self, client: BleakClient) -> Profile:
        served = [s.uuid for s in client.services]
        if self.profile is not None:
            profile = profile_by_name(self.profile)
            if profile.service_uuid not in served:
                raise DeviceRefused(f"{self.device_id} has no {profile.title} service ({profile.service_uuid})")
            return profile
        profile = detect_profile(served)
        if profile is None:
            raise DeviceRefused(f"{self.device_id} serves none of the streaming profiles har speaks "
                                f"({', '.join(PROFILES)}); its services: {', '.join(sorted(served))}")
        return profile

    @contextlib.asynccontextmanager
    async def _session(self, first: bool) -> AsyncIterator[Session]:
        """Find, connect, subscribe (before starting, so no early sample is lost), start; stop and disconnect."""
        device = await self._find(first)
        notifications: asyncio.Queue = asyncio.Queue()
        responses: asyncio.Queue = asyncio.Queue()
        client = BleakClient(device, disconnected_callback=lambda _: notifications.put_nowait(DISCONNECTED),
                             timeout=self.connect_timeout_s, pair=self.pair)
        await client.connect()
        link = BleakLink(client, responses, self.response_timeout_s)
        profile: Profile | None = None
        decoder: StreamDecoder | None = None
        try:
            profile = self._resolve_profile(client)
            for uuid in profile.data_uuids:
                await client.start_notify(uuid, lambda c, data: notifications.put_nowait(
                    (c.uuid, bytes(data), time.monotonic())))
            if profile.control_uuid is not None:
                await client.start_notify(profile.control_uuid, lambda _, data: responses.put_nowait(bytes(data)))
            decoder = await profile.start(link, self.rate_hz, self.stats)
            if self.require_gyro and not decoder.has_gyro:
                raise DeviceRefused(f"{self.device_id} streams no gyroscope; the classifier needs acc + gyro")
            self.profile, self.expected_rate_hz = profile.name, decoder.rate_hz
            yield Session(notifications, decoder)
        finally:
            await self._close(client, link, profile, decoder)

    async def _close(self, client: BleakClient, link: BleakLink, profile: Profile | None,
                     decoder: StreamDecoder | None) -> None:
        """Best effort: the device may already be gone."""
        with contextlib.suppress(*TRANSIENT, DeviceRefused):
            if profile is not None and decoder is not None and client.is_connected:
                await asyncio.wait_for(profile.stop(link, decoder), self.response_timeout_s)
        with contextlib.suppress(*TRANSIENT):
            await asyncio.wait_for(client.disconnect(), self.response_timeout_s)


async def scan(timeout_s: float = 5.0) -> list[dict]:
    """Nearby advertising devices, strongest first: address, name, rssi and the profile detected (or None)."""
    try:
        found = await BleakScanner.discover(timeout=timeout_s, return_adv=True)
    except NO_BLUEZ as exc:
        raise bluetooth_unavailable(exc) from None
    devices = []
    for device, adv in found.values():
        profile = detect_profile(adv.service_uuids, adv.local_name or device.name)
        devices.append({"address": device.address, "name": adv.local_name or device.name, "rssi": adv.rssi,
                        "profile": profile.name if profile else None})
    return sorted(devices, key=lambda d: -d["rssi"])
