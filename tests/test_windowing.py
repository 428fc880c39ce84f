"""Resampling, windowing and subject splits."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import HarError
from training.recordings import Dataset, Recording
from training.splits import holdout_split, kfold_splits
from training.windowing import make_windows, resample


def test_resampling_50_to_20_hz_keeps_a_slow_sine():
    t50 = np.arange(500) / 50.0
    x = np.column_stack([np.sin(2 * np.pi * 1.0 * t50)] * 6)
    y = resample(x, 50.0, 20.0)
    assert y.shape == (200, 6)
    t20 = np.arange(200) / 20.0
    inner = slice(20, 180)  # away from the filter's edge effects
    assert np.allclose(y[inner, 0], np.sin(2 * np.pi * 1.0 * t20)[inner], atol=0.02)


def test_resampling_removes_content_above_the_new_nyquist():
    t50 = np.arange(1000) / 50.0
    x = np.column_stack([np.sin(2 * np.pi * 15.0 * t50)] * 6)  # 15 Hz > 10 Hz Nyquist at 20 Hz
    assert np.abs(resample(x, 50.0, 20.0)[50:-50]).max() < 0.05


def _dataset(lengths: list[int], fs: float = 20.0) -> Dataset:
    recs = [Recording(np.full((n, 6), i, np.float32), fs, "ab"[i % 2], str(i)) for i, n in enumerate(lengths)]
    return Dataset("toy", recs, ["a", "b"])


def test_windows_are_cut_every_hop_with_their_labels_and_subjects():
    w = make_windows(_dataset([100, 45, 39]), 20.0, window=40, hop=20)
    # (100 - 40) / 20 + 1 = 4 windows, (45 - 40) / 20 + 1 = 1, and a 39-sample recording gives none
    assert w.x.shape == (5, 40, 6)
    assert w.y.tolist() == [0, 0, 0, 0, 1] and w.subjects.tolist() == ["0"] * 4 + ["1"]
    assert np.all(w.x[4] == 1.0)


def test_window_longer_than_every_recording_is_a_clear_error():
    with pytest.raises(HarError, match="longer than every recording"):
        make_windows(_dataset([30, 35]), 20.0, window=40, hop=20)


def test_holdout_split_is_by_subject_and_disjoint():
    subjects = [str(i) for i in range(1, 11)]
    s = holdout_split(subjects, seed=3)
    assert len(s.test) == 2 and len(s.val) == 1 and len(s.train) == 7
    assert sorted(s.train + s.val + s.test, key=int) == subjects
    assert holdout_split(subjects, seed=3) == s  # the seed fixes it
    given = holdout_split(subjects, seed=3, test=["9", "10"], val=["1"])
    assert (given.test, given.val) == (["9", "10"], ["1"]) and "9" not in given.train


def test_kfold_tests_every_subject_exactly_once():
    subjects = [str(i) for i in range(1, 11)]
    folds = kfold_splits(subjects, 5, seed=0)
    tested = sorted((s for f in folds for s in f.test), key=int)
    assert tested == subjects
    for f in folds:
        assert not set(f.test) & set(f.train + f.val) and not set(f.val) & set(f.train)


def test_too_few_subjects_for_a_split_is_a_clear_error():
    with pytest.raises(HarError, match="too few"):
        holdout_split(["1", "2", "3"], seed=0)
    with pytest.raises(HarError, match="--cv"):
        kfold_splits(["1", "2", "3"], 5, seed=0)
