"""Decision latency after an activity change: the streaming L2MU (`har train --stream`), the windowed L2MU and the
random-forest peer, alone and with a majority vote over its last windows (the same history for the peer).

    nice .venv/bin/python bench/decision_latency.py [--subjects 1,2,...] [--activities PEN,ABD,FEL] [--epochs 8]
        [--out bench-latency/] [--windowed RUN --streaming RUN]

Both L2MUs are trained by the real `har train` pipeline on the same subjects and split (or given as existing runs
of one split: --windowed, --streaming). Test streams: each held-out
subject's recordings resampled to the model rate and joined end to end with activities interleaved
(training/streaming.py `build_streams`), so every recording start after the first is a true change point.

Every contender decides at every sample t from the first full window on (`--decide-every 1`):
- streaming L2MU: argmax of the output spikes of the last `window` steps of one state never reset;
- windowed L2MU: the window ending at t run from the zero state (what ceil(window / 1) lanes would give);
- forest: its window statistics of the window ending at t;
- forest + vote: the majority of the forest's decisions on the windows ending at t, t - hop, ... that lie inside the
  last `--history` samples (default: two windows), ties to the most recent.

Latency of a change at c: the time from c to the first sample t >= c from which the decision is correct for
`--stable` samples in a row (default one hop), within the new activity's recording; a change never followed by such
a run counts as missed (left out of the percentiles, counted separately). Accuracy is over every sample with a
decision. Figures are what this machine measured; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `python bench/decision_latency.py` from a fresh clone

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402

from bench.peers.forest import AUGMENTED_COPIES, MAX_DEPTH, features  # noqa: E402
from bench.streams import majority  # noqa: E402
from bench.protocol import AUGMENT_DEG, SEED  # noqa: E402
from training.augment import augment  # noqa: E402
from training.checkpoint import load_model  # noqa: E402
from training.pipeline import TrainRequest, run_training  # noqa: E402
from training.run_dir import open_run  # noqa: E402
from training.sources import load_dataset  # noqa: E402
from training.streaming import Stream, build_streams, stream_counts  # noqa: E402
from training.windowing import make_windows  # noqa: E402


def windows_ending_at_every_sample(z: np.ndarray, window: int) -> np.ndarray:
    """(n - window + 1, window, 6): the window ending at each t >= window - 1."""
    return np.lib.stride_tricks.sliding_window_view(z, window, axis=0).transpose(0, 2, 1)


def windowed_l2mu(model, z: np.ndarray, window: int) -> np.ndarray:
    with torch.no_grad():
        w = windows_ending_at_every_sample(z, window)
        return np.concatenate([model(torch.from_numpy(np.ascontiguousarray(w[i : i + 512]))).argmax(1).numpy()
                               for i in range(0, len(w), 512)])


def latencies(truth: np.ndarray, pred: np.ndarray, changes: list[int], stable: int) -> tuple[list[int], int]:
    """Samples from each change (after the first recording) to the first run of `stable` correct decisions inside
    the new recording; and how many changes had no such run. pred[t] is the decision at sample t (-1: none yet)."""
    ends = changes[1:] + [len(truth)]
    found, missed = [], 0
    for c, end in zip(changes[1:], ends[1:]):
        ok = pred[c:end] == truth[c:end]
        run = np.convolve(ok, np.ones(stable, int), "valid") == stable  # a run of `stable` correct starts here
        hits = np.flatnonzero(run)
        if len(hits):
            found.append(int(hits[0]))
        else:
            missed += 1
    return found, missed


def train_runs(args, runs: Path) -> tuple[Path, Path]:
    common = dict(subjects=args.subjects, activities=args.activities, test_subjects=args.test_subjects,
                  val_subjects=args.val_subjects, epochs=args.epochs, runs_dir=runs,
                  model={"hidden_size": args.hidden, "memory_size": args.memory}, seed=SEED)
    console = Console(stderr=True)
    windowed = run_training(TrainRequest(name="windowed", batch_size=32, lr=args.lr, **common), console)
    # the stream run's first phase is this same windowed training (docs/streaming.md), then its stream fine-tune
    streaming = run_training(TrainRequest(name="stream", batch_size=32, lr=args.lr, stream=True,
                                          stream_settings={"stretch": args.stretch}, **common), console)
    return Path(windowed["run_dir"]), Path(streaming["run_dir"])


def fit_forest(dataset, run, trees: int):
    """The forest peer of bench/peers/forest.py (same features, depth and augmented copies) on the run's training
    subjects' windows, normalised with the run's normalisation."""
    from sklearn.ensemble import RandomForestClassifier

    w = make_windows(dataset, run.fs_hz, run.window, run.hop).of_subjects(run.config["split"]["train"])
    rng = np.random.default_rng(SEED)
    copies = [w.x] + [augment(w.x, rng, AUGMENT_DEG) for _ in range(AUGMENTED_COPIES)]
    forest = RandomForestClassifier(n_estimators=trees, max_depth=MAX_DEPTH, n_jobs=1, random_state=SEED)
    forest.fit(np.concatenate([features(run.normalization.apply(c)) for c in copies]), np.tile(w.y, len(copies)))
    return forest


def decisions(streams: list[Stream], windowed_run, stream_run, forest, history: int) -> dict[str, list[np.ndarray]]:
    """Per contender and stream, the decision at every sample (-1 before the first full window)."""
    window, hop = windowed_run.window, windowed_run.hop
    w_model, s_model = load_model(windowed_run).eval(), load_model(stream_run).eval()
    out: dict[str, list[np.ndarray]] = {"streaming L2MU": [], "windowed L2MU": [], "forest": [],
                                        f"forest + vote ({history} samples)": []}
    s_counts, _ = stream_counts(s_model, [stream_run.normalization.apply(s.x) for s in streams], window)
    for s, s_n in zip(streams, s_counts):
        pad = np.full(window - 1, -1)
        out["streaming L2MU"].append(np.concatenate([pad, s_n[window - 1 :].argmax(1)]))
        out["windowed L2MU"].append(np.concatenate([pad, windowed_l2mu(w_model, windowed_run.normalization.apply(s.x),
                                                                       window)]))
        zf = windows_ending_at_every_sample(windowed_run.normalization.apply(s.x), window)
        f = forest.predict(features(np.ascontiguousarray(zf)))
        out["forest"].append(np.concatenate([pad, f]))
        out[f"forest + vote ({history} samples)"].append(np.concatenate([pad, majority(f, hop, history - window + 1)]))
    return out


def summarise(streams: list[Stream], preds: dict[str, list[np.ndarray]], fs: float, stable: int) -> dict:
    rows = {}
    for name, per_stream in preds.items():
        lat, missed, hits, total = [], 0, 0, 0
        for s, p in zip(streams, per_stream):
            found, miss = latencies(s.y, p, s.changes, stable)
            lat += found
            missed += miss
            decided = p >= 0
            hits += int((p[decided] == s.y[decided]).sum())
            total += int(decided.sum())
        secs = np.array(lat) / fs
        rows[name] = {"accuracy_every_sample": hits / total, "changes": len(lat) + missed, "missed": missed,
                      "latency_median_s": float(np.median(secs)) if len(secs) else None,
                      "latency_p90_s": float(np.percentile(secs, 90)) if len(secs) else None}
    return rows


def plot(stream: Stream, preds: dict[str, list[np.ndarray]], classes: list[str], fs: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.arange(len(stream.y)) / fs
    fig, axes = plt.subplots(len(preds) + 1, 1, sharex=True, figsize=(12, 1.3 * (len(preds) + 1)))
    for ax, (name, series) in zip(axes, [("true activity", stream.y)] + [(k, v[0]) for k, v in preds.items()]):
        shown = np.where(series >= 0, series, np.nan)
        ax.step(t, shown, where="post", lw=1.2, color="black" if name == "true activity" else None)
        if name != "true activity":
            wrong = (series >= 0) & (series != stream.y)
            ax.scatter(t[wrong], shown[wrong], s=2, color="red", label="wrong")
        for c in stream.changes[1:]:
            ax.axvline(c / fs, color="grey", lw=0.6, ls="--")
        ax.set_yticks(range(len(classes)), classes, fontsize=7)
        ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    axes[-1].set_xlabel(f"time (s) in the stream of test subject {stream.subject}; dashed: true changes")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    csv = lambda s: s.split(",")  # noqa: E731
    ap.add_argument("--subjects", type=csv, default=csv("1,2,3,4,5,6"))
    ap.add_argument("--activities", type=csv, default=csv("PEN,ABD,FEL"))
    ap.add_argument("--test-subjects", type=csv, default=csv("4,6"))
    ap.add_argument("--val-subjects", type=csv, default=csv("3"))
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2, help="windowed L2MU learning rate")
    ap.add_argument("--hidden", type=int, default=16)
    ap.add_argument("--memory", type=int, default=8)
    ap.add_argument("--stretch", type=int, default=120, help="samples per streaming training stretch")
    ap.add_argument("--trees", type=int, default=50)
    ap.add_argument("--history", type=int, default=0, help="forest vote span in samples (0: two windows)")
    ap.add_argument("--stable", type=int, default=0, help="correct samples in a row that count (0: one hop)")
    ap.add_argument("--out", type=Path, default=Path("bench-latency"))
    ap.add_argument("--windowed", type=Path, help="an existing windowed run to compare (with --streaming): no training")
    ap.add_argument("--streaming", type=Path, help="an existing `har train --stream` run of the same split")
    args = ap.parse_args(argv)
    if (args.windowed is None) != (args.streaming is None):
        ap.error("give both --windowed and --streaming, or neither")
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        windowed_path, stream_path = ((args.windowed, args.streaming) if args.windowed else
                                      train_runs(args, Path(tmp)))
        windowed_run, stream_run = open_run(windowed_path), open_run(stream_path)
        if windowed_run.config["split"] != stream_run.config["split"]:
            ap.error("--windowed and --streaming runs have different splits")
        data = windowed_run.config["data"]
        dataset = load_dataset(data["spec"], data.get("activities"), data.get("subjects"))
        streams = build_streams(dataset, windowed_run.fs_hz, windowed_run.config["split"]["test"])
        history = args.history or 2 * windowed_run.window
        stable = args.stable or windowed_run.hop
        preds = decisions(streams, windowed_run, stream_run,
                          fit_forest(dataset, windowed_run, args.trees), history)
        rows = summarise(streams, preds, windowed_run.fs_hz, stable)
        plot(streams[0], preds, dataset.classes, windowed_run.fs_hz, args.out / "decision_latency.png")
    result = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "window": windowed_run.window, "hop": windowed_run.hop, "fs_hz": windowed_run.fs_hz,
              "history_samples": history, "stable_samples": stable, "contenders": rows,
              "plot": str(args.out / "decision_latency.png")}
    (args.out / "decision_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, r in rows.items():
        print(f"{name:28s} acc/sample {r['accuracy_every_sample']:.3f}  latency median {r['latency_median_s']} s  "
              f"p90 {r['latency_p90_s']} s  missed {r['missed']}/{r['changes']}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
