"""Live inference on this host: one sample through the int8 step model on LiteRT, and the live loop's CPU use.

    python bench/live_latency.py RUN_DIR        # a run with model_int8.tflite (har train --compress int8)
    python bench/live_latency.py --fixture      # until then: the int8 step graph of a seeded untrained L2MU

Prints one JSON object. Targets: median step <= 50 us; live loop <= 10 % of one core with 100 Hz input.
The live loop is the whole `har live` path without the view: replay source (real bundled watch data resampled
to 100 Hz, released in real time), merge and resample to the model rate, LiteRT lanes, decisions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEP_TARGET_US = 50.0
CPU_TARGET = 0.10
INPUT_RATE_HZ = 100.0


def fixture_run(folder: Path) -> Path:
    """A run directory around the int8 step graph of a seeded untrained default-size L2MU
    (tests/step_model_fixture.py): 7 seglearn classes, 20 Hz, window 40, hop 20."""
    sys.path.insert(0, str(ROOT / "tests"))
    from step_model_fixture import build_int8_step_model, seeded_l2mu

    from training.normalization import Normalization
    from training.run_dir import CONFIG, INT8_MODEL, NORMALIZATION, write_json
    from training.sources import load_dataset

    data = load_dataset("seglearn")
    norm = Normalization.fit(np.concatenate([r.samples for r in data.recordings[:20]]))
    calibration = norm.apply(np.stack([r.samples[:40] for r in data.recordings[:16]]))
    model = seeded_l2mu(len(data.classes))
    (folder / INT8_MODEL).write_bytes(build_int8_step_model(model, calibration))
    norm.save(folder / NORMALIZATION)
    write_json(folder / CONFIG, {
        "model": model.cfg.to_dict(),
        "data": {"spec": "seglearn", "classes": data.classes, "fs_hz": 20.0, "window": 40, "hop": 20},
        "split": {"train": [], "val": [], "test": ["6", "7"]}, "train": {"seed": 0}})
    return folder


def time_steps(model: bytes, x: np.ndarray) -> dict:
    """One lane, one sample at a time: LiteRTStep.step (quantise, run the `step` signature, dequantise)."""
    from har_app.live.backends import LiteRTStep

    lane = LiteRTStep(model)
    for z in x[:200]:
        lane.step(z)
    step_ns = []
    for z in x:
        t0 = time.perf_counter_ns()
        lane.step(z)
        step_ns.append(time.perf_counter_ns() - t0)
    step_us = np.array(step_ns) / 1e3
    return {"median": float(np.median(step_us)), "p99": float(np.percentile(step_us, 99)), "n": len(step_us)}


def live_cpu(run_path: Path, seconds: float) -> dict:
    """CPU time of the live loop over `seconds` of 100 Hz input replayed in real time."""
    from deploy.profiles import load_profile
    from har_app.live.backends import open_lanes
    from har_app.live.runtime import LaneRunner
    from training.run_dir import lanes_needed
    from har_app.live.session import LiveSession
    from har_app.sources.replay import ReplaySource, bundled_test_recordings
    from training.run_dir import open_run
    from training.windowing import resample

    run = open_run(run_path)
    samples, labels, fs = bundled_test_recordings(run)
    n = int(seconds * fs)
    x = resample(samples[:n], fs, INPUT_RATE_HZ)
    up = int(INPUT_RATE_HZ / fs)
    source = ReplaySource(np.arange(len(x)) / INPUT_RATE_HZ, x, [lab for lab in labels[:n] for _ in range(up)], 1.0,
                          name="bundled at 100 Hz")
    runner = LaneRunner(open_lanes(run, "litert", lanes_needed(run.window, run.hop)), run.window, run.hop,
                        run.normalization.apply)
    session = LiveSession(run, source, runner, "litert", load_profile("host"), on_event=lambda e: None)
    summary = asyncio.run(session.run_until_done())
    return {"input_rate_hz": INPUT_RATE_HZ, "seconds": summary["wall_s"], "cpu_fraction": summary["host_cpu_fraction"],
            "decisions": summary["decisions"], "step_latency_us": summary["latency_us"],
            "host_cpu_us_per_decision": summary["host_cpu_us_per_decision"],
            "samples_received": summary["samples_received"]}


def main() -> None:
    from training.run_dir import INT8_MODEL

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", nargs="?", type=Path, help="run directory with model_int8.tflite")
    parser.add_argument("--fixture", action="store_true", help="use the int8 step graph of a seeded untrained L2MU")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the live-loop measurement")
    parser.add_argument("--steps", type=int, default=5000, help="samples for the step latency")
    args = parser.parse_args()
    if args.fixture == (args.run is not None):
        parser.error("give a RUN directory or --fixture")
    with tempfile.TemporaryDirectory() as tmp:
        run_path = fixture_run(Path(tmp)) if args.fixture else args.run
        model_path = run_path / INT8_MODEL
        if not model_path.is_file():
            parser.error(f"{model_path} not found: run `har train --compress int8` or use --fixture")
        from training.run_dir import open_run

        run = open_run(run_path)
        x = run.normalization.apply(np.random.default_rng(0).normal(0, 5, (args.steps, 6)).astype(np.float32))
        model_bytes = model_path.read_bytes()
        step = time_steps(model_bytes, x)
        live = live_cpu(run_path, args.seconds)
    print(json.dumps({
        "model": "tests/step_model_fixture.py (seeded untrained L2MU, int8)" if args.fixture else str(model_path),
        "model_bytes": len(model_bytes),
        "step_us": step, "step_target_us": STEP_TARGET_US, "step_ok": step["median"] <= STEP_TARGET_US,
        "live": live, "cpu_target_fraction": CPU_TARGET, "cpu_ok": live["cpu_fraction"] <= CPU_TARGET,
        "host": {"machine": platform.machine(), "processor": platform.processor() or None,
                 "python": platform.python_version()},
    }, indent=2))


if __name__ == "__main__":
    main()
