"""Shared fixtures: a tiny L2MU trained on real bundled watch data (float, and compressed to int8 by the real
`har train --compress int8` pipeline), and the int8 step graph of a seeded untrained L2MU for the live backends."""

from __future__ import annotations

from pathlib import Path

import hypothesis_profile  # noqa: F401  (derandomized hypothesis examples under CI=true)
import numpy as np
import pytest
from rich.console import Console
from step_model_fixture import SMALL

TINY_CLASSES = ["PEN", "ABD", "FEL"]
TINY_TEST_SUBJECT = "4"  # the smallest subject in the bundled data keeps streaming tests short


def _train_tiny(runs_dir: Path, name: str, **compression) -> Path:
    """The tiny L2MU (step_model_fixture.SMALL: the untuned layout at H=16, M=8) trained 4 epochs on 4 bundled
    subjects and 3 exercises, test subject 4, one torch thread (tiny batches: one thread is several times faster when
    the cores are shared). `compression`: TrainRequest fields of `har train --compress`."""
    import torch

    from har_app.train_job import run_train_job
    from training.pipeline import TrainRequest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    req = TrainRequest(subjects=["3", "4", "5", "6"], activities=TINY_CLASSES, test_subjects=[TINY_TEST_SUBJECT],
                       val_subjects=["3"], epochs=4, lr=1e-2, batch_size=32,
                       model=SMALL, runs_dir=runs_dir, name=name, **compression)
    try:
        result = run_train_job(req, Console(stderr=True, quiet=True))
    finally:
        torch.set_num_threads(threads)
    return Path(result["run_dir"])


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A float run directory. About 7 s on one core; test accuracy ~0.68 with every class predicted (2 epochs gave
    a constant predictor)."""
    return _train_tiny(tmp_path_factory.mktemp("runs"), "tiny")


@pytest.fixture(scope="session")
def int8_step_model() -> tuple[bytes, object]:
    """(model_int8.tflite bytes, torch model) of a seeded, untrained tiny L2MU with one output per TINY_CLASSES class
    (tests/step_model_fixture.py)."""
    from step_model_fixture import build_int8_step_model, seeded_l2mu

    model = seeded_l2mu(len(TINY_CLASSES), **SMALL)
    calibration = np.random.default_rng(1).normal(size=(16, 40, 6)).astype(np.float32)
    return build_int8_step_model(model, calibration), model


@pytest.fixture(scope="session")
def int8_run(tmp_path_factory) -> Path:
    """A real `har train --compress int8` run of the tiny model: pruned to 50 % (2 fine-tuning epochs), int8 step
    model calibrated on 16 windows, verified on LiteRT and TFLM (model_int8.tflite, model_int8.cc/.h,
    quantization_report.md, metrics stages "pruned" and "int8"). Seed 7: with the default seed 42 the abrupt 50 %
    pruning of so small a model leaves it nearly silent after 2 fine-tuning epochs (test accuracy 0.33 of 3 classes,
    float 0.66); with 7 it keeps firing (pruned 0.59, int8 0.59, integer engine 0.68, float 0.67), so the parity
    tests that use it compare real spikes."""
    return _train_tiny(tmp_path_factory.mktemp("int8-runs"), "tiny-int8", compress="int8", sparsity=0.5, seed=7,
                       finetune_epochs=2, calibration_windows=16)


@pytest.fixture(scope="session")
def int8_stream_run(int8_run, tmp_path_factory) -> Path:
    """`int8_run` as a stream run: a copy with `data.stream` true in its config.json, so its deployment contract has
    one lane and the reset rule zero-state-per-stream. A stream run's int8 step model is the same step graph as a
    windowed run's (only the runtime rule differs), so this one serves until `har train --stream --compress int8`
    can train one."""
    import json
    import shutil

    run = tmp_path_factory.mktemp("int8-stream-runs") / f"{int8_run.name}-stream"
    shutil.copytree(int8_run, run)
    config = json.loads((run / "config.json").read_text())
    config["data"]["stream"] = True
    (run / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return run


def fresh_litert_counts(model: bytes, windows: np.ndarray) -> np.ndarray:
    """Reference output spike counts (N, C) of normalised windows (N, T, 6): a new LiteRT interpreter per window,
    so every window starts from the zero state without relying on any reset."""
    from ai_edge_litert.interpreter import Interpreter

    counts = []
    for window in windows:
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        (s_in, z_in), (s_out, z_out) = inp["quantization"], out["quantization"]
        n = np.zeros(out["shape"][-1], np.int64)
        for x in window:
            it.set_tensor(inp["index"], np.clip(np.round(x / s_in + z_in), -128, 127).astype(np.int8)[None])
            it.invoke()
            n += s_out * (it.get_tensor(out["index"])[0].astype(np.float32) - z_out) > 0.5  # spike: s (q - z0) > 0.5
        counts.append(n)
    return np.array(counts)
