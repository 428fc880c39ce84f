"""`har_imu_v1`: the project's own streaming format for simulators, replays and DIY firmware (docs/har-imu.md).

Service 59bb0000-be28-404c-9bfe-1c25f49e9d73 with three characteristics, all fields little-endian:
data (notify) `u8 ver_flags, u8 n, u16 seq, u32 t0_us` + n x (ax, ay, az, gx, gy, gz) int16;
control (write with response) `01 <u16 rate_hz>` start, `02` stop;
info (read) `u8 version, u16 rate_hz, u8 flags (bit0 = has gyro), i16 acc_lsb_per_g, i16 gyro_lsb_per_dps`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.ble.profile import GattLink
from har_app.ble.units import DPS_TO_RADS, STANDARD_GRAVITY
from har_app.sources.base import ImuFrame, SourceStats


def har_imu_uuid(short: int) -> str:
    return f"59bb{short:04x}-be28-404c-9bfe-1c25f49e9d73"


SERVICE_UUID = har_imu_uuid(0x0000)
DATA_UUID = har_imu_uuid(0x0001)
CONTROL_UUID = har_imu_uuid(0x0002)
INFO_UUID = har_imu_uuid(0x0003)

VERSION = 1
VERSION_MASK = 0x0F  # ver_flags: low nibble = format version; high nibble reserved (send 0, ignore on receipt)
HEADER = struct.Struct("<BBHI")  # ver_flags, n, seq, t0_us
SAMPLE = struct.Struct("<6h")  # ax, ay, az, gx, gy, gz
INFO = struct.Struct("<BHBhh")  # version, rate_hz, flags, acc_lsb_per_g, gyro_lsb_per_dps
INFO_HAS_GYRO = 0x01
START, STOP = 0x01, 0x02
SEQ_MODULUS = 1 << 16
TIME_MODULUS = 1 << 32  # t0_us wraps every 71.6 minutes


def start_command(rate_hz: float) -> bytes:
    rate = round(rate_hz)
    if not 1 <= rate < SEQ_MODULUS:
        raise ValueError(f"har-imu rate must be 1..65535 Hz, got {rate_hz}")
    return struct.pack("<BH", START, rate)


STOP_COMMAND = bytes([STOP])


@dataclass(frozen=True)
class Info:
    version: int
    rate_hz: int
    has_gyro: bool
    acc_lsb_per_g: int
    gyro_lsb_per_dps: int


def parse_info(data: bytes) -> Info:
    if len(data) != INFO.size:
        raise DeviceRefused(f"har-imu info must be {INFO.size} bytes, got {len(data)}: {bytes(data).hex()}")
    version, rate, flags, acc_lsb, gyro_lsb = INFO.unpack(data)
    info = Info(version, rate, bool(flags & INFO_HAS_GYRO), acc_lsb, gyro_lsb)
    if version != VERSION:
        raise DeviceRefused(f"har-imu format version {version} is not supported (this har speaks {VERSION})")
    if rate <= 0 or acc_lsb <= 0 or (info.has_gyro and gyro_lsb <= 0):
        raise DeviceRefused(f"har-imu info has a zero or negative rate or scale: {bytes(data).hex()}")
    return info


@dataclass(frozen=True)
class Packet:
    seq: int
    t0_us: int  # device time of the first sample, wrapping u32 microseconds
    raw: np.ndarray  # (n, 6) int16 counts


def parse_packet(data: bytes) -> Packet:
    if len(data) < HEADER.size:
        raise MalformedPacket(f"har-imu packet of {len(data)} bytes")
    ver_flags, n, seq, t0_us = HEADER.unpack_from(data)
    if ver_flags & VERSION_MASK != VERSION:
        raise MalformedPacket(f"har-imu packet version {ver_flags & VERSION_MASK}")
    if n == 0 or len(data) != HEADER.size + n * SAMPLE.size:
        raise MalformedPacket(f"har-imu packet of {len(data)} bytes announces {n} samples")
    raw = np.frombuffer(bytes(data), dtype="<i2", offset=HEADER.size).reshape(n, 6)
    return Packet(seq, t0_us, raw)


class HarImuDecoder:
    """Packets of one connection to SI frames: acc = counts / acc_lsb_per_g x 9.80665, gyro = counts /
    gyro_lsb_per_dps x pi/180; sample i at t0 + i / rate_hz; seq gaps (mod 2^16) counted as lost packets."""

    def __init__(self, info: Info, stats: SourceStats) -> None:
        self.info, self.stats = info, stats
        self.rate_hz, self.has_gyro = float(info.rate_hz), info.has_gyro
        self._next_seq: int | None = None
        self._last_t0_us: int | None = None  # unwrapped

    def decode(self, uuid: str, data: bytes) -> list[ImuFrame]:
        packet = parse_packet(data)
        lost = 0
        if self._next_seq is not None:
            lost = (packet.seq - self._next_seq) % SEQ_MODULUS
            if lost >= SEQ_MODULUS // 2:
                raise MalformedPacket(f"har-imu seq {packet.seq} is behind {self._next_seq}: duplicate or reordered")
        t0_us = self._unwrap(packet.t0_us)
        self.stats.lost_packets += lost
        self._next_seq, self._last_t0_us = (packet.seq + 1) % SEQ_MODULUS, t0_us
        t_s = (t0_us + np.arange(len(packet.raw)) * 1e6 / self.rate_hz) * 1e-6  # t_i = t0 + i / fs
        acc = packet.raw[:, :3] * (STANDARD_GRAVITY / self.info.acc_lsb_per_g)
        gyro = packet.raw[:, 3:] * (DPS_TO_RADS / self.info.gyro_lsb_per_dps) if self.has_gyro else None
        return [ImuFrame(t_s=t_s, acc=acc, gyro=gyro, seq=packet.seq)]

    def _unwrap(self, t0_us: int) -> int:
        """Continue the device clock across u32 wraps; a step back of less than half the range is corrupt."""
        if self._last_t0_us is None:
            return t0_us
        step = (t0_us - self._last_t0_us) % TIME_MODULUS
        if step == 0 or step >= TIME_MODULUS // 2:
            raise MalformedPacket(f"har-imu t0_us {t0_us} does not advance")
        return self._last_t0_us + step


class HarImuProfile:
    name = "har-imu"
    title = "har_imu_v1"
    service_uuid = SERVICE_UUID
    data_uuids = (DATA_UUID,)
    control_uuid = None

    async def start(self, link: GattLink, rate_hz: float, stats: SourceStats) -> HarImuDecoder:
        """Write start, then read info: it holds the rate the device actually streams at and the scales."""
        await link.write(CONTROL_UUID, start_command(rate_hz))
        return HarImuDecoder(parse_info(await link.read(INFO_UUID)), stats)

    async def stop(self, link: GattLink, decoder: HarImuDecoder) -> None:
        await link.write(CONTROL_UUID, STOP_COMMAND)
