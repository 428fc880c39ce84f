"""L2MU against what a HAR user would otherwise ship, on the same data, folds, window and normalisation, in one run.

    python bench/compare.py [--quick] [--json] [--data SPEC] [--out DIR]

Contenders per subject-grouped fold: ours (the L2MU trained by `har train --compress int8` on the fold's split:
float in torch, the int8 step on LiteRT and on tflite_micro) and the peers in bench/peers/ (an int8 LSTM and an
int8 1D-CNN on LiteRT, a random forest on window statistics, the paper-style whole-window float L2MU on ONNX
Runtime). Accuracy and macro-F1 on every test window; host latency per decision timed in one interleaved pass
(one thread each); device latency and energy estimated from op counts with the stm32l4r5 and rpi4 profiles.

Writes BENCHMARKS.md, BENCHMARKS.json and bench/accuracy_vs_energy.png at the repository root (full run), or
into runs/bench-quick/ (--quick) or DIR (--out). Model files of every fold are kept under runs/bench/ (or DIR).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/compare.py` from a fresh clone

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from bench import ours  # noqa: E402
from bench.contender import Contender, accuracy, time_decisions  # noqa: E402
from bench.streams import stream_records, summarise_streams  # noqa: E402
from bench.protocol import (  # noqa: E402
    AUGMENT_DEG, FS_HZ, FULL, HOP, QUICK, SEED, WINDOW, Data, Fold, Settings, folds, load_data)
from bench.summary import OURS, device_estimates, ratios, summarise_model  # noqa: E402
from training.errors import ExitCode, HarError  # noqa: E402
from training.sources import DEFAULT_DATA  # noqa: E402

PEERS = ("lstm", "cnn", "forest", "onnx_l2mu")  # modules in bench/peers/
ENGINE = "l2mu_native_one_lane"  # the integer engine on one lane (bench/ours.py), compared with the peers too


@dataclass
class Outputs:
    markdown: Path
    json: Path
    png: Path
    artifacts: Path


def outputs(out: Path | None, settings: Settings, stamp: str) -> Outputs:
    if out is None and settings is FULL:
        return Outputs(ROOT / "BENCHMARKS.md", ROOT / "BENCHMARKS.json", ROOT / "bench" / "accuracy_vs_energy.png",
                       ROOT / "runs" / "bench" / f"{stamp}-full")
    folder = out if out is not None else ROOT / "runs" / "bench-quick"
    return Outputs(folder / "BENCHMARKS.md", folder / "BENCHMARKS.json", folder / "accuracy_vs_energy.png",
                   folder / f"{stamp}-{settings.mode}")


def host(load_at_start: list[float]) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), None) if Path("/proc/cpuinfo").exists() else None
    return {"machine": platform.machine(), "cpu": cpu or platform.processor() or None, "cores": os.cpu_count(),
            "python": platform.python_version(), "load_average_at_start": load_at_start,
            "load_average_at_end": list(os.getloadavg())}


def cpu_seconds() -> float:
    """CPU time of this process and its children (the TFLM arena probes), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def record(c: Contender, scores: dict, times: list[float], reported: float | None) -> dict:
    """One contender's measurements on one fold (JSON-ready)."""
    workload = None if c.workload is None else {**c.workload.per_invocation(), "invocations": c.workload.invocations}
    return {"key": c.key, "label": c.label, "ours": c.ours, "runtime": c.runtime, "format": c.format,
            **scores, "accuracy_reported_by_har_train": reported, "params": c.params,
            "model_bytes": c.model_bytes, "arena_bytes": c.arena_bytes, "macs": c.macs, "acs": c.acs,
            "dense_macs": c.dense_macs, "workload": workload, "devices": device_estimates(workload, c.emulated),
            "emulated": c.emulated, "epochs": c.epochs,
            "latency_us": {"median": float(np.median(times)), "p99": float(np.percentile(times, 99)),
                           "n": len(times)}, "notes": c.notes}


def run_fold(fold: Fold, data: Data, settings: Settings, console: Console) -> tuple[list[dict], list[dict], dict, dict]:
    """Train every contender on the fold, score it on all test windows and time it, and compare the stream
    contenders on the test subjects' streams (bench/streams.py); (records, stream records, samples, seconds)."""
    seconds: dict[str, float] = {}
    label = f"fold {fold.index + 1}/{settings.folds}"
    console.print(f"[bold]{label}[/]: test subjects {','.join(fold.split.test)}, validation {','.join(fold.split.val)}"
                  f", {len(fold.train_raw)} training / {len(fold.test)} test windows")
    t0 = time.time()
    result = ours.train(fold, data, settings, settings.subjects is None, console)
    seconds["l2mu"] = time.time() - t0
    contenders = ours.contenders(result, fold.test.x)
    int8 = result["stages"]["int8"]
    reported = {"l2mu_float": result["stages"]["float"]["accuracy"], "l2mu_int8_litert": int8["accuracy_litert"],
                "l2mu_int8_tflm": int8["accuracy_tflm"]}
    for name in PEERS:
        t0 = time.time()
        with console.status(f"{label}: training and converting peer {name}"):
            contenders.append(importlib.import_module(f"bench.peers.{name}").contender(fold, settings))
        seconds[name] = time.time() - t0
    t0 = time.time()
    with console.status(f"{label}: scoring {len(contenders)} contenders on {len(fold.test)} test windows"):
        scores = {c.key: accuracy(c, fold.test.x, fold.test.y, fold.classes) for c in contenders}
    pick = np.random.default_rng(SEED + fold.index).permutation(len(fold.test))[:settings.timed_decisions]
    with console.status(f"{label}: timing {len(pick)} decisions per contender, interleaved"):
        times = time_decisions(contenders, fold.test.x[pick])
    seconds["measure"] = time.time() - t0
    records = [record(c, scores[c.key], times[c.key], reported.get(c.key)) for c in contenders]
    t0 = time.time()
    streams = stream_records(fold, data, next(c for c in contenders if c.key == "forest"), console)
    seconds["streams"] = time.time() - t0
    return records, streams, times, seconds


def one_thread_each() -> None:
    """torch, TensorFlow (before its first op) and, through their own settings, LiteRT, ONNX Runtime and
    scikit-learn on one thread: for the timing, and because OpenMP threads spinning on a shared 2-core machine
    make torch training tens of times slower."""
    import torch

    from deploy.tf_env import import_tensorflow

    torch.set_num_threads(1)
    tf = import_tensorflow()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def benchmark(settings: Settings, spec: str, out: Outputs, console: Console) -> dict:
    started, load_at_start = time.time(), list(os.getloadavg())
    data = load_data(spec, settings.subjects)
    one_thread_each()
    console.print(f"{settings.describe()}\n{data.name}: {len(data.subjects)} subjects, {len(data.windows)} windows "
                  f"of {WINDOW} at {FS_HZ:g} Hz (hop {HOP}), classes {', '.join(data.classes)}")
    fold_records, samples, interrupted = [], {}, False
    try:
        for fold in folds(data, settings, out.artifacts):
            t0 = time.time()
            records, streams, times, seconds = run_fold(fold, data, settings, console)
            fold_records.append({"fold": fold.index + 1, "split": fold.split.to_dict(), "test_windows": len(fold.test),
                                 "seconds": {**{k: round(v, 1) for k, v in seconds.items()},
                                             "total": round(time.time() - t0, 1)},
                                 "models": records, "streams": streams})
            for key, t in times.items():
                samples.setdefault(key, []).extend(t)
    except KeyboardInterrupt:
        interrupted = True
        if not fold_records:
            raise HarError("interrupted before the first fold finished: nothing to report",
                           ExitCode.INTERRUPTED) from None
        console.print(f"[yellow]interrupted: reporting the {len(fold_records)} finished folds[/]")
    keys = [r["key"] for r in fold_records[0]["models"]]
    models = [summarise_model([m for f in fold_records for m in f["models"] if m["key"] == key], samples[key])
              for key in keys]
    return {
        "benchmark": "har bench/compare.py", "mode": settings.mode, "settings": settings.to_dict(),
        "description": settings.describe(), "interrupted": interrupted,
        "data": {"spec": spec, "name": data.name, "classes": data.classes, "subjects": data.subjects,
                 "windows": len(data.windows)},
        "protocol": {"fs_hz": FS_HZ, "window": WINDOW, "hop": HOP, "seed": SEED, "folds": settings.folds,
                     "folds_run": len(fold_records), "split": "subject-grouped K-fold (training.splits.kfold_splits), "
                     "1 validation subject per fold", "normalisation": "per-channel z-score fitted on each fold's "
                     "training subjects", "augmentation_deg": AUGMENT_DEG, "threads": 1},
        "host": host(load_at_start),
        "seconds": round(time.time() - started, 1), "cpu_seconds": round(cpu_seconds(), 1), "ours": OURS,
        "models": models, "ratios": ratios(models), "ratios_engine": ratios(models, ENGINE),
        "streams": summarise_streams(fold_records), "folds": fold_records,
        "outputs": {k: str(v) for k, v in vars(out).items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK.describe()}")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="data source: seglearn (the bundled real watch data), wisdm:PATH or csv:DIR")
    parser.add_argument("--out", type=Path, help="folder for BENCHMARKS.md, BENCHMARKS.json, the PNG and models")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    settings = QUICK if args.quick else FULL
    out = outputs(args.out, settings, time.strftime("%Y%m%d-%H%M%S"))
    try:
        result = benchmark(settings, args.data, out, console)
        from bench.report import write_report

        write_report(result, out)
    except HarError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    from training.run_dir import to_json

    if args.json:
        sys.stdout.write(to_json(result))
    else:
        from bench.report import summary_text

        sys.stdout.write(summary_text(result))
    console.print(f"wrote {out.markdown}, {out.json}, {out.png} in {result['seconds']:.0f} s")
    return ExitCode.INTERRUPTED if result["interrupted"] else ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
