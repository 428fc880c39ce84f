"""The training settings of `har train` and their defaults, in one place (no torch: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class TrainConfig:
    """Batch size and learning rate of the tuned default (docs/tuning.md, "The tuned default"; before it: batch 128,
    lr 2e-3, training/configs/untuned.toml); epochs and patience sized for a two-minute default run."""

    epochs: int = 24
    batch_size: int = 64
    lr: float = 4.85e-3  # Adam, cosine decay over `epochs`
    patience: int = 8  # epochs without a better validation accuracy before stopping
    seed: int = 42
    augment_deg: float = 20.0  # random wrist rotation per training window (0: no augmentation)

    def to_dict(self) -> dict:
        return asdict(self)
