"""`har train` end to end on a slice of the bundled real watch data, and its bad-input behaviour."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from cli import assert_one_line_error, har, json_out
from safetensors.numpy import load_file
from wisdm_fixture import write_wisdm

SLICE = ["--subjects", "3,4,5,6", "--activities", "PEN,ABD,FEL", "--test-subjects", "4", "--val-subjects", "3",
         "--epochs", "2", "--hidden", "8", "--memory", "4", "--batch-size", "32"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return json_out(har("train", *SLICE, "--runs-dir", str(runs), "--name", "slice", "--json")), runs


def _png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_train_json_has_the_documented_keys(trained):
    result, runs = trained
    assert result["run_dir"].startswith(str(runs)) and result["run_dir"].endswith("-slice")
    ds = result["dataset"]
    assert (ds["name"], ds["classes"], ds["fs_hz"], ds["window"], ds["test_subjects"]) == (
        "seglearn-watch", ["PEN", "ABD", "FEL"], 20.0, 40, ["4"])
    assert result["model"]["neuron"] == "leaky" and result["model"]["params"] > 0
    fl = result["stages"]["float"]
    cm = np.array(fl["confusion_matrix"])
    assert fl["accuracy"] == pytest.approx(np.trace(cm) / cm.sum())
    assert fl["macro_f1"] == pytest.approx(np.mean(list(fl["per_class_f1"].values())))
    assert 0.0 < fl["activation_sparsity"] < 1.0
    assert fl["synops_per_window"] == pytest.approx(fl["effective_macs_per_window"] + fl["effective_acs_per_window"])
    assert fl["synops_per_window"] <= fl["dense_ops_per_window"]
    assert sum(map(sum, fl["confusion_matrix"])) == fl["windows"]


def test_run_directory_holds_every_artifact(trained):
    result, _ = trained
    from pathlib import Path

    run = Path(result["run_dir"])
    for name in ("config.json", "weights.safetensors", "normalization.json", "metrics.json", "history.json",
                 "README.md", "confusion_matrix.png", "training_curves.png", "spike_raster.png"):
        assert (run / name).stat().st_size > 0, name
    assert json.loads((run / "metrics.json").read_text()) == result
    config = json.loads((run / "config.json").read_text())
    assert config["split"]["test"] == ["4"] and config["train"]["seed"] == 42
    weights = load_file(str(run / "weights.safetensors"))  # tensors only: nothing is unpickled
    assert weights["w_h.weight"].shape == (8, 8)
    assert len(json.loads((run / "normalization.json").read_text())["mean"]) == 6
    w, h = _png_size(run / "confusion_matrix.png")
    assert w > 100 and h > 100
    card = (run / "README.md").read_text()
    assert card.startswith("---\n") and "test ['4']" in card and "## Limits" in card


def test_the_saved_weights_reproduce_the_reported_accuracy(trained):
    """Reload through the safe loader and recompute test accuracy independently of the training code."""
    from pathlib import Path

    import numpy as np
    import torch

    from training.checkpoint import load_model
    from training.run_dir import open_run
    from training.sources import load_dataset
    from training.windowing import make_windows

    result, _ = trained
    run = open_run(Path(result["run_dir"]))
    data = load_dataset("seglearn", ["PEN", "ABD", "FEL"]).only_subjects(["4"])
    w = make_windows(data, 20.0, 40, 20)
    counts = load_model(run)(torch.from_numpy(run.normalization.apply(w.x))).detach().numpy()
    assert np.mean(counts.argmax(1) == w.y) == pytest.approx(result["stages"]["float"]["accuracy"])


def test_cross_validation_reports_mean_and_std(tmp_path):
    result = json_out(har("train", "--subjects", "3,4,5,6", "--activities", "PEN,ABD", "--epochs", "1",
                          "--hidden", "8", "--memory", "4", "--cv", "2", "--runs-dir", str(tmp_path), "--json"))
    cv = result["cv"]
    assert cv["k"] == 2 and cv["folds_run"] == 2
    tested = sorted(s for f in cv["folds"] for s in f["test_subjects"])
    assert tested == ["3", "4", "5", "6"]
    accs = [f["accuracy"] for f in cv["folds"]]
    assert cv["accuracy_mean"] == pytest.approx(sum(accs) / 2)


@pytest.mark.parametrize("args, code, fragment", [
    (["--data", "wisdm:/nonexistent/wisdm"], 2, "data path not found: /nonexistent/wisdm"),
    (["--data", "csv:/nonexistent"], 2, "data path not found"),
    (["--data", "parquet:x"], 2, "unknown data source"),
    (["--activities", "PEN,JUMP"], 2, "unknown activities JUMP"),
    (["--activities", "PEN"], 2, "need at least two classes"),
    (["--window", "5000"], 2, "longer than every recording"),
    (["--subjects", "1,99"], 2, "unknown subjects 99"),
    (["--sparsity", "1.5"], 2, "--sparsity must be in [0, 1)"),
    (["--hidden", "0"], 2, "hidden_size must be >= 1, got 0"),
])
def test_bad_input_is_one_line_and_a_usage_exit_code(tmp_path, args, code, fragment):
    assert_one_line_error(har("train", *args, "--runs-dir", str(tmp_path)), code, fragment)


def test_unknown_wisdm_activity_codes_are_named(tmp_path):
    write_wisdm(tmp_path / "wisdm")
    assert_one_line_error(har("train", "--data", f"wisdm:{tmp_path / 'wisdm'}", "--activities", "P,X",
                              "--runs-dir", str(tmp_path)), 2, "unknown WISDM activity codes X")


def test_wisdm_with_malformed_lines_trains_and_reports_the_skipped_count(tmp_path):
    written = write_wisdm(tmp_path / "wisdm")
    proc = har("train", "--data", f"wisdm:{tmp_path / 'wisdm'}", "--activities", "P,O", "--window", "20",
               "--hop", "10", "--test-subjects", "1600", "--val-subjects", "1601", "--epochs", "1", "--hidden", "4",
               "--memory", "2", "--runs-dir", str(tmp_path), "--json")
    result = json_out(proc)
    assert f"skipped {written['malformed']} malformed lines" in proc.stderr
    assert result["dataset"]["skipped_lines"] == written["malformed"] == 15
    assert result["dataset"]["classes"] == ["dribbling", "playing_catch"]
