#!/usr/bin/env python3
"""har runner: classify a 6-axis IMU stream with the bundled int8 L2MU step model on LiteRT.

Needs only numpy and ai-edge-litert (or tflite-runtime). Reads `bundle.json` beside it (rate, window, hop,
normalisation, labels). Sources: a CSV recording in har's format (`timestamp_s, acc_x..gyro_z, label, subject`; SI
units) or stdin (one sample per line: acc_x acc_y acc_z gyro_x gyro_y gyro_z, comma or space separated, at the model
rate). Prints one line per decision (`--json`: one JSON object per line, then a summary), and with `--benchmark`
times the model: warm-up, then `--runs` decisions, median and p99 per step and per decision, as JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CSV_HEADER = ["timestamp_s", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "label", "subject"]


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"


class StepModel:
    """One lane: the step model on its own interpreter, run through its `step` signature. reset() runs the
    `zero_state` signature, which zeroes the neuron state (reset_all_variables() leaves resource variables as they
    are in LiteRT)."""

    def __init__(self, model: bytes, threads: int) -> None:
        Interpreter, _ = interpreter_class()
        it = Interpreter(model_content=model, num_threads=threads)
        self._step, self._zero = it.get_signature_runner("step"), it.get_signature_runner("zero_state")
        self.in_scale, self.in_zero = self._step.get_input_details()["x_t"]["quantization"]
        self.out_scale, self.out_zero = self._step.get_output_details()["spikes"]["quantization"]
        self._flag = np.ones((1, 1), self._zero.get_input_details()["flag"]["dtype"])

    def reset(self) -> None:
        self._zero(flag=self._flag)

    def step(self, z: np.ndarray) -> np.ndarray:
        q = np.clip(np.round(z / self.in_scale + self.in_zero), -128, 127).astype(np.int8)[None]  # q = round(z/s) + z0
        out = self._step(x_t=q)["spikes"][0].astype(np.float32)
        return (self.out_scale * (out - self.out_zero) > 0.5).astype(np.int64)  # spike: s (q - z0) > 0.5


class Lanes:
    """Window k starts at sample k * hop on lane k mod L, from the zero state; a decision when a window completes:
    class = argmax of its summed output spikes (ties: lowest index), confidence = max count / total count."""

    def __init__(self, cfg: dict, model: bytes, threads: int) -> None:
        self.window, self.hop = cfg["window"], cfg["hop"]
        self.mean, self.std = np.array(cfg["mean"], np.float32), np.array(cfg["std"], np.float32)
        self.models = [StepModel(model, threads) for _ in range(math.ceil(self.window / self.hop))]
        self.start: list[int | None] = [None] * len(self.models)
        self.counts = [np.zeros(len(cfg["classes"]), np.int64) for _ in self.models]
        self.index = 0
        self.step_ns: list[int] = []

    def push(self, x: np.ndarray) -> dict | None:
        i = self.index
        self.index += 1
        if i % self.hop == 0:
            lane = (i // self.hop) % len(self.models)
            self.models[lane].reset()
            self.start[lane], self.counts[lane][:] = i, 0
        z = ((x - self.mean) / self.std).astype(np.float32)  # z = (x - mean) / std
        decision = None
        for lane, model in enumerate(self.models):
            if self.start[lane] is None:
                continue
            t0 = time.perf_counter_ns()
            self.counts[lane] += model.step(z)
            self.step_ns.append(time.perf_counter_ns() - t0)
            if i - self.start[lane] + 1 == self.window:
                counts = self.counts[lane]
                best, total = int(np.argmax(counts)), int(counts.sum())
                decision = {"sample": i, "class_index": best, "confidence": counts[best] / total if total else 0.0,
                            "counts": counts.tolist()}
                self.start[lane] = None
        return decision


def resample(t: np.ndarray, x: np.ndarray, fs: float) -> np.ndarray:
    """Linear interpolation onto a uniform grid at fs from the recording's own time stamps."""
    grid = np.arange(t[0], t[-1] + 0.5 / fs, 1.0 / fs)
    return np.stack([np.interp(grid, t, x[:, c]) for c in range(x.shape[1])], axis=1).astype(np.float32)


def read_csv(path: Path, fs: float) -> tuple[np.ndarray, list[str], int]:
    """(samples (n, 6) at fs, label per sample, malformed rows skipped)."""
    times, rows, labels, malformed = [], [], [], 0
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.reader(f)
        if [h.strip() for h in next(reader, [])] != CSV_HEADER:
            sys.exit(f"error: {path}: expected header {','.join(CSV_HEADER)}")
        for row in reader:
            try:
                t, *values = (float(v) for v in row[:7])
                label = row[7].strip()
            except (ValueError, IndexError):
                malformed += 1
                continue
            if not all(math.isfinite(v) for v in (t, *values)):
                malformed += 1
                continue
            times.append(t), rows.append(values), labels.append(label)
    if len(rows) < 2:
        sys.exit(f"error: {path}: fewer than two valid rows")
    t, x = np.array(times), np.array(rows, np.float32)
    rate = (len(t) - 1) / (t[-1] - t[0]) if t[-1] > t[0] else fs
    if abs(rate - fs) > 0.02 * fs:
        print(f"resampling {path.name} from {rate:.3g} Hz to {fs:g} Hz", file=sys.stderr)
        x = resample(t, x, fs)
        labels = [labels[min(int(np.searchsorted(t, t[0] + k / fs)), len(labels) - 1)] for k in range(len(x))]
    return x, labels, malformed


def stdin_samples(counter: dict):
    for line in sys.stdin:
        parts = line.replace(",", " ").split()
        try:
            values = [float(v) for v in parts]
        except ValueError:
            values = []
        if len(values) != 6 or not all(math.isfinite(v) for v in values):
            counter["malformed"] += 1
            continue
        yield np.array(values, np.float32)


def percentiles_us(ns: list[int]) -> dict:
    a = np.array(ns, np.float64) / 1e3
    return {"median": float(np.median(a)), "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": len(a)}


def benchmark(cfg: dict, model: bytes, threads: int, runs: int, warmup: int, samples: np.ndarray | None) -> dict:
    """Time the streaming pipeline: per step (one invoke) and per decision (the `hop` samples, with every lane's
    steps and window resets, that lead to one decision)."""
    lanes = Lanes(cfg, model, threads)
    rng = np.random.default_rng(0)
    stream = samples if samples is not None and len(samples) else rng.normal(size=(4 * cfg["window"], 6))
    stream = stream.astype(np.float32)
    decisions_ns, k = [], 0
    while len(decisions_ns) < runs:
        t0 = time.perf_counter_ns()
        decision = None
        while decision is None:
            decision = lanes.push(stream[k % len(stream)])
            k += 1
        if k > cfg["window"] + warmup * cfg["hop"]:  # warm-up: the first window plus `warmup` decisions
            decisions_ns.append(time.perf_counter_ns() - t0)
        else:
            lanes.step_ns.clear()
    _, runtime = interpreter_class()
    return {"benchmark": {"runs": runs, "warmup_decisions": warmup, "threads": threads, "runtime": runtime,
                          "machine": platform.machine(), "python": platform.python_version(),
                          "per_step_us": percentiles_us(lanes.step_ns),
                          "per_decision_us": percentiles_us(decisions_ns)}}


def emit(decision: dict, cfg: dict, as_json: bool, label: str | None) -> None:
    decision = {**decision, "class": cfg["classes"][decision["class_index"]], "t_s": decision["sample"] / cfg["fs_hz"]}
    if label is not None:
        decision["label"] = label
    if as_json:
        print(json.dumps(decision), flush=True)
    else:
        truth = f"  (true {label})" if label is not None else ""
        print(f"t={decision['t_s']:8.2f}s  {decision['class']:>12}  confidence {decision['confidence']:.2f}{truth}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--csv", type=Path, help="classify this CSV recording (har format)")
    ap.add_argument("--stdin", action="store_true", help="classify samples read from stdin")
    ap.add_argument("--benchmark", action="store_true", help="time the model and print JSON")
    ap.add_argument("--runs", type=int, default=50, help="benchmark: timed decisions (>= 50)")
    ap.add_argument("--warmup", type=int, default=5, help="benchmark: untimed decisions first")
    ap.add_argument("--threads", type=int, default=1, help="LiteRT threads")
    ap.add_argument("--json", action="store_true", help="one JSON object per decision, then a summary")
    args = ap.parse_args()
    cfg = json.loads((HERE / "bundle.json").read_text())
    model = (HERE / cfg["model"]).read_bytes()
    if args.benchmark:
        if args.runs < 50:
            sys.exit("error: --runs must be at least 50")
        samples = read_csv(args.csv, cfg["fs_hz"])[0] if args.csv else None
        print(json.dumps(benchmark(cfg, model, args.threads, args.runs, args.warmup, samples)), flush=True)
        return
    if not args.csv and not args.stdin:
        sys.exit("error: give --csv FILE, --stdin or --benchmark")
    lanes = Lanes(cfg, model, args.threads)
    counter = {"malformed": 0, "decisions": 0}
    if args.csv:
        recording, labels, counter["malformed"] = read_csv(args.csv, cfg["fs_hz"])
        source = zip(recording, labels)
    else:
        source = ((sample, None) for sample in stdin_samples(counter))
    window_labels: list[str | None] = []
    try:
        for sample, label in source:
            window_labels = (window_labels + [label])[-cfg["window"]:]
            decision = lanes.push(sample)
            if decision is not None:
                counter["decisions"] += 1
                known = [v for v in window_labels if v is not None]
                emit(decision, cfg, args.json, max(set(known), key=known.count) if known else None)
    except KeyboardInterrupt:
        pass
    summary = {"samples": lanes.index, "decisions": counter["decisions"], "malformed": counter["malformed"],
               "per_step_us": percentiles_us(lanes.step_ns) if lanes.step_ns else None}
    print(json.dumps({"summary": summary}) if args.json else f"summary: {json.dumps(summary)}",
          file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
