"""The live runtime on a BLE stream: the real bleak client through the fake BlueZ to the emulated watch (tests/rig),
streaming real watch data; stopped with a real SIGINT, as Ctrl-C would."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import numpy as np
import pytest
from rig import Faults, emulated_watch_on_dbus, system_bus  # noqa: F401  (system_bus: fixture)
from rig.emulated_watch import DEVICE_EPOCH_NS

from deploy.profiles import load_profile
from har_app.live.backends import open_lanes
from har_app.live.runtime import LaneRunner
from training.run_dir import lanes_needed
from har_app.live.session import LiveSession
from har_app.sources.ble import BleSource, ReconnectPolicy
from har_app.sources.replay import ReplaySource
from training.run_dir import open_run
from training.sources import load_dataset

FS = 50.0
FAST = ReconnectPolicy(attempts=3, first_delay_s=0.05, max_delay_s=0.2)


@pytest.fixture(scope="module")
def watch_data(tiny_run) -> np.ndarray:
    """12 s of the run's test subject: two exercises, 6 s each, as the watch will stream them."""
    run = open_run(tiny_run)
    recs = load_dataset("seglearn", run.classes).only_subjects(run.config["split"]["test"]).recordings[:2]
    return np.concatenate([r.samples[:300] for r in recs]).astype(np.float64)


async def live_session(run, source, done):
    """Run a session on `source` until `done(received_by_sensor)`, then stop it with SIGINT."""
    events = []
    stop_sent = []

    def stop_when_done(session, decision) -> None:
        if session.merger and done(session.merger.counts.samples) and not stop_sent:
            stop_sent.append(True)
            os.kill(os.getpid(), signal.SIGINT)

    runner = LaneRunner(open_lanes(run, "torch", lanes_needed(run.window, run.hop)), run.window, run.hop,
                        run.normalization.apply)
    session = LiveSession(run, source, runner, "torch", load_profile("host"), on_event=events.append,
                          on_update=stop_when_done)
    summary = await session.run_until_done()
    return summary, events


def decisions(events):
    return [e for e in events if e["event"] == "decision"]


def everything_delivered(rig):
    """done(): the watch has sent its whole recording and the session has received every sample it sent."""
    streams = {"acc": "acc", "gyro": "gyro"} if rig.watch.profile == "pmd" else {"acc": "imu", "gyro": "imu"}

    def done(counts) -> bool:
        return set(streams.values()) <= rig.watch.completed and all(
            counts.get(sensor, 0) == len(rig.watch.delivered.indices(stream)) for sensor, stream in streams.items())

    return done, streams


@pytest.mark.parametrize("profile", ["pmd", "har-imu"])
async def test_ble_stream_gives_the_replay_decisions(system_bus, tiny_run, watch_data, profile):
    run = open_run(tiny_run)
    n = len(watch_data)
    async with emulated_watch_on_dbus(watch_data, FS, profile, speed=10) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        done, streams = everything_delivered(rig)
        summary, events = await live_session(run, source, done)
        first = max(int(rig.watch.delivered.indices(s)[0]) for s in streams.values())  # streams start when asked
    assert summary["interrupted"] is True
    assert summary["lost_packets"] == summary["malformed_packets"] == 0 and summary["late_samples"] == 0
    assert summary["correct_fraction"] is None  # a watch carries no labels
    # stopped once all was in: the model-rate grid (from the first time both sensors had data) reached 0.5 s
    # (the resampling kernel) before the last sample
    ble = decisions(events)
    n_model = int(((n - 1 - first) / FS - 0.5) * run.fs_hz + 1e-6) + 1
    assert len(ble) == summary["decisions"] == (n_model - run.window) // run.hop + 1
    # the same samples replayed from memory give the same decisions at the same stream times
    replay = ReplaySource(np.arange(first, n) / FS, watch_data[first:].astype(np.float32), None, speed=0.0)
    ref = decisions((await live_session(run, replay, lambda counts: counts.get("acc", 0) == n - first))[1])
    t0 = DEVICE_EPOCH_NS * 1e-9 if profile == "pmd" else 0.0  # sample k is at t0 + k / fs on the watch clock
    np.testing.assert_allclose([e["t_s"] - t0 for e in ble], [e["t_s"] for e in ref[: len(ble)]], atol=1e-6)
    same = np.mean([a["class"] == b["class"] for a, b in zip(ble, ref)])
    assert same >= 0.9  # BLE quantises the samples (int16); a spike near threshold may flip


async def test_a_reconnect_resets_the_lanes(system_bus, tiny_run, watch_data):
    run = open_run(tiny_run)
    # drop after 3 s of data, away 0.3 s of real time. At 3x real time a slow reconnect on a loaded machine
    # (1 s) still leaves several seconds of stream, i.e. full windows, after the gap.
    faults = Faults(drop_after_packets=15, away_s=0.3)
    async with emulated_watch_on_dbus(watch_data, FS, "har-imu", speed=3, samples_per_packet=10,
                                      faults=faults) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        summary, events = await live_session(run, source, everything_delivered(rig)[0])
    assert summary["reconnects"] == 1 and summary["lane_resets"] == 2
    (reset,) = [e for e in events if e["event"] == "reset"]
    assert reset["reason"] == "reconnect"
    after = [e["t_s"] for e in decisions(events) if e["t_s"] > reset["t_s"]]
    window_s, hop_s = run.window / run.fs_hz, run.hop / run.fs_hz
    assert after[0] == pytest.approx(reset["t_s"] + window_s - 1 / run.fs_hz)  # a full window after the gap
    np.testing.assert_allclose(np.diff(after), hop_s)
    before = [e["t_s"] for e in decisions(events) if e["t_s"] < reset["t_s"]]
    assert all(t <= reset["t_s"] - source.stats.gaps_s[0] for t in before)  # no window spans the gap


async def test_a_watch_clock_stepping_back_resyncs_and_decisions_resume_within_a_window(system_bus, tiny_run,
                                                                                        watch_data):
    run = open_run(tiny_run)
    # from packet 40 (4 s in) the watch's clock reads 30 s earlier; a header bit flip on packet 20 on top
    faults = Faults(clock_step=(40, -30.0), flipped_bits=frozenset({(20, 60)}))
    async with emulated_watch_on_dbus(watch_data, FS, "har-imu", speed=3, samples_per_packet=10,
                                      faults=faults) as rig:
        source = BleSource(rig.address, scan_timeout_s=3, reconnect=FAST)
        done, _ = everything_delivered(rig)
        summary, events = await live_session(run, source, done)
    assert summary["resyncs"] == 1 and summary["packets_rejected"]["rejected_time"] == 1
    assert summary["packets"] == (summary["packets_accepted"] + sum(summary["packets_rejected"].values())
                                  + summary["packets_pending"])
    (reset,) = [e for e in events if e["event"] == "reset"]
    assert reset["reason"] == "resync"
    times = [e["t_s"] for e in decisions(events)]
    after = [t for t in times if t > reset["t_s"]]
    assert after[0] == pytest.approx(reset["t_s"] + (run.window - 1) / run.fs_hz)  # one window after the step
    assert max(np.diff(times)) <= (run.window + run.hop) / run.fs_hz + 1e-6  # never more than a window without one


@pytest.mark.parametrize(("faults", "named"), [
    (Faults(pmd_gyro_factors=()), "carries 0 FACTOR values"),
    (Faults(pmd_gyro_factors=(float("nan"),)), "FACTOR nan"),
    (Faults(pmd_gyro_factors=(-0.0625,)), "FACTOR -0.0625"),
    (Faults(pmd_rates=(0,)), "offered [0] Hz"),
])
async def test_a_bad_pmd_setup_is_exit_3_with_one_line(system_bus, tiny_run, faults, named):
    async with emulated_watch_on_dbus(np.zeros((100, 6)), FS, "pmd", faults=faults) as rig:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "har_app", "live", "--ble", rig.address, "--run", str(tiny_run),
            "--backend", "torch", env=rig.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    lines = [line for line in stderr.decode().splitlines() if line.startswith("error:")]
    assert proc.returncode == 3 and len(lines) == 1 and named in lines[0], stderr.decode()
    assert "Traceback" not in stderr.decode()
