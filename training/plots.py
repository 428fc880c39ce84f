"""PNG plots a person would rather look at: confusion matrix, training curves, spike raster."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from training.atomic import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    plt.close(fig)


def plot_confusion(cm: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(classes), 0.8 + 0.6 * len(classes)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    _save(fig, path)


def plot_training_curves(epochs: list[dict], best_epoch: int, path: Path) -> None:
    e = [r["epoch"] for r in epochs]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    for split in ("train", "val"):
        ax_loss.plot(e, [r[f"{split}_loss"] for r in epochs], label=split)
        ax_acc.plot(e, [r[f"{split}_accuracy"] for r in epochs], label=split)
    for ax, name in ((ax_loss, "cross-entropy of spike counts"), (ax_acc, "accuracy")):
        ax.axvline(best_epoch, color="grey", ls=":", label="best")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    _save(fig, path)


def plot_spike_raster(spikes: dict[str, np.ndarray], title: str, path: Path) -> None:
    """spikes[pop] (T, n_pop) for one window; populations stacked bottom (input) to top (output)."""
    fig, ax = plt.subplots(figsize=(8, 6))
    offset, ticks = 0, []
    for pop, s in spikes.items():
        t, n = np.nonzero(s)
        ax.scatter(t, n + offset, s=2, marker="|", color="black")
        ticks.append((offset + s.shape[1] / 2, pop))
        offset += s.shape[1]
        ax.axhline(offset - 0.5, color="lightgrey", lw=0.5)
    ax.set_yticks([p for p, _ in ticks], [name for _, name in ticks])
    ax.set_xlabel("step (one sensor sample)")
    ax.set_ylim(-0.5, offset - 0.5)
    ax.set_title(title)
    _save(fig, path)
