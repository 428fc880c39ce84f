"""The training settings of `har train` and their defaults, in one place (no torch: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Batch size and learning rate of the tuned default (docs/tuning.md, "The tuned default"; before it: batch 128,
    lr 2e-3, training/configs/untuned.toml); at most 40 epochs with patience 12 keeps the
    default `har train --compress int8` under two minutes on 2 cores."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 4.85e-3  # Adam, cosine decay over `epochs`
    patience: int = 12  # epochs without a better validation accuracy before stopping
    seed: int = 42
    augment_deg: float = 20.0  # random wrist rotation per training window (0: no augmentation)

    def to_dict(self) -> dict:
        return asdict(self)
