"""Shared fixtures: a tiny L2MU trained on real bundled watch data, and a small real int8 step model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

TINY_CLASSES = ["PEN", "ABD", "FEL"]
TINY_TEST_SUBJECT = "4"  # the smallest subject in the bundled data keeps streaming tests short


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run directory: L2MU (H=16) trained 4 epochs on 4 bundled subjects and 3 exercises, test subject 4.

    About 7 s on one core; test accuracy ~0.68 with every class predicted (2 epochs gave a constant predictor)."""
    import torch

    from training.pipeline import TrainRequest, run_training

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is several times faster when the cores are shared
    req = TrainRequest(subjects=["3", "4", "5", "6"], activities=TINY_CLASSES, test_subjects=[TINY_TEST_SUBJECT],
                       val_subjects=["3"], epochs=4, lr=1e-2, batch_size=32,
                       model={"hidden_size": 16, "memory_size": 8},
                       runs_dir=tmp_path_factory.mktemp("runs"), name="tiny")
    try:
        result = run_training(req, Console(stderr=True, quiet=True))
    finally:
        torch.set_num_threads(threads)
    return Path(result["run_dir"])


@pytest.fixture(scope="session")
def int8_step_model() -> tuple[bytes, object]:
    """(model_int8.tflite bytes, float weights) of a 2-layer LIF step with one output per TINY_CLASSES class."""
    from step_model_fixture import build_int8_step_model, lif_weights

    weights = lif_weights(n_classes=len(TINY_CLASSES))
    calibration = np.random.default_rng(1).normal(size=(16, 40, 6)).astype(np.float32)
    return build_int8_step_model(weights, calibration), weights


@pytest.fixture(scope="session")
def int8_run(tiny_run, int8_step_model, tmp_path_factory) -> Path:
    """A copy of `tiny_run` holding the fixture's real int8 step model as model_int8.tflite (the run-directory
    contract of issue 3), until `har train --compress int8` writes the real one."""
    import shutil

    run = tmp_path_factory.mktemp("int8-run") / tiny_run.name
    shutil.copytree(tiny_run, run)
    (run / "model_int8.tflite").write_bytes(int8_step_model[0])
    return run
