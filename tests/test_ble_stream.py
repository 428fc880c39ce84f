"""BleSource end to end: the real bleak client, over a private D-Bus, through the fake BlueZ, to an emulated watch
(bumble GATT server) streaming a recording. Received samples are compared with the array the watch streamed."""

import asyncio

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from har_app.ble.units import DPS_TO_RADS, MG_TO_MS2, STANDARD_GRAVITY
from har_app.sources.ble import BleSource, ReconnectPolicy
from rig import Faults, collect, emulated_watch_on_dbus, system_bus  # noqa: F401  (system_bus: fixture)
from rig.emulated_watch import DEVICE_EPOCH_NS, GYRO_FACTOR, HAR_IMU_ACC_LSB_PER_G, HAR_IMU_GYRO_LSB_PER_DPS
from training.errors import HarError

FS = 50.0
FAST = ReconnectPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2)
# half a quantisation step of each stream, in SI units
PMD_TOLERANCE = {"acc": 0.5 * MG_TO_MS2, "gyro": 0.5 * GYRO_FACTOR * DPS_TO_RADS}
HAR_IMU_TOLERANCE = {"acc": 0.5 * STANDARD_GRAVITY / HAR_IMU_ACC_LSB_PER_G,
                     "gyro": 0.5 * DPS_TO_RADS / HAR_IMU_GYRO_LSB_PER_DPS}
SENSORS = {"acc": slice(0, 3), "gyro": slice(3, 6)}


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    """400 samples (8 s at 50 Hz) of a real watch recording from the bundled seglearn data."""
    from training.sources import load_dataset

    rec = load_dataset("seglearn", None).recordings[0]
    assert rec.fs_hz == FS
    return rec.samples[:400].astype(np.float64)


def synthetic(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0.0, 0.3, (n, 6)), axis=0)


def streams_of(rig) -> dict[str, str]:
    """Watch stream name per sensor."""
    return {"acc": "imu", "gyro": "imu"} if rig.watch.profile == "har-imu" else {"acc": "acc", "gyro": "gyro"}


def received(frames, rig, sensor: str) -> tuple[np.ndarray, np.ndarray]:
    """Device sample indices (from the times: sample k is at k / fs of the watch clock) and values of a sensor."""
    chosen = [f for f in frames if getattr(f, sensor) is not None]
    if not chosen:
        return np.zeros(0, int), np.zeros((0, 3))
    epoch_s = DEVICE_EPOCH_NS * 1e-9 if rig.watch.profile == "pmd" else 0.0
    k = (np.concatenate([f.t_s for f in chosen]) - epoch_s) * FS
    assert np.abs(k - np.round(k)).max() < 1e-3  # times land on the watch's sample grid
    return np.round(k).astype(int), np.concatenate([getattr(f, sensor) for f in chosen])


def everything_delivered(rig):
    """done(): every stream has ended and each sensor has received the last sample the watch sent."""
    streams = streams_of(rig)

    def done(frames) -> bool:
        return set(streams.values()) <= rig.watch.completed and all(
            len(index := received(frames, rig, s)[0]) and index[-1] == rig.watch.delivered.indices(w)[-1]
            for s, w in streams.items())
    return done


def assert_matches_watch(frames, rig, samples: np.ndarray, tolerance: dict[str, float], in_flight: int = 0) -> None:
    """Received exactly the samples the watch sent intact, in order, with their times and values (within
    quantisation); up to `in_flight` samples per sensor may be missing (lost with a link that broke under them)."""
    for sensor, stream in streams_of(rig).items():
        index, values = received(frames, rig, sensor)
        sent = rig.watch.delivered.indices(stream)
        assert np.all(np.diff(index) > 0) and np.isin(index, sent).all()
        assert len(sent) - in_flight <= len(index) <= len(sent)
        assert np.abs(values - samples[index, SENSORS[sensor]]).max() <= tolerance[sensor] + 1e-9


async def test_pmd_watch_streams_a_real_recording(system_bus, recording):
    async with emulated_watch_on_dbus(recording, FS, "pmd", speed=10) as rig:
        source = BleSource(rig.address, scan_timeout_s=3)
        frames = await collect(source, everything_delivered(rig))
    assert_matches_watch(frames, rig, recording, PMD_TOLERANCE)
    assert (source.profile, source.expected_rate_hz, source.name) == ("pmd", FS, rig.name)
    assert source.stats.lost_packets == source.stats.malformed_packets == source.stats.reconnects == 0
    assert source.stats.packets == sum(len(r) for r in rig.watch.delivered.ranges.values())
    assert not any(f.reset_needed for f in frames)
    assert rig.watch.commands[-2:] == [bytes([3, 2]), bytes([3, 5])]  # streams stopped when the consumer left


async def test_pmd_raw_frames_found_by_name(system_bus):
    samples = synthetic()
    async with emulated_watch_on_dbus(samples, FS, "pmd", speed=10, pmd_compressed=False) as rig:
        source = BleSource(rig.name, scan_timeout_s=3)
        frames = await collect(source, everything_delivered(rig))
    assert source.address == rig.address
    assert_matches_watch(frames, rig, samples, PMD_TOLERANCE)


async def test_har_imu_watch_streams_a_real_recording(system_bus, recording):
    async with emulated_watch_on_dbus(recording, FS, "har-imu", speed=10) as rig:
        source = BleSource(rig.address, scan_timeout_s=3)
        frames = await collect(source, everything_delivered(rig))
    assert_matches_watch(frames, rig, recording, HAR_IMU_TOLERANCE)
    assert source.profile == "har-imu" and len(frames[0].t_s) == 19  # (MTU 247 - 3 - 8) // 12 samples a packet
    assert [f.seq for f in frames] == list(range(len(frames)))
    assert rig.watch.commands == [bytes.fromhex("013200"), bytes.fromhex("02")]  # start at 50 Hz, stop


async def test_corrupted_short_and_skipped_har_imu_packets(system_bus):
    samples = synthetic()
    faults = Faults(corrupt_packets=frozenset({3}), short_packets=frozenset({5}), skipped_packets=frozenset({7, 8}))
    async with emulated_watch_on_dbus(samples, FS, "har-imu", speed=10, samples_per_packet=10, faults=faults) as rig:
        source = BleSource(rig.address, scan_timeout_s=3)
        frames = await collect(source, everything_delivered(rig))
    assert source.stats.malformed_packets == 2  # counted and skipped
    assert source.stats.lost_packets == 4  # seq 3, 5, 7 and 8 never decoded
    assert_matches_watch(frames, rig, samples, HAR_IMU_TOLERANCE)  # nothing else lost, nothing invented


async def test_corrupted_and_missing_pmd_frames(system_bus):
    samples = synthetic()
    faults = Faults(corrupt_packets=frozenset({4}), skipped_packets=frozenset({11}))
    async with emulated_watch_on_dbus(samples, FS, "pmd", speed=10, faults=faults) as rig:
        source = BleSource(rig.address, scan_timeout_s=3)
        frames = await collect(source, everything_delivered(rig))
    assert source.stats.malformed_packets == 1
    assert source.stats.lost_packets == 2  # one frame missing per hole in the device timestamps
    assert_matches_watch(frames, rig, samples, PMD_TOLERANCE)


def delivered_gap_s(rig, stream: str) -> float:
    index = rig.watch.delivered.indices(stream)
    holes = np.diff(index) - 1
    assert np.count_nonzero(holes) == 1
    return holes.max() / FS


async def test_watch_drops_the_connection_and_the_source_reconnects(system_bus):
    samples = synthetic(400)
    faults = Faults(drop_after_packets=8, away_s=0.3)
    async with emulated_watch_on_dbus(samples, FS, "har-imu", speed=10, samples_per_packet=10, faults=faults) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        frames = await collect(source, everything_delivered(rig))
    assert rig.watch.connections == 2 and source.stats.reconnects == 1
    assert source.stats.gaps_s == pytest.approx([delivered_gap_s(rig, "imu")], abs=1e-6)
    assert source.stats.gaps_s[0] >= 0.3 * 10 - 0.2  # away 0.3 s at 10x: about 3 s of stream time
    resets = [i for i, f in enumerate(frames) if f.reset_needed]
    assert resets == [8]  # the first frame after the gap, and only it
    assert_matches_watch(frames, rig, samples, HAR_IMU_TOLERANCE)


async def test_link_lost_mid_stream_pmd(system_bus):
    samples = synthetic(400)
    async with emulated_watch_on_dbus(samples, FS, "pmd", speed=10) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        done = everything_delivered(rig)

        def drop_once(frames) -> bool:
            if len(frames) == 6:
                asyncio.ensure_future(rig.bluez.drop(rig.address))  # BlueZ reports Connected=False
            return done(frames)

        frames = await collect(source, drop_once)
    assert source.stats.reconnects == 1 and len(source.stats.gaps_s) == 1 and source.stats.gaps_s[0] > 0
    assert sum(f.reset_needed for f in frames) == 1
    assert_matches_watch(frames, rig, samples, PMD_TOLERANCE, in_flight=10)  # a frame the watch sent as BlueZ dropped


async def test_failed_connects_are_retried(system_bus):
    samples = synthetic(100)
    async with emulated_watch_on_dbus(samples, FS, "har-imu", speed=10) as rig:
        rig.bluez.fail_connects = 2  # org.bluez.Error.Failed twice
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        frames = await collect(source, everything_delivered(rig))
    assert rig.bluez.connect_calls == 3 and source.stats.reconnects == 0
    assert_matches_watch(frames, rig, samples, HAR_IMU_TOLERANCE)


async def test_connect_failing_for_good_is_exit_3(system_bus):
    async with emulated_watch_on_dbus(synthetic(100), FS, "pmd") as rig:
        rig.bluez.fail_connects = 100
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=ReconnectPolicy(attempts=2, first_delay_s=0.01))
        with pytest.raises(HarError, match="could not connect; 2 reconnect attempts failed") as exc:
            await collect(source, lambda frames: True)
    assert exc.value.exit_code == 3 and rig.bluez.connect_calls == 3


async def test_device_that_never_appears_is_exit_3(system_bus):
    async with emulated_watch_on_dbus(synthetic(100), FS, "pmd") as rig:
        rig.bluez.hidden.add(rig.address)
        with pytest.raises(HarError, match=f"{rig.address}' not found within 0.5 s") as exc:
            await collect(BleSource(rig.address, scan_timeout_s=0.5), lambda frames: True)
    assert exc.value.exit_code == 3 and rig.bluez.connect_calls == 0


async def test_profile_the_watch_does_not_serve_is_exit_3(system_bus):
    async with emulated_watch_on_dbus(synthetic(100), FS, "pmd") as rig:
        with pytest.raises(HarError, match="has no har_imu_v1 service") as exc:
            await collect(BleSource(rig.address, "har-imu", scan_timeout_s=3), lambda frames: True)
    assert exc.value.exit_code == 3


async def test_pairing_before_streaming(system_bus):
    samples = synthetic(100)
    async with emulated_watch_on_dbus(samples, FS, "har-imu", speed=10) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, pair=True)  # Polar watches need a bond
        frames = await collect(source, everything_delivered(rig))
        bluez_device = rig.bluez.devices[rig.address]
        assert bluez_device.Paired and bluez_device.Trusted  # bleak set Trusted, then called Pair
    assert_matches_watch(frames, rig, samples, HAR_IMU_TOLERANCE)


async def test_pmd_rate_is_negotiated_from_what_the_watch_offers(system_bus):
    async with emulated_watch_on_dbus(synthetic(200), 52.0, "pmd", speed=10) as rig:  # Verity Sense rate
        source = BleSource(rig.address, rate_hz=50.0, scan_timeout_s=3)
        frames = await collect(source, lambda frames: len(frames) >= 4)
    assert source.expected_rate_hz == 52.0
    start_acc = bytes.fromhex("0202 0001 3400 0101 1000 0201 0800 0401 03")  # 52 Hz, 16 bit, 8 g, 3 axes
    assert rig.watch.commands[:2] == [bytes.fromhex("0102"), start_acc]
    acc_t = np.concatenate([f.t_s for f in frames if f.acc is not None])
    assert np.diff(acc_t) == pytest.approx(1 / 52.0, abs=1e-6)  # seconds since 2000: 1e-7 s resolution


# --- misbehaving watches, fuzzed (the bulk without the rig: tests/test_ble_fuzz.py, bench/fuzz_ble.py) ----------

def header_flip(profile: str, packet: int, draw_bit: int) -> Faults:
    """A bit flip the decoder must notice: har-imu seq (bits 16-31) or t0_us above 2^16 us (bits 48-63); PMD
    timestamp above 2^27 ns (bits 35-71), more than the 5 periods of jitter a frame may have."""
    bit = 16 + draw_bit % 16 if draw_bit % 2 else 48 + draw_bit % 16
    if profile == "pmd":
        bit = 35 + draw_bit % 37
    return Faults(flipped_bits=frozenset({(packet, bit)}))


WATCH_FAULTS = st.one_of(
    st.builds(lambda i: ("duplicate", Faults(duplicated_packets=frozenset({i}))), st.integers(2, 20)),
    st.builds(lambda i: ("swap", Faults(reordered_packets=frozenset({i}))), st.integers(2, 20)),
    st.builds(lambda i, b: ("flip", (i, b)), st.integers(2, 20), st.integers(0, 1000)),
    st.builds(lambda i, s: ("step", Faults(clock_step=(i, s))), st.integers(4, 14), st.sampled_from([-30.0, 600.0])),
)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(profile=st.sampled_from(["har-imu", "pmd"]), fault=WATCH_FAULTS)
@example(profile="pmd", fault=("step", Faults(clock_step=(9, -30.0))))  # a watch clock stepping back 30 s
@example(profile="har-imu", fault=("flip", (7, 101)))  # bit 53: t0 jumps 2^21 us ahead
@example(profile="pmd", fault=("flip", (3, 271)))  # a stream's 2nd frame 2^39 ns (550 s) off: its 1st one is kept
@example(profile="pmd", fault=("flip", (3, 3)))  # a 2nd frame 2^30 ns (1.07 s) off: the stream starts on the 1st
def test_a_misbehaving_watch_through_the_real_stack(system_bus, profile, fault):
    kind, faults = fault
    if kind == "flip":
        faults = header_flip(profile, *faults)
    samples = synthetic(300)

    async def stream():
        async with emulated_watch_on_dbus(samples, FS, profile, speed=10, samples_per_packet=10,
                                          faults=faults) as rig:
            source = BleSource(rig.address, scan_timeout_s=3)
            return rig, source, await collect(source, everything_delivered(rig), timeout_s=20)

    rig, source, frames = asyncio.run(stream())
    stats = source.stats
    assert stats.packets == stats.accepted_packets + sum(stats.rejected().values()) + stats.pending_packets
    assert_matches_watch(frames, rig, samples, PMD_TOLERANCE if profile == "pmd" else HAR_IMU_TOLERANCE)
    if kind in ("duplicate", "swap"):  # nothing lost, nothing counted as lost or malformed
        assert stats.lost_packets == stats.malformed_packets == stats.rejected_time == 0
        assert stats.duplicates == (kind == "duplicate")
    if kind == "flip":
        assert stats.rejected_time + stats.malformed_packets == 1 and stats.lost_packets == 0
    if kind == "step":
        assert stats.resyncs == 1 and sum(f.reset_needed for f in frames) == 1
