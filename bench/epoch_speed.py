"""Epoch time of the L2MU training loop: the fused window forward (`L2MU.run`) against the reference loop over
`step`, side by side in one run on the same data, the same initial weights and the same batches.

    .venv/bin/python bench/epoch_speed.py [--epochs 3] [--threads N]

Both models train from one initial state with one seed, so their per-epoch training losses agree up to float
summation order (same maths; they drift apart slowly over the batches); the script prints them next to the epoch
times. Epochs alternate between the two models so a change in machine load
hits both alike. Figures are wall-clock seconds on this machine; nothing here is asserted."""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from training.config import L2MUConfig
from training.l2mu import L2MU, step_loop
from training.loop import fit
from training.normalization import Normalization
from training.sources import DEFAULT_DATA, load_dataset
from training.splits import holdout_split
from training.train_config import TrainConfig
from training.windowing import make_windows


class StepLoopL2MU(L2MU):
    """The same network trained through the loop over `step` (the window forward before the fused path)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return step_loop(self, x)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dataset = load_dataset(DEFAULT_DATA)
    windows = make_windows(dataset, 20.0, 40, 20)
    split = holdout_split(dataset.subjects, seed=42)
    train, val = windows.of_subjects(split.train), windows.of_subjects(split.val)
    norm = Normalization.fit(train.x)
    cfg = L2MUConfig(n_classes=len(dataset.classes))
    torch.manual_seed(42)
    models = {"step loop (reference)": StepLoopL2MU(cfg), "fused run": L2MU(cfg)}
    first = copy.deepcopy(next(iter(models.values())).state_dict())
    for m in models.values():
        m.load_state_dict(first)
    print(f"{dataset.name}: {len(train)} training windows, {len(val)} validation windows, batch {args.batch_size}, "
          f"{args.threads} torch threads, default model ({sum(p.numel() for p in models['fused run'].parameters())} "
          "parameters)")
    seconds: dict[str, list[float]] = {k: [] for k in models}
    for epoch in range(args.epochs):
        for name, model in models.items():
            tcfg = TrainConfig(epochs=1, batch_size=args.batch_size, seed=epoch, patience=1)
            start = time.perf_counter()
            hist = fit(model, train, val, norm, tcfg)
            seconds[name].append(time.perf_counter() - start)
            e = hist.epochs[0]
            print(f"epoch {epoch + 1}  {name:22s} {seconds[name][-1]:7.2f} s  train loss {e['train_loss']:.6f}  "
                  f"val acc {e['val_accuracy']:.4f}", flush=True)
    ref, fast = (statistics.median(v) for v in seconds.values())
    print(f"median epoch: reference {ref:.2f} s, fused {fast:.2f} s, speed-up {ref / fast:.2f}x")


if __name__ == "__main__":
    main()
