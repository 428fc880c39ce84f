"""Peer (c): a random forest (scikit-learn) on window statistics of the normalised window: per channel mean, std,
min, max and mean absolute first difference, plus mean and std of the accelerometer and gyroscope magnitudes. It
trains on the training windows plus rotated copies (the augmentation every other contender sees)."""

from __future__ import annotations

import numpy as np

from bench.contender import Contender, Workload
from bench.protocol import AUGMENT_DEG, SEED, Fold, Settings
from training.augment import augment

MAX_DEPTH = 12  # a forest meant for a microcontroller (emlearn-style C code) is depth-limited
AUGMENTED_COPIES = 2
# Elementwise operations per sample and channel: mean 1, std 2 (square, add), min 1, max 1, |diff| 2 (sub, abs)
# plus its sum 1; per sample and sensor the magnitude 6 (3 squares, 2 adds, sqrt) and its mean and std 3.
CHANNEL_OPS_PER_SAMPLE = 8
SENSOR_OPS_PER_SAMPLE = 9
# Bytes of a compact C forest: a split stores feature (uint8), threshold (float32) and two int16 child indices;
# a leaf one uint8 class.
SPLIT_BYTES, LEAF_BYTES = 9, 1


def features(z: np.ndarray) -> np.ndarray:
    """(N, T, 6) normalised windows -> (N, 34) statistics."""
    diff = np.abs(np.diff(z, axis=1)).mean(1)
    mags = [np.linalg.norm(z[..., s : s + 3], axis=-1) for s in (0, 3)]  # |a|, |w| per sample
    stats = [z.mean(1), z.std(1), z.min(1), z.max(1), diff]
    stats += [np.stack([m.mean(1), m.std(1)], axis=1) for m in mags]
    return np.concatenate(stats, axis=1).astype(np.float32)


def _training_set(fold: Fold) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    raw = fold.train_raw
    copies = [raw.x] + [augment(raw.x, rng, AUGMENT_DEG) for _ in range(AUGMENTED_COPIES)]
    x = np.concatenate([features(fold.norm.apply(c)) for c in copies])
    return x, np.tile(raw.y, len(copies))


def contender(fold: Fold, settings: Settings) -> Contender:
    from sklearn.ensemble import RandomForestClassifier

    forest = RandomForestClassifier(n_estimators=settings.forest_trees, max_depth=MAX_DEPTH, n_jobs=1,
                                    random_state=SEED)
    forest.fit(*_training_set(fold))
    trees = [t.tree_ for t in forest.estimators_]
    leaves = sum(int((t.children_left == -1).sum()) for t in trees)
    splits = sum(t.node_count for t in trees) - leaves
    # comparisons per decision: the split nodes on each tree's path, averaged over the test windows
    visited = forest.decision_path(features(fold.test.x))[0].sum(1).mean()
    comparisons = float(visited) - len(trees)
    window, channels = fold.test.x.shape[1:]
    feature_ops = window * (channels * CHANNEL_OPS_PER_SAMPLE + 2 * SENSOR_OPS_PER_SAMPLE)

    def decide(z: np.ndarray) -> int:
        return int(forest.predict(features(z[None]))[0])

    return Contender(
        "forest", f"Random forest ({settings.forest_trees} trees)", ours=False, runtime="scikit-learn",
        format="C arrays (estimate)", decide=decide, predict=lambda zs: forest.predict(features(zs)),
        params=splits + leaves, model_bytes=splits * SPLIT_BYTES + leaves * LEAF_BYTES, arena_bytes=None, macs=0,
        acs=None, dense_macs=0, workload=Workload(0, feature_ops + comparisons, ops=0, invocations=1),
        notes=[f"max depth {MAX_DEPTH}, {splits + leaves:,} nodes, {comparisons:.0f} comparisons per decision; "
               f"{feature_ops:,} elementwise operations for the {features(fold.test.x[:1]).shape[1]} features; "
               "on a device it is compiled C (no interpreter, no TFLM arena); params = tree nodes; its host latency is "
               "scikit-learn's predict on one window, mostly per-call overhead"])
