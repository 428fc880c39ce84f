"""A recording as the packets a watch sends (har_imu_v1 packets, Polar PMD frames), the faults a misbehaving watch or
link adds to them, and a source that feeds them through the real decoding loop of `har live --ble`.

Used by the rig's emulated watch (tests/rig), the fuzzing tests and bench/fuzz_ble.py. The encoders are the
test-side counterpart of har_app.ble, written from the byte layouts (docs/har-imu.md, the PMD notes in
har_app/ble/pmd.py); they are checked end to end against the samples they were given.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from har_app.ble import har_imu, pmd
from har_app.ble.units import DPS_TO_RADS, MG_TO_MS2, STANDARD_GRAVITY
from har_app.sources.base import ImuFrame, SourceStats
from har_app.sources.ble import DISCONNECTED, Disconnected, decoded_frames

DEVICE_EPOCH_NS = int((dt.datetime(2024, 1, 1) - dt.datetime(2000, 1, 1)).total_seconds()) * 10**9  # PMD sample 0
GYRO_FACTOR = 0.0625  # deg/s per count in the emulated PMD gyro stream (+-2048 deg/s in int16)
HAR_IMU_ACC_LSB_PER_G = 4096  # +-8 g
HAR_IMU_GYRO_LSB_PER_DPS = 16  # +-2048 deg/s
DELTA_BLOCK = 4  # samples per delta block, so one frame holds blocks of different widths
FAULT_KINDS = ("drop", "burst", "duplicate", "swap", "flip", "step")


def signed_width(value: int) -> int:
    """Bits of the smallest two's-complement field holding `value`."""
    return (value if value >= 0 else ~value).bit_length() + 1


def encode_delta_frames(values: np.ndarray, resolution_bits: int = 16, block: int = DELTA_BLOCK) -> bytes:
    """Reference sample + blocks of deltas, each block as narrow as its largest delta needs (PMD layout)."""
    width = resolution_bits // 8
    out = b"".join(int(v).to_bytes(width, "little", signed=True) for v in values[0])
    deltas = np.diff(values.astype(np.int64), axis=0)
    for start in range(0, len(deltas), block):
        chunk = [int(d) for d in deltas[start:start + block].ravel()]
        bits = max(signed_width(d) for d in chunk)
        packed = sum((d & ((1 << bits) - 1)) << (k * bits) for k, d in enumerate(chunk))
        out += bytes([bits, len(chunk) // values.shape[1]]) + packed.to_bytes((bits * len(chunk) + 7) // 8, "little")
    return out


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int64)


def tlv(setting: int, values: tuple) -> bytes:
    """One PMD setting with any number of values: `<setting> <count> <values>`."""
    fmt = pmd.SETTING_FORMATS[setting]
    return bytes([setting, len(values)]) + b"".join(fmt.pack(v) for v in values)


def har_imu_packet(samples: np.ndarray, first: int, stop: int, seq: int, fs_hz: float, step_s: float = 0.0) -> bytes:
    """Samples [first, stop) of (n, 6) SI as one har_imu_v1 packet; device time k / fs (+ a clock step)."""
    acc = to_int16(samples[first:stop, :3] / STANDARD_GRAVITY * HAR_IMU_ACC_LSB_PER_G)
    gyro = to_int16(samples[first:stop, 3:] / DPS_TO_RADS * HAR_IMU_GYRO_LSB_PER_DPS)
    t0_us = round((first / fs_hz + step_s) * 1e6) % har_imu.TIME_MODULUS
    header = har_imu.HEADER.pack(har_imu.VERSION, stop - first, seq % har_imu.SEQ_MODULUS, t0_us)
    return header + np.hstack([acc, gyro]).astype("<i2").tobytes()


def pmd_frame(samples: np.ndarray, measurement: int, first: int, stop: int, fs_hz: float, step_s: float = 0.0,
              compressed: bool = True) -> bytes:
    """Samples [first, stop) of one sensor as a PMD data frame: ACC in mG (compressed type 1 or raw type 1), GYRO
    in GYRO_FACTOR deg/s (compressed type 0); timestamp of the last sample, ns."""
    timestamp_ns = DEVICE_EPOCH_NS + round(((stop - 1) / fs_hz + step_s) * 1e9)
    if measurement == pmd.Measurement.ACC:
        counts = to_int16(samples[first:stop, :3] / MG_TO_MS2)
        if compressed:
            frame_type, payload = pmd.COMPRESSED | 1, encode_delta_frames(counts)
        else:
            frame_type, payload = 1, counts.astype("<i2").tobytes()
    else:
        counts = to_int16(samples[first:stop, 3:] / DPS_TO_RADS / GYRO_FACTOR)
        frame_type, payload = pmd.COMPRESSED | 0, encode_delta_frames(counts)
    return pmd.DATA_HEADER.pack(measurement, timestamp_ns, frame_type) + payload


@dataclass(frozen=True)
class Sent:
    """One packet as the watch produced it: its bytes, stream and sample index range [first, stop)."""

    data: bytes
    stream: str
    first: int
    stop: int


def packets_of(samples: np.ndarray, fs_hz: float, profile: str, per_packet: int,
               step: tuple[int, float] | None = None) -> list[Sent]:
    """The whole recording as the watch sends it (PMD: ACC and GYRO frames alternate); `step` = (packet, seconds):
    the device clock steps by that much from that packet on."""
    out: list[Sent] = []
    for k, first in enumerate(range(0, len(samples) - per_packet + 1, per_packet)):
        stop = first + per_packet
        step_s = step[1] if step is not None and len(out) >= step[0] else 0.0
        if profile == "har-imu":
            out.append(Sent(har_imu_packet(samples, first, stop, k, fs_hz, step_s), "imu", first, stop))
        else:
            for stream, m in (("acc", pmd.Measurement.ACC), ("gyro", pmd.Measurement.GYRO)):
                out.append(Sent(pmd_frame(samples, m, first, stop, fs_hz, step_s), stream, first, stop))
    return out


@dataclass(frozen=True)
class Fault:
    """What happens to packet `index` on the way: dropped, `size` packets from it dropped (burst), sent twice,
    swapped with the next, bit `bit` inverted (flip); or the device clock steps by `step_s` from it on."""

    kind: str
    index: int
    bit: int = 0
    size: int = 1
    step_s: float = 0.0


def arrivals(sent: list[Sent], faults: list[Fault]) -> tuple[list[bytes], list[Sent]]:
    """(the notifications in arrival order, the packets that arrived intact at least once)."""
    by_index = {f.index: f for f in faults if f.kind != "step"}
    dropped = {i for f in faults if f.kind == "burst" for i in range(f.index, f.index + f.size)}
    order: list[bytes] = []
    intact: list[Sent] = []
    swapped: bytes | None = None
    for i, packet in enumerate(sent):
        fault = by_index.get(i)
        data = packet.data
        if i in dropped or (fault and fault.kind == "drop"):
            continue
        if fault and fault.kind == "flip":
            bit = fault.bit % (8 * len(data))
            data = data[:bit // 8] + bytes([data[bit // 8] ^ (1 << bit % 8)]) + data[bit // 8 + 1:]
        else:
            intact.append(packet)
        if fault and fault.kind == "swap" and swapped is None:
            swapped = data
            continue
        order += [data] * (2 if fault and fault.kind == "duplicate" else 1)
        if swapped is not None:
            order.append(swapped)
            swapped = None
    if swapped is not None:
        order.append(swapped)
    return order, intact


def clock_step(faults: list[Fault]) -> tuple[int, float] | None:
    steps = [f for f in faults if f.kind == "step"]
    return (steps[0].index, steps[0].step_s) if steps else None


class PacketSource:
    """An ImuSource: notifications fed through the decoding loop of BleSource (`decoded_frames`) into `decoder`.

    `packet_s` is the host time between notifications: with `speed` 0 they are queued at once with synthetic host
    times (packet k at k x packet_s), otherwise released in real time at speed x (host time = time.monotonic())."""

    def __init__(self, decoder, notifications: list[bytes], uuid: str, packet_s: float, speed: float = 0.0,
                 stall_timeout_s: float = 10.0) -> None:
        self.decoder, self.notifications, self.uuid = decoder, notifications, uuid
        self.packet_s, self.speed, self.stall_timeout_s = packet_s, speed, stall_timeout_s
        self.stats: SourceStats = decoder.stats
        self.expected_rate_hz = decoder.rate_hz
        self.name = "packets"

    async def _feed(self, queue: asyncio.Queue) -> None:
        start = time.monotonic()
        for k, data in enumerate(self.notifications):
            if self.speed:
                await asyncio.sleep(max(0.0, start + k * self.packet_s / self.speed - time.monotonic()))
                queue.put_nowait((self.uuid, data, time.monotonic()))
            else:
                queue.put_nowait((self.uuid, data, k * self.packet_s))
        queue.put_nowait(DISCONNECTED)

    async def frames(self) -> AsyncIterator[ImuFrame]:
        queue: asyncio.Queue = asyncio.Queue()
        feeder = asyncio.create_task(self._feed(queue))
        try:
            async for frame in decoded_frames(queue, self.decoder, self.stats, self.stall_timeout_s):
                yield frame
        except Disconnected:
            return
        finally:
            feeder.cancel()


def har_imu_decoder(fs_hz: float) -> har_imu.HarImuDecoder:
    info = har_imu.Info(har_imu.VERSION, round(fs_hz), True, HAR_IMU_ACC_LSB_PER_G, HAR_IMU_GYRO_LSB_PER_DPS)
    return har_imu.HarImuDecoder(info, SourceStats())


def pmd_decoder(fs_hz: float) -> pmd.PmdDecoder:
    rates = {pmd.Measurement.ACC: fs_hz, pmd.Measurement.GYRO: fs_hz}
    full_scale = {pmd.Measurement.ACC: pmd.full_scale_si(pmd.Measurement.ACC, 8),
                  pmd.Measurement.GYRO: pmd.full_scale_si(pmd.Measurement.GYRO, 2000)}
    return pmd.PmdDecoder(rates, {pmd.Measurement.GYRO: GYRO_FACTOR}, SourceStats(), full_scale)


def decoder_for(profile: str, fs_hz: float):
    return har_imu_decoder(fs_hz) if profile == "har-imu" else pmd_decoder(fs_hz)


def uuid_for(profile: str) -> str:
    return har_imu.DATA_UUID if profile == "har-imu" else pmd.DATA_UUID


def counters_add_up(stats: SourceStats) -> bool:
    """packets = accepted + malformed + rejected_time + duplicates + late + pending."""
    return stats.packets == stats.accepted_packets + sum(stats.rejected().values()) + stats.pending_packets
