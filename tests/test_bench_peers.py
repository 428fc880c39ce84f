"""bench/ peers on a tiny slice of the bundled real watch data: each builds, trains one epoch, converts and runs on
its runtime; and the ratio of ours to the best peer points the right way. Behaviour only, no timing."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_CLASSES

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ is a folder of scripts, not installed

from bench.protocol import FS_HZ, HOP, WINDOW, Settings, make_fold  # noqa: E402
from training.splits import SubjectSplit  # noqa: E402

TINY = Settings("test", folds=1, subjects=None, epochs=1, patience=1, l2mu_epochs=1, l2mu_patience=1, finetune_epochs=1,
                calibration_windows=8, forest_trees=5, timed_decisions=3)


@pytest.fixture(scope="module")
def fold(tiny_run, tmp_path_factory):
    """The tiny float run's split (train 5,6; validation 3; test 4) on the same 3 exercises."""
    from training.run_dir import open_run
    from training.sources import load_dataset, select_classes
    from training.windowing import make_windows

    split = open_run(tiny_run).config["split"]
    data = select_classes(load_dataset("seglearn"), TINY_CLASSES).only_subjects(["3", "4", "5", "6"])
    f = make_fold(0, make_windows(data, FS_HZ, WINDOW, HOP), SubjectSplit(**split), TINY_CLASSES,
                  tmp_path_factory.mktemp("bench-fold"))
    f.l2mu_run = tiny_run
    return f


def _peer(name: str, fold):
    return importlib.import_module(f"bench.peers.{name}").contender(fold, TINY)


def _runs_on_the_test_windows(c, fold) -> np.ndarray:
    pred = np.asarray(c.predict(fold.test.x))
    assert pred.shape == (len(fold.test),) and set(pred.tolist()) <= set(range(len(TINY_CLASSES)))
    assert [c.decide(w) for w in fold.test.x[:5]] == pred[:5].tolist()  # the timed path is the scored path
    return pred


@pytest.mark.parametrize("name, op, macs", [
    # LSTM(64): 40 steps x 4 gates x 64 x (6 inputs + 64 recurrent) + readout 64 x 3
    ("lstm", "UNIDIRECTIONAL_SEQUENCE_LSTM", 40 * 4 * 64 * 70 + 64 * 3),
    # Conv1D(24, 16) over 40 samples: 25 positions x 24 x 16 x 6; pool to 8 x 24 = 192; Dense 192x12; 12x3
    ("cnn", "CONV_2D", 25 * 24 * 16 * 6 + 192 * 12 + 12 * 3),
])
def test_keras_peer_trains_converts_to_int8_and_runs_on_litert_and_tflm(fold, name, op, macs):
    from tflite_micro import runtime as tflm

    from bench.peers.keras_int8 import graph_operators

    c = _peer(name, fold)
    _runs_on_the_test_windows(c, fold)
    model = (fold.workdir / f"{name}_int8.tflite").read_bytes()
    assert c.model_bytes == len(model) and op in graph_operators(model)
    assert c.macs == macs and c.workload.ops == len(graph_operators(model)) and c.arena_bytes > 0
    micro = tflm.Interpreter.from_bytes(model, arena_size=c.arena_bytes)
    details = micro.get_input_details(0)
    assert details["dtype"] == np.int8 and tuple(details["shape"]) == (1, WINDOW, 6)
    micro.set_input(np.zeros(details["shape"], np.int8), 0)
    micro.invoke()
    assert micro.get_output(0).shape == (1, len(TINY_CLASSES))


def test_forest_trains_on_window_statistics(fold):
    from bench.peers.forest import features

    c = _peer("forest", fold)
    pred = _runs_on_the_test_windows(c, fold)
    assert features(fold.test.x[:2]).shape == (2, 34)
    assert np.mean(pred == fold.test.y) > 1 / len(TINY_CLASSES)  # real data, three distinct exercises
    assert c.params > 2 * TINY.forest_trees and c.workload.elementwise > 0 and c.arena_bytes is None


def test_onnx_l2mu_matches_the_torch_model_it_was_exported_from(fold):
    from training.checkpoint import load_model
    from training.loop import predict_counts
    from training.run_dir import open_run

    c = _peer("onnx_l2mu", fold)
    pred = _runs_on_the_test_windows(c, fold)
    torch_pred = predict_counts(load_model(open_run(fold.l2mu_run)), fold.test.x).argmax(1)
    assert np.mean(pred == torch_pred) >= 0.99
    assert (fold.workdir / "l2mu_window.onnx").stat().st_size == c.model_bytes


def test_ratio_of_ours_to_the_best_peer_points_the_right_way():
    from bench.summary import ratios

    def model(key, ours, acc, latency, macs):
        return {"key": key, "label": key, "runtime": "r", "ours": ours, "accuracy": acc, "latency_median_us": latency,
                "macs": macs}

    rows = {r["column"]: r for r in ratios([model("l2mu_int8_litert", True, 0.8, 100.0, 50.0),
                                            model("a", False, 0.9, 400.0, 200.0), model("b", False, 0.6, 50.0, 0.0)])}
    assert rows["accuracy"]["best_peer"] == "a" and rows["accuracy"]["outcome"] == "loss"
    assert rows["accuracy"]["ratio"] == pytest.approx(0.8 / 0.9)
    assert rows["latency_median_us"]["best_peer"] == "b" and rows["latency_median_us"]["factor"] == pytest.approx(2.0)
    assert rows["latency_median_us"]["outcome"] == "loss"
    assert rows["macs"]["best_peer"] == "a" and rows["macs"]["outcome"] == "win"  # b has no MACs: not in MAC columns
