"""Splitting by subject, never by window: a fixed held-out split, or subject-grouped K folds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.errors import HarError


@dataclass
class SubjectSplit:
    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict:
        return {"train": self.train, "val": self.val, "test": self.test}


def holdout_split(subjects: list[str], seed: int, n_test: int = 2, n_val: int = 1,
                  test: list[str] | None = None, val: list[str] | None = None) -> SubjectSplit:
    """Seeded choice of test and validation subjects (unless given); the remaining subjects train."""
    given = (test or []) + (val or [])
    unknown = [s for s in given if s not in subjects]
    if unknown:
        raise HarError(f"unknown subjects {','.join(unknown)}: the data has {','.join(subjects)}")
    pool = [s for s in np.random.default_rng(seed).permutation(subjects).tolist() if s not in given]
    if test is None:
        test, pool = pool[:n_test], pool[n_test:]
    if val is None:
        val, pool = pool[:n_val], pool[n_val:]
    if not (test and val and pool):
        raise HarError(f"{len(subjects)} subjects are too few for a test / validation / training split by subject")
    order = subjects.index
    return SubjectSplit(sorted(pool, key=order), sorted(val, key=order), sorted(test, key=order))


def kfold_splits(subjects: list[str], k: int, seed: int, n_val: int = 1) -> list[SubjectSplit]:
    """Subject-grouped K-fold: each subject is tested exactly once; validation subjects come from the rest."""
    if not 2 <= k <= len(subjects):
        raise HarError(f"--cv {k} needs 2 <= K <= number of subjects ({len(subjects)})")
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(subjects), k)
    return [holdout_split(subjects, seed + i, test=list(f), n_val=n_val) for i, f in enumerate(folds)]
