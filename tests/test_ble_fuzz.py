"""Arbitrary bytes into every BLE parser: the only failure allowed is MalformedPacket (counted and skipped by the
source), or DeviceRefused for the one-off answers a session cannot go on without."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from har_app.ble import har_imu, pmd
from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.sources.base import SourceStats

FUZZ = settings(max_examples=300, deadline=None)
# PMD data frames with a plausible header, so the fuzzing reaches the sample decoders
pmd_frames = st.builds(lambda m, t, f, payload: bytes([m]) + t.to_bytes(8, "little") + bytes([f]) + payload,
                       st.sampled_from([2, 5]), st.integers(0, 2**64 - 1),
                       st.sampled_from([0x00, 0x01, 0x02, 0x80, 0x81]), st.binary(max_size=250))
# har-imu packets with a valid version, so the fuzzing reaches the length, seq and time checks
har_imu_packets = st.builds(lambda n, seq, t0, payload: bytes([1, n]) + seq.to_bytes(2, "little")
                            + t0.to_bytes(4, "little") + payload,
                            st.integers(0, 20), st.integers(0, 65535), st.integers(0, 2**32 - 1),
                            st.binary(max_size=240))


def only_malformed(parse, data) -> None:
    try:
        parse(data)
    except MalformedPacket:
        pass


@FUZZ
@given(st.binary(max_size=300), st.integers(1, 4), st.sampled_from([8, 16, 24, 32]))
def test_delta_frames(data, channels, resolution_bits):
    try:
        samples = pmd.parse_delta_frames(data, channels, resolution_bits)
    except MalformedPacket:
        return
    assert samples.ndim == 2 and samples.shape[1] == channels and len(samples) >= 1


@FUZZ
@given(st.one_of(st.binary(max_size=260), pmd_frames))
def test_pmd_data_frames(data):
    only_malformed(pmd.parse_data_frame, data)


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=260), pmd_frames), max_size=8))
def test_pmd_decoder_stream(packets):
    stats = SourceStats()
    decoder = pmd.PmdDecoder({pmd.Measurement.ACC: 52.0, pmd.Measurement.GYRO: 52.0},
                             {pmd.Measurement.GYRO: 0.0625}, stats)
    for data in packets:
        try:
            for frame in decoder.decode(pmd.DATA_UUID, data):
                values = frame.acc if frame.acc is not None else frame.gyro
                assert values.shape == (len(frame.t_s), 3)
        except MalformedPacket:
            pass


@FUZZ
@given(st.binary(max_size=80))
def test_pmd_control_responses(data):
    only_malformed(pmd.parse_control_response, data)


@FUZZ
@given(st.binary(max_size=80))
def test_pmd_feature_reads(data):
    try:
        pmd.parse_features(data)
    except DeviceRefused:
        pass


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=250), har_imu_packets), max_size=8))
def test_har_imu_decoder_stream(packets):
    stats = SourceStats()
    decoder = har_imu.HarImuDecoder(har_imu.Info(1, 50, True, 4096, 16), stats)
    last_t = -np.inf
    for data in packets:
        try:
            frame = decoder.decode(har_imu.DATA_UUID, data)[0]
        except MalformedPacket:
            continue
        assert frame.t_s[0] > last_t  # decoded time only moves forward
        last_t = frame.t_s[-1]
    assert 0 <= stats.lost_packets <= 65535 * len(packets)


@FUZZ
@given(st.binary(max_size=20))
def test_har_imu_info(data):
    try:
        har_imu.parse_info(data)
    except DeviceRefused:
        pass
