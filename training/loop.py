"""The training loop: Adam on cross-entropy of spike counts, early stopping on validation accuracy, best kept."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from training.augment import augment
from training.l2mu import L2MU
from training.normalization import Normalization
from training.train_config import TrainConfig
from training.windowing import Windows


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = -1.0
    interrupted: bool = False
    early_stopped: bool = False


def predict_counts(model: L2MU, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Output spike counts (N, C) for normalised windows x (N, T, 6)."""
    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i : i + batch_size])).numpy()
                               for i in range(0, len(x), batch_size)])


def _evaluate(model: L2MU, w: Windows, norm: Normalization) -> tuple[float, float]:
    counts = torch.from_numpy(predict_counts(model, norm.apply(w.x)))
    y = torch.from_numpy(w.y)
    return F.cross_entropy(counts, y).item(), (counts.argmax(1) == y).float().mean().item()


def run_epochs(model: L2MU, cfg: TrainConfig, train_epoch: Callable[[torch.optim.Optimizer], tuple[float, float]],
               validate: Callable[[], tuple[float, float]], on_epoch: Callable[[dict], None] = lambda e: None,
               on_best: Callable[[L2MU], None] = lambda m: None, start_val_accuracy: float = -1.0) -> History:
    """Adam with cosine decay over `cfg.epochs`; `train_epoch(opt)` runs one epoch and returns (loss, accuracy),
    `validate()` returns (val loss, val accuracy). The best-validation weights are kept and loaded on return; early
    stop after `cfg.patience` epochs without a better validation accuracy; Ctrl-C stops and keeps the best.
    A fine-tune passes its starting weights' validation accuracy as `start_val_accuracy`: an epoch must beat it
    to replace them (best_epoch stays 0 if none does)."""
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    hist, best = History(best_epoch=0 if start_val_accuracy >= 0 else -1), copy.deepcopy(model.state_dict())
    hist.best_val_accuracy = start_val_accuracy
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            train_loss, train_accuracy = train_epoch(opt)
            schedule.step()
            val_loss, val_acc = validate()
            record = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
                      "val_loss": val_loss, "val_accuracy": val_acc}
            hist.epochs.append(record)
            if val_acc > hist.best_val_accuracy:
                hist.best_epoch, hist.best_val_accuracy = epoch, val_acc
                best = copy.deepcopy(model.state_dict())
                on_best(model)
            on_epoch(record)
            if epoch - hist.best_epoch >= cfg.patience:
                hist.early_stopped = True
                break
    except KeyboardInterrupt:
        hist.interrupted = True
    model.load_state_dict(best)
    return hist


def fit(model: L2MU, train: Windows, val: Windows, norm: Normalization, cfg: TrainConfig,
        on_epoch: Callable[[dict], None] = lambda e: None,
        on_best: Callable[[L2MU], None] = lambda m: None) -> History:
    """Train in place on raw SI windows (normalised per batch, after augmentation); on return `model` holds
    the best-validation weights. Ctrl-C stops and keeps the best."""
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    y = torch.from_numpy(train.y)

    def train_epoch(opt: torch.optim.Optimizer) -> tuple[float, float]:
        order = torch.randperm(len(y), generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(y), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            x = train.x[idx.numpy()]
            x = augment(x, rng, cfg.augment_deg) if cfg.augment_deg > 0 else x
            counts = model(torch.from_numpy(norm.apply(x)))
            loss = F.cross_entropy(counts, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
            correct += (counts.argmax(1) == y[idx]).sum().item()
        return loss_sum / len(y), correct / len(y)

    return run_epochs(model, cfg, train_epoch, lambda: _evaluate(model, val, norm), on_epoch, on_best)
