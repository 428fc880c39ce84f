"""The shared protocol every contender follows: the same data, subject-grouped folds, window, rate and
normalisation (fitted on the training subjects of each fold), and the two run sizes (full and --quick)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from training.normalization import Normalization
from training.sources import load_dataset
from training.splits import SubjectSplit, kfold_splits
from training.train_config import TrainConfig
from training.windowing import Windows, make_windows

FS_HZ = 20.0
WINDOW = 40
HOP = 20
SEED = 42
AUGMENT_DEG = 20.0  # the L2MU's wrist-rotation augmentation, given to every trained peer too
BATCH_SIZE = 128  # the neural peers' batch and Adam learning rate (cosine decay): the untuned L2MU's, never tuned
LR = 2e-3


@dataclass(frozen=True)
class Settings:
    mode: str
    folds: int
    subjects: int | None  # use the first N subjects of the data (None: all)
    epochs: int  # neural peers: at most this many epochs, early stop on validation accuracy
    patience: int
    l2mu_epochs: int  # the L2MU: the same rule with its own budget (`har train`'s defaults in the full run)
    l2mu_patience: int
    finetune_epochs: int  # L2MU pruning fine-tune before int8
    calibration_windows: int
    forest_trees: int
    timed_decisions: int  # decisions timed per contender and fold (interleaved across contenders)

    def describe(self) -> str:
        subjects = f"the first {self.subjects} subjects" if self.subjects else "all subjects"
        return (f"{self.mode} run: {self.folds} subject-grouped folds over {subjects}; the L2MU at most "
                f"{self.l2mu_epochs} epochs (early stop after {self.l2mu_patience} without a better validation "
                f"accuracy), the neural peers at most {self.epochs} (patience {self.patience}); "
                f"{self.finetune_epochs} pruning fine-tune epochs and {self.calibration_windows} calibration windows "
                f"for the L2MU int8 step; {self.forest_trees} trees; {self.timed_decisions} timed decisions per "
                "model and fold")

    def to_dict(self) -> dict:
        return asdict(self)


# The full run trains the L2MU with `har train`'s defaults (the tuned default: docs/tuning.md; 12 fine-tune epochs,
# 128 calibration windows) and gives the neural peers the larger budget the untuned L2MU had (60 epochs, patience 12);
# the forest has scikit-learn's default 100 trees.
FULL = Settings("full", folds=5, subjects=None, epochs=60, patience=12, l2mu_epochs=TrainConfig.epochs,
                l2mu_patience=TrainConfig.patience, finetune_epochs=12, calibration_windows=128, forest_trees=100,
                timed_decisions=200)
QUICK = Settings("quick", folds=2, subjects=6, epochs=3, patience=3, l2mu_epochs=3, l2mu_patience=3, finetune_epochs=1,
                 calibration_windows=16, forest_trees=20, timed_decisions=25)


@dataclass
class Fold:
    """One fold's windows: raw SI `train` (for augmentation) and normalised `val`/`test`, plus the statistics."""

    index: int
    split: SubjectSplit
    classes: list[str]
    norm: Normalization
    train_raw: Windows
    val: Windows
    test: Windows
    workdir: Path
    l2mu_run: Path | None = None  # set once the fold's L2MU run exists (the ONNX peer exports its float weights)

    @property
    def train(self) -> Windows:
        return Windows(self.norm.apply(self.train_raw.x), self.train_raw.y, self.train_raw.subjects)


@dataclass
class Data:
    spec: str
    name: str
    classes: list[str]
    subjects: list[str]
    windows: Windows


def load_data(spec: str, subjects: int | None) -> Data:
    dataset = load_dataset(spec)
    chosen = dataset.subjects[:subjects] if subjects else dataset.subjects
    dataset = dataset.only_subjects(chosen)
    return Data(spec, dataset.name, dataset.classes, chosen, make_windows(dataset, FS_HZ, WINDOW, HOP))


def make_fold(index: int, windows: Windows, split: SubjectSplit, classes: list[str], workdir: Path) -> Fold:
    """A fold's windows, normalised with statistics of its training subjects only."""
    train, val, test = (windows.of_subjects(s) for s in (split.train, split.val, split.test))
    norm = Normalization.fit(train.x)
    return Fold(index, split, classes, norm, train, Windows(norm.apply(val.x), val.y, val.subjects),
                Windows(norm.apply(test.x), test.y, test.subjects), workdir)


def folds(data: Data, settings: Settings, workdir: Path) -> list[Fold]:
    """The same subject-grouped folds `har train --cv K` makes."""
    return [make_fold(i, data.windows, split, data.classes, workdir / f"fold-{i + 1}")
            for i, split in enumerate(kfold_splits(data.subjects, settings.folds, SEED))]
