#!/usr/bin/env python3
"""har runner: classify a 6-axis IMU stream with the bundled int8 L2MU step model on LiteRT.

Needs only numpy and ai-edge-litert (or tflite-runtime), not `har`. Everything it does is set by the deployment
contract `har-contract.json` beside it (channels, rate, resampler, normalisation, window, hop, lanes, quantisation,
spike, decision and reset rules, classes), read and checked by `har_contract.py`; recordings are resampled to the model
rate by `har_resampler.py`, the resampler `har live` uses, and a gap longer than its max_gap_s starts a new segment.
Sources: a CSV recording in har's format (`timestamp_s, acc_x..gyro_z, label, subject`; SI units) or stdin (one sample
per line: acc_x acc_y acc_z gyro_x gyro_y gyro_z, comma or space separated, at the model rate). Prints one line per
decision (`--json`: one JSON object per line, then a summary), and with `--benchmark` times the model: warm-up, then
`--runs` decisions, median and p99 per step and per decision, as JSON.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import platform
import sys
import time
from collections import Counter, deque
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_FILE = "model_int8.tflite"
CSV_HEADER = ["timestamp_s", "acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z", "label", "subject"]


def bundled_module(name: str):
    """A module shipped in this folder, loaded by path (works under `python -I`, which leaves the folder off
    sys.path)."""
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


har_contract = bundled_module("har_contract")
har_resampler = bundled_module("har_resampler")
har_native_log = bundled_module("har_native_log")


def interpreter_module():
    """(the interpreter module, its package name): ai-edge-litert, else tflite-runtime."""
    try:
        from ai_edge_litert import interpreter

        return interpreter, "ai-edge-litert"
    except ImportError:
        from tflite_runtime import interpreter

        return interpreter, "tflite-runtime"


def load_contract():
    try:
        contract = har_contract.load_contract(HERE / har_contract.MANIFEST)
    except har_contract.ContractError as exc:
        sys.exit(f"error: {exc}")
    return contract


class StepModel:
    """One lane: the step model on its own interpreter, run through its `step` signature. reset() runs the
    `zero_state` signature, which zeroes the neuron state (reset_all_variables() leaves resource variables as they
    are in LiteRT)."""

    def __init__(self, model: bytes, threads: int) -> None:
        # XNNPACK (the default delegate) refuses a graph with a requantisation scale it cannot represent, which a
        # population silent during calibration produces; the builtin kernels then run it (as har's own LiteRT check)
        try:
            self._open(model, threads, delegate=True)
        except RuntimeError as exc:
            if "XNNPACK" not in str(exc):
                raise
            self._open(model, threads, delegate=False)

    def _open(self, model: bytes, threads: int, delegate: bool) -> None:
        interpreter, _ = interpreter_module()
        resolver = interpreter.OpResolverType.AUTO if delegate else \
            interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = interpreter.Interpreter(model_content=model, num_threads=threads, experimental_op_resolver_type=resolver)
        self._step, self._zero = it.get_signature_runner("step"), it.get_signature_runner("zero_state")
        self.quantization = (self._step.get_input_details()["x_t"]["quantization"],
                             self._step.get_output_details()["spikes"]["quantization"])
        self._flag = np.ones((1, 1), self._zero.get_input_details()["flag"]["dtype"])
        x_t = self._step.get_input_details()["x_t"]
        with har_native_log.native_noise_filtered():  # the first invoke creates the XNNPACK delegate, which logs
            self._step(x_t=np.zeros(x_t["shape"], x_t["dtype"]))
            self.reset()

    def reset(self) -> None:
        self._zero(flag=self._flag)

    def step(self, q: np.ndarray) -> np.ndarray:
        """One quantised sample (6,) in, the raw output (C,) out."""
        return self._step(x_t=q[None])["spikes"][0]


def check_model(contract, model: StepModel) -> None:
    """The manifest's quantisation must be the model's own (a manifest from another run would silently misread it)."""
    for name, (scale, zero) in zip(("input_quantization", "output_quantization"), model.quantization):
        q = getattr(contract, name)
        if not (math.isclose(q.scale, scale, rel_tol=1e-6) and q.zero_point == zero):
            sys.exit(f"error: {har_contract.MANIFEST}: field {name!r} ({q.scale:g}, {q.zero_point}) does not match "
                     f"{MODEL_FILE} ({scale:g}, {zero})")


class RuleRunner:
    """What both reset rules share: the lanes' step models (checked against the manifest), the timed step, the
    decision record. `restart()` starts a segment (the recording's start or a gap), `push()` feeds one sample."""

    def __init__(self, contract, model: bytes, threads: int) -> None:
        self.contract = contract
        self.models = [StepModel(model, threads) for _ in range(contract.lanes)]
        check_model(contract, self.models[0])
        self.samples = 0  # samples of every segment
        self.step_ns: list[int] = []

    def step(self, model: StepModel, q: np.ndarray) -> np.ndarray:
        """One timed step; the output spikes (C,) as counts."""
        t0 = time.perf_counter_ns()
        spikes = self.contract.spikes(model.step(q)).astype(np.int64)
        self.step_ns.append(time.perf_counter_ns() - t0)
        return spikes

    def decision(self, i: int, counts: np.ndarray, labels: Counter) -> dict:
        """The contract's decision rule over summed output spikes; the label most of the summed samples carry."""
        best, confidence = har_contract.decide(counts)
        known = Counter({k: v for k, v in labels.items() if k is not None})
        return {"sample": i, "class_index": best, "confidence": confidence, "counts": counts.tolist(),
                "label": known.most_common(1)[0][0] if known else None}


class WindowLanes(RuleRunner):
    """zero-state-per-window: window k starts at sample k * hop of the segment on lane k mod L, from the zero state;
    when a window completes, the decision over its summed output spikes."""

    def __init__(self, contract, model: bytes, threads: int) -> None:
        super().__init__(contract, model, threads)
        self.start: list[int | None] = [None] * contract.lanes
        self.counts = [np.zeros(len(contract.classes), np.int64) for _ in self.models]
        self.labels = [Counter() for _ in self.models]
        self.index = 0  # samples of the current segment

    def restart(self) -> None:
        """A new segment: every lane idle; the next sample opens window 0."""
        self.index = 0
        self.start = [None] * len(self.models)

    def push(self, x: np.ndarray, label: str | None = None) -> dict | None:
        c, i = self.contract, self.index
        self.index += 1
        self.samples += 1
        if i % c.hop == 0:
            lane = (i // c.hop) % len(self.models)
            self.models[lane].reset()
            self.start[lane], self.labels[lane] = i, Counter()
            self.counts[lane][:] = 0
        q = c.quantize(x)
        decision = None
        for lane, model in enumerate(self.models):
            if self.start[lane] is None:
                continue
            self.counts[lane] += self.step(model, q)
            self.labels[lane][label] += 1
            if i - self.start[lane] + 1 == c.window:
                decision = self.decision(i, self.counts[lane], self.labels[lane])
                self.start[lane] = None
        return decision


class StreamLane(RuleRunner):
    """zero-state-per-stream: one lane, zeroed only at a segment start, one step per sample; a ring holds the output
    spikes of the last `window` steps, and every hop samples from the first full window on the decision is over
    their sum, n_c[t] = sum_{k=t-window+1..t} s_o,c[k]."""

    def __init__(self, contract, model: bytes, threads: int) -> None:
        super().__init__(contract, model, threads)
        self.ring: deque[np.ndarray] = deque(maxlen=contract.window)
        self.labels: deque[str | None] = deque(maxlen=contract.window)
        self.index = 0  # samples of the current segment

    def restart(self) -> None:
        """A new segment: the lane back to the zero state, the ring empty."""
        self.index = 0
        self.models[0].reset()
        self.ring.clear()
        self.labels.clear()

    def push(self, x: np.ndarray, label: str | None = None) -> dict | None:
        c = self.contract
        self.ring.append(self.step(self.models[0], c.quantize(x)))
        self.labels.append(label)
        self.index += 1
        self.samples += 1
        if self.index < c.window or self.index % c.hop:
            return None
        return self.decision(self.index - 1, np.sum(self.ring, axis=0), Counter(self.labels))


RULES = {har_contract.RESET_RULE: WindowLanes, har_contract.STREAM_RESET_RULE: StreamLane}


def rule_runner(contract, model: bytes, threads: int) -> RuleRunner:
    """The runner of the manifest's reset rule (load_contract accepts no other)."""
    return RULES[contract.reset_rule](contract, model, threads)


def read_csv(path: Path, contract) -> tuple[list, int]:
    """The recording resampled to the model rate as `har live` resamples it: a list of segments (between gaps) of
    (time s, sample (6,), label), and the malformed rows skipped."""
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
            if len(row) != len(CSV_HEADER) or not label or not all(math.isfinite(v) for v in (t, *values)):
                malformed += 1
                continue
            times.append(t), rows.append(values), labels.append(label)
    if len(rows) < 2:
        sys.exit(f"error: {path}: fewer than two valid rows")
    r = contract.resampler
    bundled = (har_resampler.KERNEL_PERIODS, har_resampler.KAISER_BETA, har_resampler.HOLE_PERIODS)
    if (r.half_width_periods, r.kaiser_beta, r.hole_periods) != bundled:
        sys.exit(f"error: {har_contract.MANIFEST}: field 'resampler' does not match the bundled har_resampler.py")
    x = np.array(rows, np.float32)
    segments = har_resampler.resample_recording(np.array(times), x, contract.model_rate_hz, r.max_gap_s)
    return [[(t, v.astype(np.float32), labels[k]) for t, v, k in zip(s.t, s.x, s.source_index)]
            for s in segments], malformed


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


def benchmark(contract, model: bytes, threads: int, runs: int, warmup: int, samples: list | None) -> dict:
    """Time the streaming pipeline: per step (one invoke) and per decision (the `hop` samples, with every lane's
    steps and resets under the manifest's reset rule, that lead to one decision)."""
    runner = rule_runner(contract, model, threads)
    stream = (np.array([x for segment in samples for _, x, _ in segment], np.float32) if samples else
              np.random.default_rng(0).normal(size=(4 * contract.window, len(contract.channels))).astype(np.float32))
    decisions_ns, k = [], 0
    while len(decisions_ns) < runs:
        t0 = time.perf_counter_ns()
        decision = None
        while decision is None:
            decision = runner.push(stream[k % len(stream)])
            k += 1
        if k > contract.window + warmup * contract.hop:  # warm-up: the first window plus `warmup` decisions
            decisions_ns.append(time.perf_counter_ns() - t0)
        else:
            runner.step_ns.clear()
    _, runtime = interpreter_module()
    return {"benchmark": {"runs": runs, "warmup_decisions": warmup, "threads": threads, "runtime": runtime,
                          "machine": platform.machine(), "python": platform.python_version(),
                          "per_step_us": percentiles_us(runner.step_ns),
                          "per_decision_us": percentiles_us(decisions_ns)}}


def emit(decision: dict, contract, t_s: float, as_json: bool) -> None:
    decision = {**decision, "class": contract.classes[decision["class_index"]], "t_s": t_s}
    if decision["label"] is None:
        del decision["label"]
    if as_json:
        print(json.dumps(decision), flush=True)
    else:
        truth = f"  (true {decision['label']})" if "label" in decision else ""
        print(f"t={t_s:8.2f}s  {decision['class']:>12}  confidence {decision['confidence']:.2f}{truth}", flush=True)


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
    contract = load_contract()
    model = (HERE / MODEL_FILE).read_bytes()
    if args.benchmark:
        if args.runs < 50:
            sys.exit("error: --runs must be at least 50")
        samples = read_csv(args.csv, contract)[0] if args.csv else None
        print(json.dumps(benchmark(contract, model, args.threads, args.runs, args.warmup, samples)), flush=True)
        return
    if not args.csv and not args.stdin:
        sys.exit("error: give --csv FILE, --stdin or --benchmark")
    runner = rule_runner(contract, model, args.threads)
    counter = {"malformed": 0, "decisions": 0, "segments": 0}
    if args.csv:
        segments, counter["malformed"] = read_csv(args.csv, contract)
    else:
        segments = [((k / contract.model_rate_hz, x, None) for k, x in enumerate(stdin_samples(counter)))]
    try:
        for segment in segments:
            runner.restart()
            counter["segments"] += 1
            for t_s, sample, label in segment:
                decision = runner.push(sample, label)
                if decision is not None:
                    counter["decisions"] += 1
                    emit(decision, contract, float(t_s), args.json)
    except KeyboardInterrupt:
        pass
    summary = {"samples": runner.samples, "decisions": counter["decisions"], "segments": counter["segments"],
               "malformed": counter["malformed"],
               "per_step_us": percentiles_us(runner.step_ns) if runner.step_ns else None}
    print(json.dumps({"summary": summary}) if args.json else f"summary: {json.dumps(summary)}",
          file=sys.stdout if args.json else sys.stderr, flush=True)


if __name__ == "__main__":
    main()
