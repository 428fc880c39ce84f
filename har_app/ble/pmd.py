"""Polar Measurement Data (PMD): the streaming protocol of Polar sensors and watches (H10, Verity Sense, Vantage).

Implemented from Polar's public specification (docs/ble.md). Commands go to the control point (CP), which answers
each one with an indication `F0 <op> <type> <error> <more>` + settings; samples arrive as notifications on the
data characteristic: `<type> <u64 LE timestamp, ns since 2000-01-01, of the last sample> <frame type> <samples>`.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.ble.profile import GattLink
from har_app.ble.resync import Packet as Placed
from har_app.ble.resync import Release, Resequencer, relate_by_time
from har_app.ble.units import DPS_TO_RADS, MG_TO_MS2
from har_app.sources.base import ImuFrame, SourceStats

SERVICE_UUID = "fb005c80-02e7-f387-1cad-8acd2d8df0c8"
CONTROL_POINT_UUID = "fb005c81-02e7-f387-1cad-8acd2d8df0c8"  # read (features), write, indicate
DATA_UUID = "fb005c82-02e7-f387-1cad-8acd2d8df0c8"  # notify

FEATURES_FIRST_BYTE = 0x0F  # a CP read answers 0F + a bitmap of the measurement types offered
CP_RESPONSE = 0xF0
COMPRESSED = 0x80  # frame-type bit 7: delta-compressed samples
DATA_HEADER = struct.Struct("<BQB")  # measurement type, timestamp ns of the last sample, frame type


class Measurement(IntEnum):
    ECG = 0
    PPG = 1
    ACC = 2
    PPI = 3
    GYRO = 5
    MAG = 6
    SDK_MODE = 9


class OpCode(IntEnum):
    GET_SETTINGS = 1
    START = 2
    STOP = 3
    GET_SDK_MODE_SETTINGS = 4
    GET_STATUS = 5


class Setting(IntEnum):
    SAMPLE_RATE = 0
    RESOLUTION = 1
    RANGE = 2
    RANGE_MILLIUNIT = 3
    CHANNELS = 4
    FACTOR = 5


SETTING_FORMATS = {  # one value of each setting on the wire
    Setting.SAMPLE_RATE: struct.Struct("<H"),
    Setting.RESOLUTION: struct.Struct("<H"),
    Setting.RANGE: struct.Struct("<H"),
    Setting.RANGE_MILLIUNIT: struct.Struct("<I"),
    Setting.CHANNELS: struct.Struct("<B"),
    Setting.FACTOR: struct.Struct("<f"),
}

ERRORS = {
    0: "success", 1: "invalid op code", 2: "invalid measurement type", 3: "measurement not supported",
    4: "invalid length", 5: "invalid parameter", 6: "already in that state", 7: "invalid resolution",
    8: "invalid sample rate", 9: "invalid range", 10: "invalid MTU", 11: "invalid number of channels",
    12: "invalid state", 13: "device is on the charger",
}
ALREADY_IN_STATE = 6
HINTS = {
    12: " (Polar watches stream only with 'SDK share' enabled, from the exercise-wait screen)",
    13: " (take it off the charger)",
}
PREFERRED_RANGE = {Measurement.ACC: 8, Measurement.GYRO: 2000}  # g, deg/s: enough for wrist motion
LARGEST_RANGE = {Measurement.ACC: 16, Measurement.GYRO: 2000}  # g, deg/s: the full scale when none was negotiated
RANGE_UNIT_SI = {Measurement.ACC: 1000 * MG_TO_MS2, Measurement.GYRO: DPS_TO_RADS}  # one g, one deg/s
FULL_SCALE_MARGIN = 1.5  # a sensor saturates at its range: a sample half as far again beyond it is a decoding error
SUPPORTED_RATES_HZ = (25, 26, 50, 52, 100, 104, 200, 208, 416)  # ACC/GYRO rates of Polar devices (docs/ble-streams.md)
FACTOR_RANGE = (1e-6, 10.0)  # a FACTOR outside this is no scale of a 16-bit count to g, mG or deg/s
PREFERRED_RESOLUTION = 16
STREAMED = (Measurement.ACC, Measurement.GYRO)


# --- control point -------------------------------------------------------------------------------------------

def encode_settings(settings: dict[Setting, int | float]) -> bytes:
    """TLVs `<setting> <count=1> <value>` in setting order."""
    out = b""
    for setting, value in sorted(settings.items()):
        out += bytes([setting, 1]) + SETTING_FORMATS[setting].pack(value)
    return out


def parse_settings(data: bytes) -> dict[Setting, list[int | float]]:
    """TLVs `<setting> <count> <count values>` (a settings answer may offer several values per setting)."""
    settings: dict[Setting, list[int | float]] = {}
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data) or data[pos] not in SETTING_FORMATS.keys():
            raise MalformedPacket(f"bad PMD setting at byte {pos}: {data[pos:].hex()}")
        setting, count = Setting(data[pos]), data[pos + 1]
        fmt = SETTING_FORMATS[setting]
        end = pos + 2 + count * fmt.size
        if end > len(data):
            raise MalformedPacket(f"PMD setting {setting.name} truncated")
        settings[setting] = [fmt.unpack_from(data, pos + 2 + i * fmt.size)[0] for i in range(count)]
        pos = end
    return settings


def get_settings_command(measurement: Measurement) -> bytes:
    return bytes([OpCode.GET_SETTINGS, measurement])


def start_command(measurement: Measurement, settings: dict[Setting, int | float]) -> bytes:
    """E.g. Verity Sense ACC 52 Hz, 16 bit, 8 g, 3 channels: `02 02 00 01 34 00 01 01 10 00 02 01 08 00 04 01 03`."""
    return bytes([OpCode.START, measurement]) + encode_settings(settings)


def stop_command(measurement: Measurement) -> bytes:
    return bytes([OpCode.STOP, measurement])


@dataclass(frozen=True)
class ControlResponse:
    op: int
    measurement: int
    error: int
    more: bool
    settings: dict[Setting, list[int | float]]


def parse_control_response(data: bytes) -> ControlResponse:
    """`F0 <op> <type> <error> [<more> <settings TLVs>]` (error answers may stop after the error byte)."""
    if len(data) < 4 or data[0] != CP_RESPONSE:
        raise MalformedPacket(f"not a PMD control-point response: {bytes(data).hex()}")
    more = len(data) > 4 and data[4] != 0
    settings = parse_settings(bytes(data[5:])) if data[3] == 0 else {}
    return ControlResponse(data[1], data[2], data[3], more, settings)


def measurement_name(measurement: int) -> str:
    return Measurement(measurement).name if measurement in Measurement._value2member_map_ else f"type {measurement}"


def check_response(response: ControlResponse, op: OpCode, measurement: Measurement) -> None:
    """Raise DeviceRefused with the spec's error text unless `response` accepts `op` on `measurement`."""
    if response.op != op or response.measurement != measurement:
        raise DeviceRefused(f"Polar PMD answered op {response.op} on {measurement_name(response.measurement)} "
                            f"to {op.name} {measurement.name}")
    accepted = response.error == 0 or (op == OpCode.START and response.error == ALREADY_IN_STATE)
    if not accepted:
        reason = ERRORS.get(response.error, "unknown error")
        raise DeviceRefused(f"Polar PMD refused {op.name.lower().replace('_', ' ')} {measurement.name}: "
                            f"{reason} (error {response.error}){HINTS.get(response.error, '')}")


def parse_features(data: bytes) -> set[Measurement]:
    """The measurement types a CP read offers: `0F` then one bit per type, LSB first."""
    if len(data) < 2 or data[0] != FEATURES_FIRST_BYTE:
        raise DeviceRefused(f"unexpected Polar PMD feature read: {bytes(data).hex()}")
    bits = int.from_bytes(data[1:], "little")
    return {m for m in Measurement if bits >> m & 1}


def choose_settings(offered: dict[Setting, list[int | float]], measurement: Measurement,
                    rate_hz: float) -> dict[Setting, int]:
    """From a settings answer: the supported rate nearest `rate_hz` (ties: the higher), 16 bit, the preferred
    range, 3 axes. Raises DeviceRefused when no offered rate is one this profile supports."""
    def preferred_or_max(setting: Setting, preferred: int) -> None:
        if values := offered.get(setting):
            chosen[setting] = preferred if preferred in values else int(max(values))

    rates = [r for r in offered.get(Setting.SAMPLE_RATE, []) if r in SUPPORTED_RATES_HZ]
    if not rates:
        raise DeviceRefused(f"Polar PMD offered no supported sample rate for {measurement.name}: offered "
                            f"{offered.get(Setting.SAMPLE_RATE, [])} Hz, har supports "
                            f"{', '.join(map(str, SUPPORTED_RATES_HZ))}")
    chosen: dict[Setting, int] = {Setting.SAMPLE_RATE: int(min(rates, key=lambda r: (abs(r - rate_hz), -r)))}
    preferred_or_max(Setting.RESOLUTION, PREFERRED_RESOLUTION)
    preferred_or_max(Setting.RANGE, PREFERRED_RANGE[measurement])
    preferred_or_max(Setting.CHANNELS, 3)
    return chosen


def start_factor(response: ControlResponse, measurement: Measurement) -> float:
    """The FACTOR a START answer carries (1 when it carries none): exactly one value, finite, in FACTOR_RANGE."""
    values = response.settings.get(Setting.FACTOR)
    if values is None:
        return 1.0
    if len(values) != 1:
        raise DeviceRefused(f"Polar PMD START {measurement.name} answer carries {len(values)} FACTOR values "
                            f"(expected 1)")
    factor = float(values[0])
    if not (math.isfinite(factor) and FACTOR_RANGE[0] <= factor <= FACTOR_RANGE[1]):
        raise DeviceRefused(f"Polar PMD START {measurement.name} answer has FACTOR {factor!r}: must be finite and "
                            f"within {FACTOR_RANGE[0]:g}..{FACTOR_RANGE[1]:g}")
    return factor


def full_scale_si(measurement: Measurement, range_setting: int | None) -> float:
    """The largest magnitude a sample may have, in SI units: the negotiated range (g, deg/s) x FULL_SCALE_MARGIN."""
    sensor_range = range_setting if range_setting else LARGEST_RANGE[measurement]
    return sensor_range * RANGE_UNIT_SI[measurement] * FULL_SCALE_MARGIN


# --- data frames ---------------------------------------------------------------------------------------------

def decode_raw(payload: bytes, channels: int, resolution_bits: int) -> np.ndarray:
    """Uncompressed samples: `channels` signed little-endian integers of `resolution_bits` each, per sample."""
    width = resolution_bits // 8
    if not payload or len(payload) % (channels * width):
        raise MalformedPacket(f"{len(payload)} payload bytes are not whole {channels}x{resolution_bits}-bit samples")
    raw = np.frombuffer(payload, np.uint8).reshape(-1, width).astype(np.int64)
    unsigned = (raw << (8 * np.arange(width))).sum(axis=1)  # little endian: sum_k b_k 2^(8k)
    sign = 1 << (resolution_bits - 1)
    return ((unsigned ^ sign) - sign).reshape(-1, channels)  # two's complement


def parse_delta_frames(data: bytes, channels: int, resolution_bits: int) -> np.ndarray:
    """Delta-compressed samples: a reference sample (channels x resolution/8 bytes, signed LE), then blocks
    `[delta_bits u8][count u8][count x channels deltas of delta_bits, packed LSB first, padded to a byte]`;
    each signed delta is added to the previous sample. Returns (1 + sum of counts, channels) integers."""
    width = (resolution_bits + 7) // 8
    ref_size = channels * width
    if len(data) < ref_size:
        raise MalformedPacket(f"delta frame of {len(data)} bytes is shorter than its reference sample")
    samples = [decode_raw(bytes(data[:ref_size]), channels, width * 8)[0]]
    pos = ref_size
    while pos < len(data):
        if pos + 2 > len(data):
            raise MalformedPacket(f"delta block header truncated at byte {pos}")
        bits, count = data[pos], data[pos + 1]
        if not 1 <= bits <= 32:
            raise MalformedPacket(f"delta width of {bits} bits")
        size = (bits * count * channels + 7) // 8
        if pos + 2 + size > len(data):
            raise MalformedPacket(f"delta block of {count} samples x {bits} bits truncated")
        packed = int.from_bytes(data[pos + 2:pos + 2 + size], "little")
        mask, sign = (1 << bits) - 1, 1 << (bits - 1)
        deltas = [((packed >> (k * bits) & mask) ^ sign) - sign for k in range(count * channels)]
        previous = samples[-1]
        for i in range(count):
            previous = previous + np.asarray(deltas[i * channels:(i + 1) * channels], dtype=np.int64)
            samples.append(previous)
        pos += 2 + size
    return np.stack(samples)


@dataclass(frozen=True)
class FrameFormat:
    resolution_bits: int
    si_per_unit: float  # SI value of one decoded unit (times FACTOR where the frame uses it)
    uses_factor: bool
    float32: bool = False  # decoded integers are IEEE float32 bit patterns


FRAME_FORMATS = {  # (measurement, compressed, frame type) -> format
    (Measurement.ACC, False, 0): FrameFormat(8, MG_TO_MS2, False),  # mG
    (Measurement.ACC, False, 1): FrameFormat(16, MG_TO_MS2, False),
    (Measurement.ACC, False, 2): FrameFormat(24, MG_TO_MS2, False),
    (Measurement.ACC, True, 0): FrameFormat(16, 1000 * MG_TO_MS2, True),  # value x FACTOR = g
    (Measurement.ACC, True, 1): FrameFormat(16, MG_TO_MS2, True),  # value x FACTOR = mG
    (Measurement.GYRO, True, 0): FrameFormat(16, DPS_TO_RADS, True),  # value x FACTOR = deg/s
    (Measurement.GYRO, True, 1): FrameFormat(32, DPS_TO_RADS, True, float32=True),
}


@dataclass(frozen=True)
class DataFrame:
    measurement: Measurement
    timestamp_ns: int  # of the last sample, since 2000-01-01T00:00:00Z
    format: FrameFormat
    values: np.ndarray  # (n, 3) in device units (before FACTOR)


def parse_data_frame(data: bytes) -> DataFrame:
    """One data notification; raises MalformedPacket for anything short, unknown or inconsistent."""
    if len(data) <= DATA_HEADER.size:
        raise MalformedPacket(f"PMD data frame of {len(data)} bytes")
    measurement, timestamp_ns, frame_type = DATA_HEADER.unpack_from(data)
    key = (measurement, bool(frame_type & COMPRESSED), frame_type & ~COMPRESSED)
    if key not in FRAME_FORMATS:
        raise MalformedPacket(f"unsupported PMD frame: measurement {measurement}, frame type 0x{frame_type:02x}")
    fmt = FRAME_FORMATS[key]
    payload = bytes(data[DATA_HEADER.size:])
    decode = parse_delta_frames if key[1] else decode_raw
    values = decode(payload, 3, fmt.resolution_bits)
    if fmt.float32:
        values = (values & 0xFFFFFFFF).astype(np.uint32).view(np.float32).astype(np.float64)
    return DataFrame(Measurement(measurement), timestamp_ns, fmt, values.astype(np.float64))


def to_si(frame: DataFrame, factor: float) -> np.ndarray:
    """m/s^2 for ACC, rad/s for GYRO: value x FACTOR x unit (mG x 9.80665e-3, deg/s x pi/180)."""
    return frame.values * ((factor if frame.format.uses_factor else 1.0) * frame.format.si_per_unit)


class PmdDecoder:
    """ACC and GYRO frames of one connection to SI `ImuFrame`s with per-sample times.

    Sample times are interpolated between the previous frame's timestamp and this one's,
    t_i = t_prev + (i + 1) (t_last - t_prev) / n; the first frame, or one after missing frames or a resync, uses the
    configured rate: t_i = t_last - (n - 1 - i) / fs. Each stream's frames are put in order by their timestamps
    (har_app/ble/resync.py); the streams share the device clock, so a resync of one moves the other's clock too.
    Samples beyond the full scale, or not finite, are dropped and counted."""

    def __init__(self, rates_hz: dict[Measurement, float], factors: dict[Measurement, float],
                 stats: SourceStats, full_scale: dict[Measurement, float] | None = None) -> None:
        self.rates_hz, self.factors, self.stats = rates_hz, factors, stats
        self.full_scale = full_scale or {m: full_scale_si(m, None) for m in rates_hz}
        self.rate_hz = rates_hz[Measurement.ACC]
        self.has_gyro = Measurement.GYRO in rates_hz
        self.streams = {m: Resequencer(fs, relate_by_time(fs), stats) for m, fs in rates_hz.items()}

    @property
    def pending(self) -> int:
        return sum(s.pending for s in self.streams.values())

    def decode(self, uuid: str, data: bytes, host_s: float = 0.0) -> list[ImuFrame]:
        frame = parse_data_frame(data)
        if frame.measurement not in self.rates_hz:
            raise MalformedPacket(f"PMD {frame.measurement.name} frame that was not started")
        n, fs = len(frame.values), self.rates_hz[frame.measurement]
        last_s = frame.timestamp_ns * 1e-9
        placed = Placed(last_s - (n - 1) / fs, last_s, n, host_s, (frame.timestamp_ns, n, frame.values.tobytes()),
                        frame)
        return self._released(frame.measurement, lambda stream: stream.push(placed))

    def tick(self, host_s: float) -> list[ImuFrame]:
        return [f for m in self.streams for f in self._released(m, lambda stream: stream.tick(host_s))]

    def flush(self) -> list[ImuFrame]:
        return [f for m in self.streams for f in self._released(m, Resequencer.flush)]

    def _released(self, measurement: Measurement, act) -> list[ImuFrame]:
        stream = self.streams[measurement]
        offset = stream.offset_s
        frames = self._frames(measurement, act(stream))
        if stream.offset_s != offset:  # a resync: the other streams are on the same device clock
            for other, sibling in self.streams.items():
                if sibling is not stream:
                    frames += self._frames(other, sibling.shift_clock(stream.offset_s - offset))
        self.stats.pending_packets = self.pending
        return frames

    def _frames(self, measurement: Measurement, releases: list[Release]) -> list[ImuFrame]:
        fs, frames = self.rates_hz[measurement], []
        for release in releases:
            p, frame = release.packet, release.packet.body
            i = np.arange(p.n)
            if release.how == "next":  # t_i = t_prev + (i + 1) (t_last - t_prev) / n
                t_s = release.previous.last_s + (i + 1) * (p.last_s - release.previous.last_s) / p.n
            else:  # t_i = t_last - (n - 1 - i) / fs
                t_s = p.last_s - (p.n - 1 - i) / fs
            si = to_si(frame, self.factors.get(measurement, 1.0))
            finite = np.isfinite(si).all(axis=1)
            in_range = np.abs(np.where(np.isfinite(si), si, 0.0)).max(axis=1) <= self.full_scale[measurement]
            self.stats.non_finite_samples += int(np.count_nonzero(~finite))
            self.stats.out_of_range_samples += int(np.count_nonzero(finite & ~in_range))
            keep = finite & in_range
            sensor = "acc" if measurement == Measurement.ACC else "gyro"
            frames.append(ImuFrame(t_s=t_s[keep], **{sensor: si[keep]}, reset_needed=release.how == "resync",
                                   reset_reason="resync", host_s=p.host_s))
        return frames


class PmdProfile:
    name = "pmd"
    title = "Polar PMD"
    service_uuid = SERVICE_UUID
    data_uuids = (DATA_UUID,)
    control_uuid = CONTROL_POINT_UUID

    async def _command(self, link: GattLink, command: bytes, op: OpCode,
                       measurement: Measurement) -> ControlResponse:
        await link.write(CONTROL_POINT_UUID, command)
        try:
            response = parse_control_response(await link.control_response())
        except MalformedPacket as exc:
            raise DeviceRefused(f"Polar PMD: {exc}") from None
        check_response(response, op, measurement)
        return response

    async def start(self, link: GattLink, rate_hz: float, stats: SourceStats) -> PmdDecoder:
        """Ask each stream's settings, then start ACC (and GYRO where offered) at the rate nearest `rate_hz`."""
        offered = parse_features(await link.read(CONTROL_POINT_UUID))
        if Measurement.ACC not in offered:
            raise DeviceRefused("this Polar device offers no accelerometer stream")
        rates, factors, full_scale = {}, {}, {}
        for measurement in (m for m in STREAMED if m in offered):
            answer = await self._command(link, get_settings_command(measurement), OpCode.GET_SETTINGS, measurement)
            settings = choose_settings(answer.settings, measurement, rate_hz)
            started = await self._command(link, start_command(measurement, settings), OpCode.START, measurement)
            rates[measurement] = float(settings[Setting.SAMPLE_RATE])
            factors[measurement] = start_factor(started, measurement)
            full_scale[measurement] = full_scale_si(measurement, settings.get(Setting.RANGE))
        return PmdDecoder(rates, factors, stats, full_scale)

    async def stop(self, link: GattLink, decoder: PmdDecoder) -> None:
        for measurement in decoder.rates_hz:
            await link.write(CONTROL_POINT_UUID, stop_command(measurement))
