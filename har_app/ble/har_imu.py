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
from har_app.ble.resync import Packet as Placed
from har_app.ble.resync import Release, Resequencer, relate_by_seq_and_time
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
MAX_SAMPLES = 255  # n is a u8
MAX_RATE_HZ = 1000  # the rates this profile supports: 1..1000 Hz


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
    if not 1 <= rate <= MAX_RATE_HZ:
        raise DeviceRefused(f"har-imu info: rate_hz {rate} is not a supported rate (1..{MAX_RATE_HZ} Hz)")
    if acc_lsb <= 0 or (info.has_gyro and gyro_lsb <= 0):
        raise DeviceRefused(f"har-imu info: zero or negative scale acc_lsb_per_g {acc_lsb}, gyro_lsb_per_dps "
                            f"{gyro_lsb}")
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
    gyro_lsb_per_dps x pi/180; sample i at t0 + i / rate_hz. Packets are put in order by seq and t0 together
    (har_app/ble/resync.py: duplicates, reorders, lost, late and implausible packets, clock steps)."""

    def __init__(self, info: Info, stats: SourceStats) -> None:
        self.info, self.stats = info, stats
        self.rate_hz, self.has_gyro = float(info.rate_hz), info.has_gyro
        self.stream = Resequencer(self.rate_hz, relate_by_seq_and_time(self.rate_hz, SEQ_MODULUS, MAX_SAMPLES),
                                  stats)
        self._first_t0_us: int | None = None  # raw t0_us of the connection's first packet

    @property
    def pending(self) -> int:
        return self.stream.pending

    def decode(self, uuid: str, data: bytes, host_s: float = 0.0) -> list[ImuFrame]:
        packet = parse_packet(data)
        t0_us = self._unwrap(packet.t0_us)
        n = len(packet.raw)
        first_s = t0_us * 1e-6
        placed = Placed(first_s, first_s + (n - 1) / self.rate_hz, n, host_s, (packet.seq, packet.t0_us, n),
                        (packet, t0_us), packet.seq)
        return self._frames(self.stream.push(placed))

    def tick(self, host_s: float) -> list[ImuFrame]:
        return self._frames(self.stream.tick(host_s))

    def flush(self) -> list[ImuFrame]:
        return self._frames(self.stream.flush())

    def _frames(self, releases: list[Release]) -> list[ImuFrame]:
        self.stats.pending_packets = self.stream.pending
        frames = []
        for release in releases:
            p, packet = release.packet, release.packet.body[0]
            t_s = p.first_s + np.arange(p.n) / self.rate_hz  # t_i = t0 + i / fs
            acc = packet.raw[:, :3] * (STANDARD_GRAVITY / self.info.acc_lsb_per_g)
            gyro = packet.raw[:, 3:] * (DPS_TO_RADS / self.info.gyro_lsb_per_dps) if self.has_gyro else None
            frames.append(ImuFrame(t_s=t_s, acc=acc, gyro=gyro, seq=packet.seq, reset_needed=release.how == "resync",
                                   reset_reason="resync", host_s=p.host_s))
        return frames

    def _unwrap(self, t0_us: int) -> int:
        """Continue the device clock across u32 wraps: the nearest value (within half the range) to the anchor's,
        or to the first packet's before there is an anchor (not the newest one's: after a corrupted t0 the packets
        that follow would be unwrapped half the range away with it)."""
        anchor = self.stream.anchor
        if anchor is not None:
            raw, unwrapped = anchor.body[0].t0_us, anchor.body[1]
        else:
            if self._first_t0_us is None:
                self._first_t0_us = t0_us
            raw = unwrapped = self._first_t0_us
        step = (t0_us - raw) % TIME_MODULUS
        step = step - TIME_MODULUS if step >= TIME_MODULUS // 2 else step
        return unwrapped + step


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
