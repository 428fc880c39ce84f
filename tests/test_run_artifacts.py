"""The run directory of a real `har train --compress int8` run: every file it holds is one named in training/run_dir.py,
and metrics.json is the JSON form of the typed RunMetrics (read back unchanged; unknown or missing keys refused)."""

from __future__ import annotations

import json

import pytest

from training import run_dir
from training.errors import HarError
from training.run_metrics import RunMetrics

COMPRESSED_RUN = [run_dir.CONFIG, run_dir.WEIGHTS, run_dir.NORMALIZATION, run_dir.HISTORY, run_dir.CONFUSION_PLOT,
                  run_dir.CURVES_PLOT, run_dir.RASTER_PLOT, run_dir.METRICS, run_dir.MODEL_CARD, run_dir.PRUNED_WEIGHTS,
                  run_dir.FP32_MODEL, run_dir.INT8_MODEL, run_dir.INT8_C_SOURCE, run_dir.INT8_C_HEADER,
                  run_dir.QUANTIZATION_REPORT, run_dir.INTEGER_WEIGHTS, run_dir.INTEGER_C_HEADER, run_dir.INTEGER_C_SOURCE]


def test_a_compressed_run_holds_the_named_artifacts_and_nothing_else(int8_run):
    present = {p.name for p in int8_run.iterdir()} - {run_dir.DEPLOY_DIR, run_dir.FIRMWARE_DIR}  # from other tests
    assert present == set(COMPRESSED_RUN)
    assert all((int8_run / name).stat().st_size > 0 for name in COMPRESSED_RUN)


def test_metrics_json_is_the_typed_metrics_json_form(int8_run, tiny_run):
    compressed = json.loads((int8_run / run_dir.METRICS).read_text())
    assert list(compressed["stages"]) == ["float", "pruned", "int8", "integer"]
    assert RunMetrics.from_json(compressed).to_json() == compressed
    trained = json.loads((tiny_run / run_dir.METRICS).read_text())
    assert list(trained["stages"]) == ["float"] and "cv" not in trained
    assert RunMetrics.from_json(trained).to_json() == trained
    int8 = compressed["stages"]["int8"]
    with pytest.raises(HarError, match=r"metrics\.stages\.int8: unknown keys extra"):
        RunMetrics.from_json({**compressed, "stages": {**compressed["stages"], "int8": {**int8, "extra": 1}}}, "metrics")
    with pytest.raises(HarError, match=r"metrics\.stages\.int8\.quantization: missing key input_scale"):
        quantization = {k: v for k, v in int8["quantization"].items() if k != "input_scale"}
        RunMetrics.from_json({**compressed, "stages": {**compressed["stages"],
                                                       "int8": {**int8, "quantization": quantization}}}, "metrics")
