"""A watch in software: a bumble GATT server on a virtual link that streams a recording as Polar PMD or har_imu_v1.

The watch keeps its own sample clock from the first start command on: sample k is due at k / (fs * speed) seconds
of host time and carries device time k / fs. Streams (re)start at the packet boundary at or before the sample due
now, so samples due while the watch was disconnected are never sent, as on a real device, and streams started
together (PMD ACC and GYRO) deliver the same samples. Faults are injected by data-packet index (counted over
all streams from 0): packets sent one byte short or cut to 4 bytes, packets skipped (their sequence number and
samples are lost), sent twice, sent after the stream's next packet, sent with bits inverted, a device clock that
steps from a packet on, and a connection dropped by the watch, which then stays silent for `away_s`. The PMD setup
answers can carry bad values too (offered rates, the GYRO FACTOR).

The encoders (delta compression, har-imu packing) are in tests/ble_streams.py, the test-side counterpart of
har_app.ble; they are checked end to end against the samples they were given, never used to derive the parsers'
expected values.
"""

from __future__ import annotations

import asyncio
import math
import uuid as uuid_lib
from dataclasses import dataclass, field

import numpy as np
from bumble import data_types
from bumble.controller import Controller
from bumble.core import UUID, AdvertisingData
from bumble.device import AdvertisingEventProperties, AdvertisingParameters, Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink

from har_app.ble import har_imu, pmd
from ble_streams import (DEVICE_EPOCH_NS, GYRO_FACTOR, HAR_IMU_ACC_LSB_PER_G, HAR_IMU_GYRO_LSB_PER_DPS,  # noqa: F401
                         har_imu_packet, pmd_frame, tlv)

ADVERTISING_INTERVAL_MS = 20.0
MTU = 247


@dataclass(frozen=True)
class Faults:
    corrupt_packets: frozenset[int] = frozenset()  # sent one byte short
    short_packets: frozenset[int] = frozenset()  # cut to their first 4 bytes
    skipped_packets: frozenset[int] = frozenset()  # never sent; seq and device time still advance
    duplicated_packets: frozenset[int] = frozenset()  # sent twice
    reordered_packets: frozenset[int] = frozenset()  # sent after the next packet of the same stream
    flipped_bits: frozenset[tuple[int, int]] = frozenset()  # (packet, bit): that bit of the packet inverted
    clock_step: tuple[int, float] | None = None  # (packet, seconds): device time steps by this from that packet on
    drop_after_packets: int | None = None  # the watch disconnects once this many data packets were produced
    away_s: float = 0.3  # and stays silent (not advertising) this long
    pmd_rates: tuple[int, ...] | None = None  # SAMPLE_RATE values a PMD settings answer offers (default: fs)
    pmd_gyro_factors: tuple[float, ...] = (GYRO_FACTOR,)  # FACTOR values the PMD GYRO START answer carries


@dataclass
class Delivered:
    """What the watch sent intact, per stream: (first, stop) sample index ranges."""

    ranges: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    def indices(self, stream: str) -> np.ndarray:
        return np.concatenate([np.arange(a, b) for a, b in self.ranges.get(stream, [])] or [np.zeros(0, int)])


def full_uuid(uuid: UUID) -> str:
    """bumble UUID -> lower-case 128-bit string, as BlueZ and bleak write them."""
    return str(uuid_lib.UUID(bytes=bytes(reversed(uuid.to_bytes(force_128=True)))))


class EmulatedWatch:
    """A peripheral streaming `samples` (n, 6) SI units (acc m/s^2 xyz, gyro rad/s xyz) at `fs_hz`."""

    def __init__(self, link: LocalLink, samples: np.ndarray, fs_hz: float, profile: str = "pmd", *,
                 name: str | None = None, address: str = "C0:FF:EE:00:00:01", speed: float = 1.0,
                 samples_per_packet: int | None = None, pmd_compressed: bool = True, faults: Faults = Faults()):
        if profile not in ("pmd", "har-imu"):
            raise ValueError(f"profile must be pmd or har-imu, got {profile!r}")
        self.link, self.samples, self.fs_hz, self.profile = link, np.asarray(samples, float), fs_hz, profile
        self.name = name or ("Polar Sense EMU00001" if profile == "pmd" else "har-imu EMU00001")
        self.address, self.speed, self.faults = address, speed, faults
        # PMD: 10 samples a frame; har-imu: as many as the connection's MTU allows (19 at 247)
        self.samples_per_packet = samples_per_packet or (10 if profile == "pmd" else None)
        self.pmd_compressed = pmd_compressed
        self.delivered = Delivered()
        self.packets = 0  # data packets produced, the index faults refer to
        self.connections = 0
        self.commands: list[bytes] = []  # control writes received, in order
        self.completed: set[str] = set()  # streams that have produced their last sample
        self._t0: float | None = None  # host time of device sample 0
        self._seq = 0
        self._held: dict[str, bytes] = {}  # a packet to be reordered, per stream, until the next one is sent
        self._streams: dict[str, asyncio.Task] = {}
        self._connection: Connection | None = None
        self._dropping = self._closed = False
        self._advertising_set = None
        self._tasks: set[asyncio.Task] = set()

    # --- life cycle --------------------------------------------------------------------------------------------

    async def start(self) -> None:
        controller = Controller(f"watch {self.name}", link=self.link)
        self.device = Device(name=self.name, address=Address(self.address),
                             host=Host(controller, AsyncPipeSink(controller)))
        self.device.add_service(self._pmd_service() if self.profile == "pmd" else self._har_imu_service())
        self.device.on("connection", self._on_connection)
        await self.device.power_on()
        await self._advertise()

    async def close(self) -> None:
        self._closed = True
        self._stop_streams()
        for task in self._tasks:
            task.cancel()
        if self._connection is not None:
            await self._connection.disconnect()
        await self.device.power_off()

    async def _advertise(self) -> None:
        service = pmd.SERVICE_UUID if self.profile == "pmd" else har_imu.SERVICE_UUID
        data = AdvertisingData([data_types.Flags(0x06), data_types.CompleteLocalName(self.name),
                                data_types.CompleteListOf128BitServiceUUIDs([UUID(service)])])
        if self._advertising_set is None:
            self._advertising_set = await self.device.create_advertising_set(
                advertising_parameters=AdvertisingParameters(
                    advertising_event_properties=AdvertisingEventProperties(is_connectable=True, is_legacy=False),
                    primary_advertising_interval_min=ADVERTISING_INTERVAL_MS,
                    primary_advertising_interval_max=ADVERTISING_INTERVAL_MS),
                random_address=Address(self.address), advertising_data=bytes(data))
        else:
            await self._advertising_set.start()

    def _on_connection(self, connection: Connection) -> None:
        self._connection = connection
        self.connections += 1
        connection.on("disconnection", lambda reason: self._on_disconnection())

    def _on_disconnection(self) -> None:
        self._connection = None
        self._stop_streams()
        delay_s, self._dropping = (self.faults.away_s if self._dropping else 0.0), False
        self._spawn(self._readvertise(delay_s))

    async def _readvertise(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        if self._connection is None and not self._closed:
            await self._advertise()

    async def drop_connection(self) -> None:
        """Disconnect from the watch side, then stay silent for `faults.away_s`."""
        if self._connection is not None:
            self._dropping = True
            self._stop_streams()  # first, so that nothing is sent into the closing link
            await self._connection.disconnect()

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- streaming ---------------------------------------------------------------------------------------------

    def _due_index(self) -> int:
        """The sample due now on the watch's clock (its clock starts at the first start command)."""
        loop = asyncio.get_running_loop()
        if self._t0 is None:
            self._t0 = loop.time()
        return min(len(self.samples), math.floor((loop.time() - self._t0) * self.fs_hz * self.speed))

    def _start_stream(self, stream: str, characteristic: Characteristic) -> None:
        if stream not in self._streams and self._connection is not None:
            self._streams[stream] = asyncio.create_task(self._stream(stream, characteristic, self._connection))

    def _stop_stream(self, stream: str) -> None:
        if task := self._streams.pop(stream, None):
            task.cancel()

    def _stop_streams(self) -> None:
        for stream in list(self._streams):
            self._stop_stream(stream)

    async def _stream(self, stream: str, characteristic: Characteristic, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        per_packet = self.samples_per_packet or (connection.att_mtu - 3 - har_imu.HEADER.size) // har_imu.SAMPLE.size
        first = self._due_index() // per_packet * per_packet  # streams started together share a packet grid
        while first < len(self.samples):
            stop = min(first + per_packet, len(self.samples))
            await asyncio.sleep(max(0.0, self._t0 + stop / (self.fs_hz * self.speed) - loop.time()))
            await self._send(stream, characteristic, connection, first, stop)
            first = stop
        self.completed.add(stream)

    async def _send(self, stream: str, characteristic: Characteristic, connection: Connection,
                    first: int, stop: int) -> None:
        faults = self.faults
        index, self.packets = self.packets, self.packets + 1
        step_s = faults.clock_step[1] if faults.clock_step and index >= faults.clock_step[0] else 0.0
        packet = self._encode(stream, first, stop, step_s)
        if index in faults.corrupt_packets:
            packet = packet[:-1]
        elif index in faults.short_packets:
            packet = packet[:4]
        flips = [bit for i, bit in faults.flipped_bits if i == index]
        if flips:
            packet = bytes(b ^ sum(1 << (bit % 8) for bit in flips if bit // 8 == k) for k, b in enumerate(packet))
        intact = index not in faults.corrupt_packets | faults.short_packets and not flips
        if index in faults.skipped_packets:
            pass
        elif index in faults.reordered_packets:
            self._held[stream] = packet
        else:
            for _ in range(2 if index in faults.duplicated_packets else 1):
                await self.device.notify_subscriber(connection, characteristic, packet)
            if held := self._held.pop(stream, None):
                await self.device.notify_subscriber(connection, characteristic, held)
        if index not in faults.skipped_packets and intact:
            self.delivered.ranges.setdefault(stream, []).append((first, stop))
        if self.faults.drop_after_packets is not None and self.packets == self.faults.drop_after_packets:
            self._spawn(self.drop_connection())

    def _encode(self, stream: str, first: int, stop: int, step_s: float = 0.0) -> bytes:
        if self.profile == "har-imu":
            return self._har_imu_packet(first, stop, step_s)
        return self._pmd_frame(pmd.Measurement.ACC if stream == "acc" else pmd.Measurement.GYRO, first, stop, step_s)

    # --- Polar PMD ---------------------------------------------------------------------------------------------

    def _pmd_service(self) -> Service:
        self._pmd_cp = Characteristic(
            pmd.CONTROL_POINT_UUID, Characteristic.Properties.READ | Characteristic.Properties.WRITE
            | Characteristic.Properties.INDICATE, Characteristic.Permissions.READABLE
            | Characteristic.Permissions.WRITEABLE,
            CharacteristicValue(read=lambda _: bytes([pmd.FEATURES_FIRST_BYTE, 1 << pmd.Measurement.ACC
                                                      | 1 << pmd.Measurement.GYRO, 0]),
                                write=self._on_pmd_command))
        self._pmd_data = Characteristic(pmd.DATA_UUID, Characteristic.Properties.NOTIFY,
                                        Characteristic.Permissions.READABLE, b"")
        return Service(pmd.SERVICE_UUID, [self._pmd_cp, self._pmd_data])

    def _pmd_offer(self, measurement: int) -> dict[pmd.Setting, int]:
        return {pmd.Setting.SAMPLE_RATE: round(self.fs_hz), pmd.Setting.RESOLUTION: 16,
                pmd.Setting.RANGE: 8 if measurement == pmd.Measurement.ACC else 2000, pmd.Setting.CHANNELS: 3}

    def _pmd_offer_tlvs(self, measurement: int) -> bytes:
        """The settings answer: the offer, with the fault's SAMPLE_RATE values where it has some."""
        offer = self._pmd_offer(measurement)
        rates = self.faults.pmd_rates or (offer[pmd.Setting.SAMPLE_RATE],)
        del offer[pmd.Setting.SAMPLE_RATE]
        return tlv(pmd.Setting.SAMPLE_RATE, rates) + pmd.encode_settings(offer)

    def _on_pmd_command(self, connection: Connection, value: bytes) -> None:
        self.commands.append(bytes(value))
        op, measurement = (bytes(value) + b"\xff\xff")[:2]
        error, settings = 0, b""
        if len(value) < 2:
            error = 4  # invalid length
        elif measurement not in (pmd.Measurement.ACC, pmd.Measurement.GYRO):
            error = 3
        elif op == pmd.OpCode.GET_SETTINGS:
            settings = self._pmd_offer_tlvs(measurement)
        elif op == pmd.OpCode.START:
            error = self._pmd_check_start(measurement, bytes(value[2:]))
            if not error:
                if measurement == pmd.Measurement.GYRO:
                    settings = tlv(pmd.Setting.FACTOR, self.faults.pmd_gyro_factors)
                self._start_stream("acc" if measurement == pmd.Measurement.ACC else "gyro", self._pmd_data)
        elif op == pmd.OpCode.STOP:
            self._stop_stream("acc" if measurement == pmd.Measurement.ACC else "gyro")
        else:
            error = 1
        response = bytes([pmd.CP_RESPONSE, op, measurement, error, 0]) + settings
        self._spawn(self.device.indicate_subscriber(connection, self._pmd_cp, response))

    def _pmd_check_start(self, measurement: int, tlvs: bytes) -> int:
        try:
            asked = {k: v[0] for k, v in pmd.parse_settings(tlvs).items()}
        except ValueError:
            return 4
        offer = self._pmd_offer(measurement)
        errors = {pmd.Setting.SAMPLE_RATE: 8, pmd.Setting.RESOLUTION: 7, pmd.Setting.RANGE: 9,
                  pmd.Setting.CHANNELS: 11}
        for setting, error in errors.items():
            if asked.get(setting, offer[setting]) != offer[setting]:
                return error
        return 0

    def _pmd_frame(self, measurement: int, first: int, stop: int, step_s: float = 0.0) -> bytes:
        return pmd_frame(self.samples, measurement, first, stop, self.fs_hz, step_s, self.pmd_compressed)

    # --- har_imu_v1 --------------------------------------------------------------------------------------------

    def _har_imu_service(self) -> Service:
        self._har_imu_data = Characteristic(har_imu.DATA_UUID, Characteristic.Properties.NOTIFY,
                                            Characteristic.Permissions.READABLE, b"")
        control = Characteristic(har_imu.CONTROL_UUID, Characteristic.Properties.WRITE,
                                 Characteristic.Permissions.WRITEABLE,
                                 CharacteristicValue(write=self._on_har_imu_command))
        info = Characteristic(har_imu.INFO_UUID, Characteristic.Properties.READ, Characteristic.Permissions.READABLE,
                              har_imu.INFO.pack(har_imu.VERSION, round(self.fs_hz), har_imu.INFO_HAS_GYRO,
                                                HAR_IMU_ACC_LSB_PER_G, HAR_IMU_GYRO_LSB_PER_DPS))
        return Service(har_imu.SERVICE_UUID, [self._har_imu_data, control, info])

    def _on_har_imu_command(self, connection: Connection, value: bytes) -> None:
        self.commands.append(bytes(value))
        if value[:1] == bytes([har_imu.START]):
            self._start_stream("imu", self._har_imu_data)
        elif value[:1] == har_imu.STOP_COMMAND:
            self._stop_stream("imu")

    def _har_imu_packet(self, first: int, stop: int, step_s: float = 0.0) -> bytes:
        seq, self._seq = self._seq, (self._seq + 1) % har_imu.SEQ_MODULUS
        return har_imu_packet(self.samples, first, stop, seq, self.fs_hz, step_s)
