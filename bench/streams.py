"""The stream comparison of one fold: every contender decides at the same samples of the same streams.

A fold's held-out subjects' recordings are joined into one stream per subject (training/streaming.py
`build_streams`: activities interleaved, so every recording start after the first is a true activity change), and
every contender decides at every hop from the first full window on (docs/streaming.md):

- streaming L2MU: `har train --stream` on this fold: the fold's windowed L2MU (bench/ours.py) fine-tuned on the
  training subjects' streams (training/streaming.py `finetune_on_streams`), one state per stream, never reset;
  n_c[t] = its output spikes of the last `window` steps. One step per sample: 20 steps per decision.
- L2MU, windowed weights on one lane: the fold's windowed L2MU stepped the same way, without the fine-tune.
- windowed L2MU: the window ending at the decision, from the zero state (2 staggered lanes, 40 steps per decision).
- forest: the fold's random forest on the window ending at the decision.
- forest + vote: the majority of its last VOTE decisions, so it sees the 80 samples a streaming model's
  ring buffer and memory span (ties go to the most recent decision).

Scored: accuracy at every decision, and at the decisions whose window lies inside one recording (the others
straddle an activity change, which a test window never does).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from bench.contender import Contender
from bench.protocol import FS_HZ, HOP, SEED, WINDOW, Data, Fold

VOTE = 3  # forest decisions in the vote: windows ending at t - 2 hop, t - hop, t span 80 samples


def majority(pred: np.ndarray, hop: int, span: int) -> np.ndarray:
    """At each t the most common of pred[t], pred[t - hop], ... inside the last `span` decisions; ties to the
    most recent of the tied classes."""
    out = np.empty_like(pred)
    for t in range(len(pred)):
        votes = pred[max(0, t - span + 1) : t + 1][::-1][::hop]  # newest first
        counts = Counter(votes.tolist())
        top = max(counts.values())
        out[t] = next(v for v in votes if counts[v] == top)
    return out


def stream_records(fold: Fold, data: Data, forest: Contender, console) -> list[dict]:
    """Per contender: accuracy at every decision and inside recordings, decisions, steps per decision."""
    import copy

    import torch

    from training.checkpoint import load_model
    from training.train_config import TrainConfig
    from training.run_dir import open_run
    from training.sources import load_dataset
    from training.streaming import StreamSettings, build_streams, decision_steps, finetune_on_streams, stream_counts

    dataset = load_dataset(data.spec).only_subjects(data.subjects)
    rng = np.random.default_rng(SEED)
    train, val, test = (build_streams(dataset, FS_HZ, s, rng if s is fold.split.train else None)
                        for s in (fold.split.train, fold.split.val, fold.split.test))
    run = open_run(fold.l2mu_run)
    norm = run.normalization
    windowed = load_model(run).eval()
    streaming = copy.deepcopy(windowed)
    train_cfg = run.config["train"]
    with console.status(f"fold {fold.index + 1}: stream fine-tune of the L2MU (har train --stream, phase 2)"):
        finetune_on_streams(streaming, train, val, norm, StreamSettings(),
                            TrainConfig(batch_size=train_cfg["batch_size"], seed=train_cfg["seed"],
                                        augment_deg=train_cfg["augment_deg"]), WINDOW, HOP)
    zs = [norm.apply(s.x) for s in test]
    at = [decision_steps(len(s.y), HOP, WINDOW) for s in test]
    y = np.concatenate([s.y[a] for s, a in zip(test, at)])
    inside = np.concatenate([[not any(t - WINDOW + 1 < c <= t for c in s.changes) for t in a]
                             for s, a in zip(test, at)])
    ending = [np.stack([z[t - WINDOW + 1 : t + 1] for t in a]) for z, a in zip(zs, at)]  # the window at each decision

    def one_lane(model) -> np.ndarray:
        counts, _ = stream_counts(model, zs, WINDOW)
        return np.concatenate([c[a].argmax(1) for c, a in zip(counts, at)])

    with torch.no_grad():
        fresh = np.concatenate([windowed(torch.from_numpy(w)).argmax(1).numpy() for w in ending])
    forest_each = [np.asarray(forest.predict(w)) for w in ending]
    preds = {
        "streaming_l2mu": ("streaming L2MU (har train --stream), one lane", one_lane(streaming), HOP, None),
        "l2mu_one_lane": ("L2MU windowed weights, one lane", one_lane(windowed), HOP, None),
        "l2mu_windowed": ("L2MU windowed (zero state per window)", fresh, 2 * HOP, WINDOW),
        "forest": (forest.label, np.concatenate(forest_each), None, WINDOW),
        "forest_vote": (f"{forest.label} + vote over {VOTE} decisions",
                        np.concatenate([majority(p, 1, VOTE) for p in forest_each]), None, WINDOW + (VOTE - 1) * HOP),
    }
    return [{"key": key, "label": label, "accuracy_every_decision": float(np.mean(p == y)),
             "accuracy_inside_recordings": float(np.mean((p == y)[inside])), "decisions": int(len(y)),
             "decisions_inside": int(inside.sum()), "steps_per_decision": steps, "history_samples": history}
            for key, (label, p, steps, history) in preds.items()]


def summarise_streams(fold_records: list[dict]) -> list[dict]:
    """Mean and std over folds of each contender's stream accuracies."""
    keys = [r["key"] for r in fold_records[0]["streams"]]
    out = []
    for key in keys:
        rows = [r for f in fold_records for r in f["streams"] if r["key"] == key]
        out.append({**{k: rows[0][k] for k in ("key", "label", "steps_per_decision", "history_samples")},
                    **{f"{m}{s}": float(f(np.array([r[m] for r in rows])))
                       for m in ("accuracy_every_decision", "accuracy_inside_recordings")
                       for s, f in (("", np.mean), ("_std", np.std))}})
    return out
