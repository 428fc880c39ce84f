"""Fuzzing the BLE stream path at scale: decoders, whole live sessions, and decisions under loss at 3x real time.

    python bench/fuzz_ble.py                    # trains a tiny L2MU on the bundled data for the agreement part
    python bench/fuzz_ble.py --run RUN_DIR      # or uses this run
    python bench/fuzz_ble.py --json             # one JSON object on stdout

1. frames: real watch recordings (bundled seglearn) encoded as har_imu_v1 packets and Polar PMD frames
   (tests/ble_streams.py), faults drawn at random (drops, bursts, duplicates, swaps, bit flips, clock steps), fed to
   the decoders as BleSource does. Reports exceptions other than MalformedPacket that escaped, streams whose counters
   did not add up (packets = accepted + each rejected category + pending, after every packet), and the samples lost
   in streams that only had duplicates and reorders.
2. sessions: fuzzed streams through the whole live path (BleSource's decoding loop, merger, lanes, decisions), the
   run's data contract with the int8 step graph of a seeded untrained L2MU (tests/step_model_fixture.py) as its
   model (LiteRT: fast enough for hundreds of sessions). For streams with one bad packet (a bit
   flip or a clock step): the share whose decisions resumed within one window (no two decisions further apart than
   window + hop).
3. agreement: a real recording (the run's test subjects) streamed as har-imu packets at 3x real time through a
   session, loss-free, with 5 % random loss, and with 5 % duplicates + 5 % reorders; the share of the loss-free
   run's decisions matched (same time within half a hop, same class) by each faulty run. Target >= 95 %.
Targets (issue 9): 0 escaped exceptions over >= 100,000 frames and >= 500 streams; duplicates/reorders lose no sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from ble_streams import (FAULT_KINDS, Fault, PacketSource, arrivals, clock_step, counters_add_up,  # noqa: E402
                         decoder_for, packets_of, uuid_for)

from har_app.ble.errors import MalformedPacket  # noqa: E402

FS = 50.0
STEPS_S = (-30.0, -2.0, 7.5, 600.0)
PER_PACKET = (1, 5, 10, 19)


def count_escaped(out: dict, profile: str, exc: Exception) -> None:
    """An exception that escaped a decoder or a session: counted, the first five kept as examples."""
    out["escaped"] += 1
    if len(out["escaped_examples"]) < 5:
        out["escaped_examples"].append(f"{profile}: {type(exc).__name__}: {exc}")


def random_faults(rng: np.random.Generator, n_packets: int, kinds=FAULT_KINDS, count: int | None = None) -> list:
    faults = []
    for _ in range(count or int(rng.integers(1, 9))):
        kind = str(rng.choice(kinds))
        index = int(rng.integers(1, max(2, n_packets - 10)))
        faults.append(Fault(kind, index, bit=int(rng.integers(0, 8 * 240)), size=int(rng.integers(2, 9)),
                            step_s=float(rng.choice(STEPS_S))))
    return faults


def recording_slice(recordings: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    long_enough = [r for r in recordings if len(r) >= n]
    rec = long_enough[int(rng.integers(len(long_enough)))]
    start = int(rng.integers(0, len(rec) - n + 1))
    return rec[start:start + n].astype(np.float64)


def sent_indices(sent, streams: tuple[str, ...]) -> list[int]:
    return sorted(k for p in sent if p.stream in streams for k in range(p.first, p.stop))


def received_indices(frames, sensor: str, epoch_s: float) -> list[int]:
    t = [f.t_s for f in frames if getattr(f, sensor) is not None]
    return np.round((np.concatenate(t) - epoch_s) * FS).astype(int).tolist() if t else []


def fuzz_frames(recordings: list[np.ndarray], target: int, rng: np.random.Generator) -> dict:
    from ble_streams import DEVICE_EPOCH_NS

    out = {"frames": 0, "streams": 0, "escaped": 0, "escaped_examples": [], "inconsistent_streams": 0,
           "out_of_order_streams": 0, "dup_reorder_streams": 0, "dup_reorder_lost_samples": 0}
    while out["frames"] < target:
        profile = str(rng.choice(["har-imu", "pmd"]))
        per_packet = int(rng.choice(PER_PACKET))
        samples = recording_slice(recordings, rng, 600)
        n_packets = len(samples) // per_packet * (1 if profile == "har-imu" else 2)
        benign = rng.random() < 0.25
        faults = random_faults(rng, n_packets, ("duplicate", "swap") if benign else FAULT_KINDS)
        sent = packets_of(samples, FS, profile, per_packet, clock_step(faults))
        notifications, _ = arrivals(sent, faults)
        decoder, uuid = decoder_for(profile, FS), uuid_for(profile)
        stats, frames, consistent = decoder.stats, [], True
        try:
            for data in notifications:
                stats.packets += 1
                out["frames"] += 1
                try:
                    frames += decoder.decode(uuid, data)
                except MalformedPacket:
                    stats.malformed_packets += 1
                consistent &= counters_add_up(stats)
            frames += decoder.flush()
        except Exception as exc:  # noqa: BLE001 -- what this bench counts
            count_escaped(out, profile, exc)
            continue
        out["streams"] += 1
        consistent &= counters_add_up(stats) and stats.pending_packets == 0 and len(frames) == stats.accepted_packets
        out["inconsistent_streams"] += not consistent
        for sensor in ("acc", "gyro"):
            t = np.concatenate([f.t_s for f in frames if getattr(f, sensor) is not None] or [np.zeros(0)])
            if np.any(np.diff(t) <= 0):
                out["out_of_order_streams"] += 1
                break
        if benign:
            out["dup_reorder_streams"] += 1
            epoch_s = DEVICE_EPOCH_NS * 1e-9 if profile == "pmd" else 0.0
            for sensor, streams in (("acc", ("acc", "imu")), ("gyro", ("gyro", "imu"))):
                missing = set(sent_indices(sent, streams)) - set(received_indices(frames, sensor, epoch_s))
                out["dup_reorder_lost_samples"] += len(missing)
    return out


def lane_runner(run, backend: str):
    from har_app.live.backends import open_lanes
    from har_app.live.runtime import LaneRunner
    from training.run_dir import lanes_needed

    return LaneRunner(open_lanes(run, backend, lanes_needed(run.window, run.hop)), run.window, run.hop,
                      run.normalization.apply)


def session(run, backend: str, source) -> tuple[dict, list]:
    from deploy.profiles import load_profile
    from har_app.live.session import LiveSession

    events: list = []
    s = LiveSession(run, source, lane_runner(run, backend), backend, load_profile("host"), on_event=events.append)
    return asyncio.run(s.run_until_done()), events


def decision_times(events) -> list[float]:
    return [e["t_s"] for e in events if e["event"] == "decision"]


def fuzz_sessions(run, recordings: list[np.ndarray], n_streams: int, rng: np.random.Generator) -> dict:
    window_s, hop_s = run.window / run.fs_hz, run.hop / run.fs_hz
    out = {"streams": 0, "frames": 0, "escaped": 0, "escaped_examples": [], "inconsistent_streams": 0,
           "single_bad_packet_streams": 0, "resumed_within_one_window": 0}
    for _ in range(n_streams):
        profile = str(rng.choice(["har-imu", "pmd"]))
        per_packet = int(rng.choice((5, 10, 19)))
        samples = recording_slice(recordings, rng, 600)
        n_packets = len(samples) // per_packet * (1 if profile == "har-imu" else 2)
        single = rng.random() < 0.5
        faults = random_faults(rng, n_packets, ("flip", "step"), count=1) if single else random_faults(rng, n_packets)
        sent = packets_of(samples, FS, profile, per_packet, clock_step(faults))
        notifications, _ = arrivals(sent, faults)
        out["frames"] += len(notifications)
        source = PacketSource(decoder_for(profile, FS), notifications, uuid_for(profile), per_packet / FS)
        try:
            summary, events = session(run, "litert", source)
        except Exception as exc:  # noqa: BLE001 -- what this bench counts
            count_escaped(out, profile, exc)
            continue
        out["streams"] += 1
        rejected = sum(summary["packets_rejected"].values())
        out["inconsistent_streams"] += summary["packets"] != (summary["packets_accepted"] + rejected
                                                              + summary["packets_pending"])
        if single:
            times = decision_times(events)
            out["single_bad_packet_streams"] += 1
            longest_s = max(np.diff(times), default=0.0)  # between two decisions
            out["resumed_within_one_window"] += bool(times) and longest_s <= window_s + hop_s + 1e-6
    out["resumed_rate"] = out["resumed_within_one_window"] / max(1, out["single_bad_packet_streams"])
    return out


def matched(reference: list[dict], other: list[dict], hop_s: float) -> float:
    """Share of reference decisions with a decision of the same class within half a hop in `other`."""
    times = np.array([e["t_s"] for e in other])
    hits = 0
    for e in reference:
        if len(times):
            j = int(np.argmin(np.abs(times - e["t_s"])))
            hits += abs(times[j] - e["t_s"]) < hop_s / 2 and other[j]["class"] == e["class"]
    return hits / max(1, len(reference))


def agreement(run, seconds: float, speed: float, rng: np.random.Generator) -> dict:
    from har_app.sources.replay import bundled_test_recordings

    samples, _, fs = bundled_test_recordings(run)
    assert fs == FS
    samples = samples[: int(seconds * FS)].astype(np.float64)
    per_packet = 10
    sent = packets_of(samples, FS, "har-imu", per_packet)
    n = len(sent)
    plans = {
        "loss_free": [],
        "loss_5pct": [Fault("drop", i) for i in np.flatnonzero(rng.random(n) < 0.05)],
        "dup_reorder_5pct": [Fault("duplicate", i) for i in np.flatnonzero(rng.random(n) < 0.05)]
        + [Fault("swap", i) for i in np.flatnonzero(rng.random(n) < 0.05)],
    }
    results, reference = {}, None
    for name, faults in plans.items():
        faults = list({f.index: f for f in faults}.values())  # one fault per packet
        notifications, _ = arrivals(sent, faults)
        source = PacketSource(decoder_for("har-imu", FS), notifications, uuid_for("har-imu"), per_packet / FS,
                              speed=speed)
        t0 = time.perf_counter()
        summary, events = session(run, "torch", source)
        decisions = [e for e in events if e["event"] == "decision"]
        reference = decisions if reference is None else reference
        results[name] = {"faults": len(faults), "decisions": len(decisions), "wall_s": time.perf_counter() - t0,
                         "samples_received": summary["samples_received"], "lost_packets": summary["lost_packets"],
                         "packets_rejected": summary["packets_rejected"], "reordered": summary["reordered_packets"],
                         "agreement": matched(reference, decisions, run.hop / run.fs_hz)}
    results["dup_reorder_5pct"]["samples_lost"] = (results["loss_free"]["samples_received"]
                                                   - results["dup_reorder_5pct"]["samples_received"])
    return {"seconds": seconds, "speed": speed, "per_packet": per_packet, **results}


def tiny_run(folder: Path) -> Path:
    """A tiny L2MU (H=16, M=8) trained 4 epochs on 4 bundled subjects and 3 exercises, test subject 4 (as the
    tests' `tiny_run`)."""
    from rich.console import Console

    from training.pipeline import TrainRequest, run_training

    req = TrainRequest(subjects=["3", "4", "5", "6"], activities=["PEN", "ABD", "FEL"], test_subjects=["4"],
                       val_subjects=["3"], epochs=4, lr=1e-2, batch_size=32,
                       model={"hidden_size": 16, "memory_size": 8}, runs_dir=folder, name="fuzz-tiny")
    return Path(run_training(req, Console(stderr=True, quiet=True))["run_dir"])


def jsonable(value):
    """numpy scalars (counts, booleans, shares) as JSON numbers."""
    return value.item()


def with_seeded_step_model(run, folder: Path):
    """A copy of `run` whose model_int8.tflite is the int8 step graph of a seeded untrained tiny L2MU of its classes
    (tests/step_model_fixture.py): a real LiteRT model that fires, fast enough for hundreds of sessions."""
    import shutil

    from step_model_fixture import SMALL, build_int8_step_model, seeded_l2mu

    from training.run_dir import INT8_MODEL, open_run

    shutil.copytree(run.path, folder)
    calibration = np.random.default_rng(1).normal(size=(16, 40, 6)).astype(np.float32)
    model = build_int8_step_model(seeded_l2mu(len(run.classes), **SMALL), calibration)
    (folder / INT8_MODEL).write_bytes(model)
    return open_run(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="trained run for the agreement part (default: train a tiny one)")
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60.0, help="recording streamed for the agreement part")
    parser.add_argument("--speed", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    from training.run_dir import open_run
    from training.sources import load_dataset

    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    recordings = [r.samples for r in load_dataset("seglearn").recordings]
    report: dict = {}
    t0 = time.perf_counter()
    report["frames"] = fuzz_frames(recordings, args.frames, rng)
    report["frames"]["seconds"] = time.perf_counter() - t0
    print(f"frames: {json.dumps(report['frames'], default=jsonable)}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run = open_run(args.run if args.run else tiny_run(Path(tmp) / "runs"))
        report["sessions"] = fuzz_sessions(with_seeded_step_model(run, Path(tmp) / "lif"), recordings, args.streams, rng)
        report["sessions"]["seconds"] = time.perf_counter() - t0
        print(f"sessions: {json.dumps(report['sessions'], default=jsonable)}", file=sys.stderr)
        report["agreement"] = agreement(run, args.seconds, args.speed, rng)
    report["targets"] = {
        "escaped_exceptions": report["frames"]["escaped"] + report["sessions"]["escaped"],
        "counters_add_up": report["frames"]["inconsistent_streams"] + report["sessions"]["inconsistent_streams"] == 0,
        "agreement_at_5pct_loss": report["agreement"]["loss_5pct"]["agreement"],
        "agreement_with_dup_reorder": report["agreement"]["dup_reorder_5pct"]["agreement"],
        "dup_reorder_samples_lost": report["frames"]["dup_reorder_lost_samples"]
        + report["agreement"]["dup_reorder_5pct"]["samples_lost"],
    }
    if args.json:
        print(json.dumps(report, default=jsonable))
        return
    for part in ("frames", "sessions", "agreement", "targets"):
        print(f"{part}: {json.dumps(report[part], default=jsonable)}")


if __name__ == "__main__":
    main()
