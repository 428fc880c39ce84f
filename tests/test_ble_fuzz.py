"""Fuzzing the BLE decoders. Arbitrary bytes into every parser: the only failure allowed is MalformedPacket (counted
and skipped by the source), or DeviceRefused for the one-off answers a session cannot go on without. Whole streams
(tests/ble_streams.py) with drops, bursts, duplicates, reorders, bit flips and clock steps into the decoders and
through a live session: nothing escapes, the counters add up, duplicates and reorders lose no sample, a single bad
packet costs at most that packet, and the decisions resume within one window. (Bigger counts: bench/fuzz_ble.py.)"""

import asyncio

import numpy as np
import pytest
from ble_streams import (DEVICE_EPOCH_NS, Fault, PacketSource, arrivals, clock_step, counters_add_up, decoder_for,
                         packets_of, uuid_for)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deploy.profiles import load_profile
from har_app.ble import har_imu, pmd
from har_app.ble.errors import DeviceRefused, MalformedPacket
from har_app.live.backends import open_lanes
from har_app.live.runtime import LaneRunner
from har_app.live.session import LiveSession
from har_app.sources.base import SourceStats
from training.run_dir import lanes_needed, open_run
from training.sources import load_dataset

FUZZ = settings(max_examples=150, deadline=None)
STREAMS = settings(max_examples=40, deadline=None)
SESSIONS = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FS = 50.0
STEPS_S = [-30.0, -2.0, 7.5, 600.0]  # a watch clock stepping back or forward
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
    frames = []
    for data in packets:
        try:
            frames += decoder.decode(har_imu.DATA_UUID, data)
        except MalformedPacket:
            continue
    times = np.concatenate([f.t_s for f in frames + decoder.flush()] or [np.zeros(0)])
    assert np.all(np.diff(times) > 0)  # decoded time only moves forward
    assert 0 <= stats.lost_packets <= 65535 * len(packets)


@FUZZ
@given(st.binary(max_size=20))
def test_har_imu_info(data):
    try:
        har_imu.parse_info(data)
    except DeviceRefused:
        pass


# --- whole streams --------------------------------------------------------------------------------------------

def smooth_samples(n: int, seed: int = 0) -> np.ndarray:
    """(n, 6) wrist-like SI samples: about 1 g of acceleration and up to 3 rad/s, smooth."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.normal(0.0, 0.05, (n, 6)), axis=0)
    return np.clip(x, -3, 3) + np.array([0.0, 0.0, 9.8, 0.0, 0.0, 0.0])


def fault_plans(n_packets: int, kinds=("drop", "burst", "duplicate", "swap", "flip", "step"), max_size: int = 6):
    index = st.integers(0, n_packets - 1)
    makers = {
        "drop": st.builds(lambda i: Fault("drop", i), index),
        "burst": st.builds(lambda i, k: Fault("burst", i, size=k), index, st.integers(2, 8)),
        "duplicate": st.builds(lambda i: Fault("duplicate", i), index),
        "swap": st.builds(lambda i: Fault("swap", i), index),
        "flip": st.builds(lambda i, b: Fault("flip", i, bit=b), index, st.integers(0, 8 * 240)),
        # after the first packets (the stream has an anchor) and early enough to confirm the new clock before the end
        "step": st.builds(lambda i, s: Fault("step", i, step_s=s), st.integers(4, n_packets - 10),
                          st.sampled_from(STEPS_S)),
    }
    return st.lists(st.one_of([makers[k] for k in kinds]), min_size=1, max_size=max_size)


def decode_all(decoder, notifications: list[bytes], uuid: str) -> list:
    """What BleSource does with each notification (count, decode, skip the malformed); counters checked after each."""
    stats, frames = decoder.stats, []
    for data in notifications:
        stats.packets += 1
        try:
            frames += decoder.decode(uuid, data)
        except MalformedPacket:
            stats.malformed_packets += 1
        assert counters_add_up(stats)
    frames += decoder.flush()
    assert counters_add_up(stats) and stats.pending_packets == 0
    assert len(frames) == stats.accepted_packets
    return frames


def sample_indices(frames, profile: str, sensor: str) -> np.ndarray:
    """Watch sample index of every sample received (sample k is at k / fs of the watch clock)."""
    epoch_s = DEVICE_EPOCH_NS * 1e-9 if profile == "pmd" else 0.0
    t = [f.t_s for f in frames if getattr(f, sensor) is not None]
    return np.round((np.concatenate(t) - epoch_s) * FS).astype(int) if t else np.zeros(0, int)


def sent_indices(sent, sensor: str) -> np.ndarray:
    stream = {"acc": ("acc", "imu"), "gyro": ("gyro", "imu")}[sensor]
    return np.array(sorted(k for p in sent if p.stream in stream for k in range(p.first, p.stop)), int)


SAMPLES = smooth_samples(600)


@STREAMS
@given(st.sampled_from(["har-imu", "pmd"]), st.sampled_from([1, 5, 10, 19]), st.data())
def test_fuzzed_streams_into_the_decoders(profile, per_packet, data):
    n_packets = len(SAMPLES) // per_packet * (1 if profile == "har-imu" else 2)
    faults = data.draw(fault_plans(n_packets))
    sent = packets_of(SAMPLES, FS, profile, per_packet, clock_step(faults))
    notifications, _ = arrivals(sent, faults)
    frames = decode_all(decoder_for(profile, FS), notifications, uuid_for(profile))
    for sensor in ("acc", "gyro"):
        times = np.concatenate([f.t_s for f in frames if getattr(f, sensor) is not None] or [np.zeros(0)])
        assert np.all(np.diff(times) > 0)  # every stream in order, whatever arrived


@STREAMS
@given(st.sampled_from(["har-imu", "pmd"]), st.sampled_from([1, 5, 19]), st.data())
def test_duplicates_and_reorders_lose_no_sample(profile, per_packet, data):
    n_packets = len(SAMPLES) // per_packet * (1 if profile == "har-imu" else 2)
    faults = data.draw(fault_plans(n_packets, ("duplicate", "swap")))
    sent = packets_of(SAMPLES, FS, profile, per_packet)
    notifications, _ = arrivals(sent, faults)
    decoder = decoder_for(profile, FS)
    frames = decode_all(decoder, notifications, uuid_for(profile))
    for sensor in ("acc", "gyro"):
        assert sample_indices(frames, profile, sensor).tolist() == sent_indices(sent, sensor).tolist()
    stats = decoder.stats
    assert stats.duplicates == len(notifications) - len(sent)  # each duplicate counted once, as a duplicate
    assert stats.lost_packets == stats.rejected_time == stats.late_packets == stats.malformed_packets == 0


@STREAMS
@given(st.sampled_from(["har-imu", "pmd"]), st.sampled_from([1, 5, 19]), st.data())
def test_one_bad_packet_costs_at_most_that_packet(profile, per_packet, data):
    n_packets = len(SAMPLES) // per_packet * (1 if profile == "har-imu" else 2)
    (fault,) = data.draw(fault_plans(n_packets, ("flip", "step"), max_size=1))
    sent = packets_of(SAMPLES, FS, profile, per_packet, clock_step([fault]))
    notifications, intact = arrivals(sent, [fault])
    decoder = decoder_for(profile, FS)
    frames = decode_all(decoder, notifications, uuid_for(profile))
    for sensor in ("acc", "gyro"):
        got = set(sample_indices(frames, profile, sensor).tolist())
        missing = set(sent_indices(sent, sensor).tolist()) - got
        # a flipped packet may be dropped; nothing else is. PMD has no sequence number: a corrupted timestamp that
        # lands on a later frame's place takes it, and the frame that belongs there is dropped (docs/ble-streams.md)
        assert len(missing) <= per_packet * (1 if profile == "har-imu" else 2)
        if fault.kind == "step":
            assert not missing
    if fault.kind == "step":
        assert decoder.stats.resyncs >= 1 or (fault.step_s > 0 and decoder.stats.lost_packets > 0)



@pytest.mark.parametrize(("profile", "fault"), [
    ("pmd", Fault("flip", 3, bit=38)),  # GYRO's 2nd frame: timestamp bit 30, 2^30 ns (1.07 s) off, before the 1st
    ("pmd", Fault("flip", 3, bit=47)),  # timestamp bit 39: 550 s off
    ("pmd", Fault("flip", 2, bit=36)),  # ACC's 2nd frame: 2^28 ns (13 samples) off
    ("pmd", Fault("flip", 0, bit=47)),  # the very first frame 550 s off
    ("har-imu", Fault("flip", 0, bit=17)),  # the first packet's seq + 2
    ("har-imu", Fault("flip", 1, bit=17)),  # the second packet's seq - 2
    ("har-imu", Fault("flip", 1, bit=53)),  # t0 2^21 us (2.1 s) ahead
    ("har-imu", Fault("flip", 0, bit=48)),  # the first t0 2^16 us (3.3 samples) ahead: within a hole of the 3rd
    ("har-imu", Fault("flip", 1, bit=63)),  # t0 half the u32 range away: must not drag the next ones' unwrapping
])
@pytest.mark.parametrize("per_packet", [1, 10])
def test_one_bad_packet_at_the_start_costs_that_packet_alone(profile, fault, per_packet):
    """Before the stream has an anchor, a bad packet must not take the good first one with it, nor become the
    anchor the others are placed against, nor take a later packet's place once the stream reaches its time: only
    its samples are missing, and every other one is on the watch's sample grid."""
    samples = SAMPLES[:200]
    sent = packets_of(samples, FS, profile, per_packet)
    notifications, intact = arrivals(sent, [fault])
    decoder = decoder_for(profile, FS)
    frames = decode_all(decoder, notifications, uuid_for(profile))
    epoch_s = DEVICE_EPOCH_NS * 1e-9 if profile == "pmd" else 0.0
    k = (np.concatenate([f.t_s for f in frames]) - epoch_s) * FS
    assert np.abs(k - np.round(k)).max() < 1e-3
    for sensor in ("acc", "gyro"):
        assert sample_indices(frames, profile, sensor).tolist() == sent_indices(intact, sensor).tolist()
    stats = decoder.stats
    assert stats.rejected_time + stats.malformed_packets == 1 and stats.lost_packets == 0


# --- whole streams through a live session ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def session_data(tiny_run):
    """20 s of the tiny run's test subject, as the watch streams it."""
    run = open_run(tiny_run)
    rec = load_dataset("seglearn", run.classes).only_subjects(run.config["split"]["test"]).recordings[0]
    return run, rec.samples[:1000].astype(np.float64)


def run_session(run, source) -> tuple[dict, list]:
    events = []
    runner = LaneRunner(open_lanes(run, "torch", lanes_needed(run.window, run.hop)), run.window, run.hop,
                        run.normalization.apply)
    session = LiveSession(run, source, runner, "torch", load_profile("host"), on_event=events.append)
    return asyncio.run(session.run_until_done()), events


@SESSIONS
@given(st.sampled_from(["har-imu", "pmd"]), st.data())
def test_fuzzed_streams_through_a_session(session_data, profile, data):
    run, samples = session_data
    per_packet = 10
    n_packets = len(samples) // per_packet * (1 if profile == "har-imu" else 2)
    faults = data.draw(fault_plans(n_packets, max_size=3))
    sent = packets_of(samples, FS, profile, per_packet, clock_step(faults))
    notifications, _ = arrivals(sent, faults)
    source = PacketSource(decoder_for(profile, FS), notifications, uuid_for(profile), per_packet / FS)
    summary, events = run_session(run, source)  # no exception escapes
    rejected = summary["packets_rejected"]
    assert summary["packets"] == len(notifications)
    assert summary["packets"] == summary["packets_accepted"] + sum(rejected.values()) + summary["packets_pending"]
    assert summary["samples_expected"] >= summary["samples_received"] - summary["late_samples"]
    if len(faults) == 1 and faults[0].kind in ("flip", "step"):
        times = [e["t_s"] for e in events if e["event"] == "decision"]
        window_s, hop_s = run.window / run.fs_hz, run.hop / run.fs_hz
        assert times and max(np.diff(times), default=0.0) <= window_s + hop_s + 1e-6  # resumed within one window
