"""Golden byte vectors for the BLE profiles: Polar PMD (spec examples, a real Verity Sense frame, hand-packed delta
blocks) and har_imu_v1 (hand-built packets). Expected values are worked out by hand from the byte layouts."""

import datetime as dt
import math
import re

import numpy as np
import pytest

from har_app.ble import har_imu, pmd
from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.ble.profiles import detect_profile
from har_app.sources.base import SourceStats
from har_app.sources.ble import stream_gap

G = 9.80665
# A Verity Sense ACC notification posted in polar-ble-sdk#443 (2024-02-27): compressed type 1, device at rest.
VERITY_FRAME = bytes.fromhex(
    "022E578AF13732940A81AEFFC2FFE603063E7DB213F9E1233CD1FBBE1F00451010BCEF0782510079FFF3402FF88320F8"
    "4120E88160143CE00FF7FF2F3D71F7B8202005B0F7C1EEEF0931F0F5D137B7E02B4AFCE889BA1344C00B01B1FB7F3F00"
    "060011C0CEF7F64E0CC3DF137F9E0343C017BFB017C5E0F3C31E0C01901BC2F0FF3EE0FBBA102000B0FB3EF107FC700C"
    "C1FDF34241187A9F03FEDF07880F0414E4232C4B53B2DC120E1C63D2EB304211EB2B3130D10D1250BDFFD3E3C0D10610"
    "00220CF91FFC06A0E33F52FC7EE00F39D1277FD003C02F0881D0EBBF6100FBC0177B3000")


def pmd_header(measurement: int, timestamp_ns: int, frame_type: int) -> bytes:
    return bytes([measurement]) + timestamp_ns.to_bytes(8, "little") + bytes([frame_type])


# --- PMD delta compression ------------------------------------------------------------------------------------

def test_spec_reference_sample_with_an_8_bit_block():
    # reference D0 FF 65 01 E4 0F = (-48, 357, 4068); block 08 02: deltas (+1, -1, +2) then (-3, 0, +127)
    data = bytes.fromhex("D0FF6501E40F" "0802" "01FF02" "FD007F")
    assert pmd.parse_delta_frames(data, 3, 16).tolist() == [[-48, 357, 4068], [-47, 356, 4070], [-50, 356, 4197]]


def test_4_bit_deltas_are_packed_lsb_first():
    # deltas (1, -2, 3), (-8, 7, 0) as nibbles, low nibble first: E1 83 07
    data = bytes(6) + bytes.fromhex("0402" "E18307")
    assert pmd.parse_delta_frames(data, 3, 16).tolist() == [[0, 0, 0], [1, -2, 3], [-7, 5, 3]]


def test_6_bit_deltas_cross_byte_boundaries_and_blocks_change_width():
    # 18 bits 7D B2 13: bits 0-5 = 0x3D (-3), bits 6-11 = 0b001001 (+9), bits 12-17 = 0x3B (-5); then 2-bit (+1,-2,-1)
    data = bytes.fromhex("0A00F6FF0000" "0601" "7DB213" "0201" "39")
    assert pmd.parse_delta_frames(data, 3, 16).tolist() == [[10, -10, 0], [7, -1, -5], [8, -3, -6]]


def test_real_verity_sense_frame():
    frame = pmd.parse_data_frame(VERITY_FRAME)
    assert frame.measurement == pmd.Measurement.ACC
    # u64 LE 0x0A943237F18A572E ns after 2000-01-01: the day before it was posted
    taken = dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=frame.timestamp_ns // 1000)
    assert taken.date() == dt.date(2024, 2, 26)
    # blocks 6 bit x 62, 4 bit x 20, 6 bit x 16 end exactly at byte 228: 1 + 98 samples
    assert len(VERITY_FRAME) == 228 and frame.values.shape == (99, 3)
    assert frame.values[:2].tolist() == [[-82, -62, 998], [-85, -53, 993]]  # AE FF C2 FF E6 03, then (-3, +9, -5)
    magnitude_g = np.linalg.norm(frame.values, axis=1) / 1000
    assert magnitude_g.min() > 0.95 and magnitude_g.max() < 1.05  # a sensor at rest measures 1 g throughout


@pytest.mark.parametrize("data", [
    bytes.fromhex("D0FF6501E4"),  # reference sample cut short
    bytes.fromhex("D0FF6501E40F08"),  # block header cut short
    bytes.fromhex("D0FF6501E40F0802" "01FF02FD00"),  # block data cut short
    bytes.fromhex("D0FF6501E40F0001"),  # zero-width deltas
    bytes.fromhex("D0FF6501E40F2101" + "00" * 13),  # 33-bit deltas
])
def test_broken_delta_frames_are_malformed(data):
    with pytest.raises(MalformedPacket):
        pmd.parse_delta_frames(data, 3, 16)


# --- PMD raw frames and units ---------------------------------------------------------------------------------

def test_raw_acc_frames_int8_int16_int24_in_mg():
    assert pmd.parse_data_frame(pmd_header(2, 5, 0) + bytes.fromhex("807F00")).values.tolist() == [[-128, 127, 0]]
    h10 = pmd.parse_data_frame(pmd_header(2, 5, 1) + bytes.fromhex("1000F0FFE803" "0000FF7F0080"))
    assert h10.values.tolist() == [[16, -16, 1000], [0, 32767, -32768]]
    assert np.allclose(pmd.to_si(h10, factor=123.0)[0], [16e-3 * G, -16e-3 * G, G])  # raw frames ignore FACTOR
    wide = pmd.parse_data_frame(pmd_header(2, 5, 2) + bytes.fromhex("FFFFFF000080FFFF7F"))
    assert wide.values.tolist() == [[-1, -8388608, 8388607]]


def test_compressed_units_use_the_factor():
    acc_g = pmd.parse_data_frame(pmd_header(2, 5, 0x80) + bytes.fromhex("0010" "0000" "00F0"))  # value x FACTOR = g
    assert np.allclose(pmd.to_si(acc_g, factor=1 / 4096), [[G, 0, -G]])
    acc_mg = pmd.parse_data_frame(pmd_header(2, 5, 0x81) + bytes.fromhex("E803" "0000" "0000"))  # x FACTOR = mG
    assert np.allclose(pmd.to_si(acc_mg, factor=1.0), [[G, 0, 0]])
    gyro = pmd.parse_data_frame(pmd_header(5, 5, 0x80) + bytes.fromhex("1000" "E0FF" "0000"))  # x FACTOR = deg/s
    assert np.allclose(pmd.to_si(gyro, factor=0.0625), [[math.pi / 180, -2 * math.pi / 180, 0]])
    # float32 samples: 1.5 = 0x3FC00000, -2.0 = 0xC0000000, 0.0; delta +0 keeps them
    gyro_f = pmd.parse_data_frame(pmd_header(5, 5, 0x81) + bytes.fromhex("0000C03F" "000000C0" "00000000" "0101" "00"))
    assert gyro_f.values.tolist() == [[1.5, -2.0, 0.0], [1.5, -2.0, 0.0]]


@pytest.mark.parametrize("data", [
    b"", pmd_header(2, 5, 1),  # no samples
    pmd_header(2, 5, 1) + bytes(5),  # not whole int16 samples
    pmd_header(5, 5, 1) + bytes(6),  # raw gyro: not handled
    pmd_header(1, 5, 0) + bytes(3),  # PPG: not ours
    pmd_header(2, 5, 0x83) + bytes(6),  # unknown compressed type
])
def test_unusable_data_frames_are_malformed(data):
    with pytest.raises(MalformedPacket):
        pmd.parse_data_frame(data)


# --- PMD control point ----------------------------------------------------------------------------------------

def test_start_commands_match_the_spec_examples():
    s = pmd.Setting
    verity = pmd.start_command(pmd.Measurement.ACC, {s.SAMPLE_RATE: 52, s.RESOLUTION: 16, s.RANGE: 8, s.CHANNELS: 3})
    assert verity == bytes.fromhex("0202 0001 3400 0101 1000 0201 0800 0401 03")
    h10 = pmd.start_command(pmd.Measurement.ACC, {s.SAMPLE_RATE: 200, s.RESOLUTION: 16, s.RANGE: 8})
    assert h10 == bytes.fromhex("0202 0001 C800 0101 1000 0201 0800")
    assert pmd.stop_command(pmd.Measurement.GYRO) == bytes.fromhex("0305")


def test_settings_answer_and_choice():
    # a Verity Sense PPG settings answer (polar-ble-sdk#280): 135 Hz, 22 bit, 4 channels
    ppg = pmd.parse_control_response(bytes.fromhex("F0 01 01 00 00 0001 8700 0101 1600 0401 04"))
    assert (ppg.op, ppg.measurement, ppg.error, ppg.more) == (1, 1, 0, False)
    assert ppg.settings == {pmd.Setting.SAMPLE_RATE: [135], pmd.Setting.RESOLUTION: [22], pmd.Setting.CHANNELS: [4]}
    acc = pmd.parse_control_response(bytes.fromhex(
        "F0 01 02 00 00 0005 1A00 3400 6800 D000 A001 0101 1000 0204 0200 0400 0800 1000 0401 03"))
    assert acc.settings[pmd.Setting.SAMPLE_RATE] == [26, 52, 104, 208, 416]
    chosen = pmd.choose_settings(acc.settings, pmd.Measurement.ACC, 50.0)
    assert chosen == {pmd.Setting.SAMPLE_RATE: 52, pmd.Setting.RESOLUTION: 16, pmd.Setting.RANGE: 8,
                      pmd.Setting.CHANNELS: 3}


def test_start_answer_carries_the_factor():
    answer = pmd.parse_control_response(bytes.fromhex("F0 02 05 00 00 0501 0000803D"))  # 0x3D800000 = 0.0625
    pmd.check_response(answer, pmd.OpCode.START, pmd.Measurement.GYRO)
    assert answer.settings[pmd.Setting.FACTOR] == [0.0625]


def test_refusals_become_clear_errors():
    with pytest.raises(DeviceRefused, match=r"refused start ACC: invalid sample rate \(error 8\)") as exc:
        pmd.check_response(pmd.parse_control_response(bytes.fromhex("F0 02 02 08 00")), pmd.OpCode.START,
                           pmd.Measurement.ACC)
    assert exc.value.exit_code == 3
    with pytest.raises(DeviceRefused, match="on the charger"):
        pmd.check_response(pmd.parse_control_response(bytes.fromhex("F0 02 02 0D")), pmd.OpCode.START,
                           pmd.Measurement.ACC)
    # "already in that state" on start: the stream runs, which is what we asked for
    pmd.check_response(pmd.parse_control_response(bytes.fromhex("F0 02 02 06 00")), pmd.OpCode.START,
                       pmd.Measurement.ACC)
    with pytest.raises(DeviceRefused, match="answered"):
        pmd.check_response(pmd.parse_control_response(bytes.fromhex("F0 02 05 00 00")), pmd.OpCode.START,
                           pmd.Measurement.ACC)


def test_feature_read():
    assert pmd.parse_features(bytes.fromhex("0F 24 00")) == {pmd.Measurement.ACC, pmd.Measurement.GYRO}
    assert pmd.parse_features(bytes.fromhex("0F 05")) == {pmd.Measurement.ECG, pmd.Measurement.ACC}  # H10
    with pytest.raises(DeviceRefused):
        pmd.parse_features(bytes.fromhex("00 24"))


# --- PMD sample times -----------------------------------------------------------------------------------------

def test_pmd_times_interpolate_between_frames_and_count_missing_ones():
    stats = SourceStats()
    decoder = pmd.PmdDecoder({pmd.Measurement.ACC: 50.0}, {}, stats)

    def acc_frame(t_ns: int, n: int) -> bytes:
        return pmd_header(2, t_ns, 1) + bytes(6 * n)

    assert decoder.decode(pmd.DATA_UUID, acc_frame(1_000_000_000, 3)) == []  # the first waits for a second
    first, second = decoder.decode(pmd.DATA_UUID, acc_frame(1_100_000_000, 5))
    assert np.allclose(first.t_s, [0.96, 0.98, 1.0])  # first frame: t_last - (n - 1 - i) / fs
    assert np.allclose(second.t_s, [1.02, 1.04, 1.06, 1.08, 1.1])  # between 1.0 and 1.1
    assert decoder.decode(pmd.DATA_UUID, acc_frame(1_300_000_000, 5)) == []  # a 5-sample frame is missing: held
    for k in range(1, 4):  # until more than REORDER_DEPTH (4) frames wait behind the hole
        assert decoder.decode(pmd.DATA_UUID, acc_frame(1_300_000_000 + k * 100_000_000, 5)) == []
    third, *rest = decoder.decode(pmd.DATA_UUID, acc_frame(1_700_000_000, 5))
    assert np.allclose(third.t_s, [1.22, 1.24, 1.26, 1.28, 1.3]) and stats.lost_packets == 1 and len(rest) == 4
    assert decoder.decode(pmd.DATA_UUID, acc_frame(1_700_000_000, 5)) == [] and stats.duplicates == 1
    with pytest.raises(MalformedPacket):
        decoder.decode(pmd.DATA_UUID, pmd_header(5, 2_000_000_000, 0x80) + bytes(6))  # gyro was not started
    assert stats.accepted_packets == 7 and stats.pending_packets == 0


# --- har_imu_v1 -----------------------------------------------------------------------------------------------

INFO = bytes.fromhex("01 3200 01 0010 1000")  # v1, 50 Hz, has gyro, 4096 LSB/g, 16 LSB/(deg/s)
PACKET = bytes.fromhex("01 02 0700 40420F00"  # v1, 2 samples, seq 7, t0 = 1 000 000 us
                       "0010 0000 00F0 1000 F0FF 0000"  # 1 g, 0, -1 g, 1 dps, -1 dps, 0
                       "0008 0100 0000 A000 0000 E0FF")  # 0.5 g, 1 count, 0, 10 dps, 0, -2 dps


def test_har_imu_info_and_packet():
    info = har_imu.parse_info(INFO)
    assert info == har_imu.Info(1, 50, True, 4096, 16)
    decoder = har_imu.HarImuDecoder(info, SourceStats())
    assert decoder.decode(har_imu.DATA_UUID, PACKET) == []  # the first packet waits for a second to confirm it
    (frame,) = decoder.flush()  # or for the end of the stream
    assert frame.seq == 7 and np.allclose(frame.t_s, [1.0, 1.02])
    assert np.allclose(frame.acc, [[G, 0, -G], [G / 2, G / 4096, 0]])
    assert np.allclose(frame.gyro, np.radians([[1, -1, 0], [10, 0, -2]]))
    assert har_imu.start_command(52) == bytes.fromhex("013400") and har_imu.STOP_COMMAND == b"\x02"


def packet(seq: int, t0_us: int, n: int = 1) -> bytes:
    return bytes([1, n]) + seq.to_bytes(2, "little") + t0_us.to_bytes(4, "little") + bytes(12 * n)


def test_har_imu_sequence_wraps_and_gaps_count_as_lost():
    stats = SourceStats()
    decoder = har_imu.HarImuDecoder(har_imu.parse_info(INFO), stats)
    frames = []
    for seq, t0 in [(65534, 0), (65535, 20_000), (0, 40_000), (2, 80_000)]:  # seq 1 never arrived
        frames += decoder.decode(har_imu.DATA_UUID, packet(seq, t0))
    frames += decoder.flush()
    assert [f.seq for f in frames] == [65534, 65535, 0, 2] and stats.lost_packets == 1
    assert decoder.decode(har_imu.DATA_UUID, packet(2, 80_000)) == []  # a duplicate is not 65535 lost packets
    assert stats.lost_packets == 1 and stats.duplicates == 1
    assert decoder.decode(har_imu.DATA_UUID, packet(1, 60_000)) == []  # seq 1 after all: late, no longer lost
    assert stats.lost_packets == 0 and stats.late_packets == 1


def test_har_imu_device_clock_wraps_every_2_to_the_32_us():
    decoder = har_imu.HarImuDecoder(har_imu.parse_info(INFO), SourceStats())
    assert decoder.decode(har_imu.DATA_UUID, packet(0, 2**32 - 10_000)) == []
    before, after = decoder.decode(har_imu.DATA_UUID, packet(1, 10_000))  # 20 ms later, past the wrap
    assert after.t_s[0] - before.t_s[0] == pytest.approx(0.02)


@pytest.mark.parametrize("data", [
    PACKET[:7], PACKET[:-1], PACKET + b"\x00",  # short, cut, trailing byte
    bytes([2]) + PACKET[1:],  # version 2
    bytes.fromhex("01 00 0700 40420F00"),  # zero samples
])
def test_har_imu_bad_packets_are_malformed(data):
    with pytest.raises(MalformedPacket):
        har_imu.parse_packet(data)


@pytest.mark.parametrize("data", [INFO[:-1], bytes([2]) + INFO[1:], bytes.fromhex("01 0000 01 0010 1000"),
                                  bytes.fromhex("01 3200 01 0010 0000")])
def test_har_imu_bad_info_is_refused(data):
    with pytest.raises(DeviceRefused):
        har_imu.parse_info(data)


def test_profile_detection():
    assert detect_profile(["0000180d-0000-1000-8000-00805f9b34fb", pmd.SERVICE_UUID.upper()]).name == "pmd"
    assert detect_profile([har_imu.SERVICE_UUID]).name == "har-imu"
    assert detect_profile([], "Polar Vantage V3 1A2B3C4D").name == "pmd"  # Polar advertises the HR service only
    assert detect_profile(["0000180d-0000-1000-8000-00805f9b34fb"], "Forerunner") is None


def test_stream_gap_from_the_device_clock_or_the_host():
    # the device clock kept running: the loss is its step minus one period, times stay as they are
    assert stream_gap(last_t=10.0, first_t=13.0, host_gap_s=0.5, period_s=0.02) == pytest.approx((2.98, 0.0))
    # it restarted (rebooted, or a u32 wrap while away): the host's gap, new samples continue after the old ones
    gap_s, offset_s = stream_gap(last_t=10.0, first_t=0.5, host_gap_s=2.0, period_s=0.02)
    assert gap_s == 2.0 and 0.5 + offset_s == pytest.approx(10.0 + 0.02 + 2.0)


# --- values a device sends, validated -------------------------------------------------------------------------

@pytest.mark.parametrize(("answer", "named"), [
    ("F0 02 05 00 00 0500", "carries 0 FACTOR values"),
    ("F0 02 05 00 00 0502 0000803D 0000803D", "carries 2 FACTOR values"),
    ("F0 02 05 00 00 0501 0000C07F", "FACTOR nan"),  # a float32 NaN
    ("F0 02 05 00 00 0501 00000000", "FACTOR 0.0"),
    ("F0 02 05 00 00 0501 000080BD", "FACTOR -0.0625"),
    ("F0 02 05 00 00 0501 F9021550", "FACTOR 10000000000.0"),  # 1e10
])
def test_bad_start_factors_are_refused_naming_the_value(answer, named):
    response = pmd.parse_control_response(bytes.fromhex(answer))
    with pytest.raises(DeviceRefused, match=re.escape(named)) as exc:
        pmd.start_factor(response, pmd.Measurement.GYRO)
    assert exc.value.exit_code == 3
    ok = pmd.parse_control_response(bytes.fromhex("F0 02 05 00 00 0501 0000803D"))
    assert pmd.start_factor(ok, pmd.Measurement.GYRO) == 0.0625


def test_only_supported_rates_are_chosen():
    offered = {pmd.Setting.SAMPLE_RATE: [0, 13, 52]}
    assert pmd.choose_settings(offered, pmd.Measurement.ACC, 50.0)[pmd.Setting.SAMPLE_RATE] == 52
    with pytest.raises(DeviceRefused, match=r"offered \[0\] Hz"):
        pmd.choose_settings({pmd.Setting.SAMPLE_RATE: [0]}, pmd.Measurement.ACC, 50.0)
    with pytest.raises(DeviceRefused, match=r"rate_hz 0 is not a supported rate"):
        har_imu.parse_info(bytes.fromhex("01 0000 01 0010 1000"))


def test_non_finite_and_out_of_range_samples_are_dropped_and_counted():
    stats = SourceStats()
    decoder = pmd.PmdDecoder({pmd.Measurement.ACC: 50.0, pmd.Measurement.GYRO: 50.0}, {}, stats,
                             {pmd.Measurement.ACC: pmd.full_scale_si(pmd.Measurement.ACC, 8),
                              pmd.Measurement.GYRO: pmd.full_scale_si(pmd.Measurement.GYRO, 2000)})
    # float32 gyro: (1.5, -2, 0), then (NaN, 0, 0) = 0x7FC00000, then (inf, 0, 0) = 0x7F800000 deg/s
    floats = bytes.fromhex("0000C03F000000C000000000" "0000C07F0000000000000000" "0000807F0000000000000000")
    gyro = pmd_header(5, 1_000_000_000, 0x81) + floats[:12] + bytes([32, 2]) + raw_deltas(floats)
    # raw 24-bit ACC in mG: 1000 mG fits the 8 g range; 20 000 mG (20 g > 1.5 x 8 g) does not
    acc = pmd_header(2, 1_000_000_000, 2) + (1000).to_bytes(3, "little") * 3 + (20000).to_bytes(3, "little") * 3
    frames = []
    for data in (gyro, acc):
        frames += decoder.decode(pmd.DATA_UUID, data)
    frames += decoder.flush()
    by_sensor = {("acc" if f.acc is not None else "gyro"): f for f in frames}
    assert np.allclose(by_sensor["gyro"].gyro, np.radians([[1.5, -2.0, 0.0]])) and by_sensor["gyro"].t_s[0] < 1.0
    assert np.allclose(by_sensor["acc"].acc, [[G, G, G]])
    assert stats.non_finite_samples == 2 and stats.out_of_range_samples == 1 and stats.accepted_packets == 2


def raw_deltas(floats: bytes) -> bytes:
    """32-bit deltas from sample 0 to 1 and 1 to 2 of three float32 bit patterns (x, y, z each), packed LSB first."""
    ints = np.frombuffer(floats, "<u4").astype(np.int64).reshape(3, 3)
    deltas = np.diff(ints, axis=0).ravel()
    return b"".join(int(d % 2**32).to_bytes(4, "little") for d in deltas)
