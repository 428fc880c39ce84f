"""`har live` end to end on the bundled test subjects, checked against an independent offline computation."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.signal import resample_poly
from typer.testing import CliRunner

from har_app.cli import app
from har_app.live.backends import INT8_MODEL
from training.checkpoint import load_model
from training.run_dir import open_run
from training.sources import load_dataset


def live(*args: str) -> tuple[int, list[dict], str]:
    result = CliRunner().invoke(app, ["live", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, lines, result.stderr


@pytest.fixture(scope="module")
def torch_events(tiny_run):
    code, events, stderr = live("--run", str(tiny_run), "--replay", "bundled", "--speed", "0", "--json",
                                "--backend", "torch")
    assert code == 0, stderr
    return events


def offline_windows(run):
    """The decision windows computed directly: the test recordings concatenated at 50 Hz, resampled to the model
    rate in one go by scipy, cut every hop, normalised; with each window's majority label."""
    recs = load_dataset("seglearn", run.classes).only_subjects(run.config["split"]["test"]).recordings
    x = np.concatenate([r.samples for r in recs]).astype(np.float64)
    labels = np.concatenate([[run.classes.index(r.label)] * len(r.samples) for r in recs])
    up, down = 2, 5  # 50 Hz -> 20 Hz
    n_model = (len(x) - 1) * up // down + 1  # model-rate samples up to the last received sample
    y = resample_poly(x, up, down, axis=0)[:n_model]
    sample_label = labels[np.floor(np.arange(n_model) * down / up + 0.5).astype(int)]
    starts = np.arange(0, n_model - run.window + 1, run.hop)
    windows = np.stack([run.normalization.apply(y[s : s + run.window]) for s in starts])
    truth = np.array([Counter(sample_label[s : s + run.window]).most_common(1)[0][0] for s in starts])
    return starts, windows, truth


def offline_decisions(run):
    """The offline windows classified by the float model's window forward (L2MU.forward)."""
    starts, windows, truth = offline_windows(run)
    with torch.no_grad():
        pred = load_model(run)(torch.from_numpy(windows)).numpy().argmax(1)
    return starts, pred, truth


def test_live_replay_matches_the_offline_window_forward(tiny_run, torch_events):
    run = open_run(tiny_run)
    starts, pred, truth = offline_decisions(run)
    decisions = [e for e in torch_events if e["event"] == "decision"]
    summary = torch_events[-1]
    assert summary["event"] == "summary" and [e["event"] for e in torch_events].count("summary") == 1
    start = torch_events[0]
    assert start["event"] == "start" and start["classes"] == run.classes and start["backend"] == "torch"
    assert summary["decisions"] == len(decisions) == len(starts)
    np.testing.assert_allclose([d["t_s"] for d in decisions], (starts + run.window - 1) / run.fs_hz, atol=1e-6)
    live_labels = np.array([run.classes.index(d["label"]) for d in decisions])
    assert (live_labels == truth).mean() >= 0.99
    live_pred = np.array([run.classes.index(d["class"]) for d in decisions])
    assert len(set(pred)) == len(run.classes)  # a model that tells the classes apart, so agreement means something
    assert (live_pred == pred).mean() >= 0.95  # the stream's ends see one-sided resampling; spikes near threshold
    offline_accuracy = float((pred == truth).mean())
    assert summary["correct_fraction"] == pytest.approx(float((live_pred == live_labels).mean()))
    assert summary["correct_fraction"] == pytest.approx(offline_accuracy, abs=0.02)


def test_int8_l2mu_on_litert_matches_its_offline_windows(int8_run):
    # The real int8 step model of `har train --compress int8` against the same offline windows run through LiteRT
    # one window at a time (deploy.step_runtimes.window_counts: reset, then step 40 samples).
    from deploy.step_runtimes import LiteRTStep, window_counts

    run = open_run(int8_run)
    code, events, stderr = live("--run", str(int8_run), "--replay", "bundled", "--speed", "0", "--json",
                                "--backend", "litert")
    assert code == 0, stderr
    assert events[0]["backend"] == "litert" and "torch" not in stderr
    starts, windows, truth = offline_windows(run)
    pred = window_counts(LiteRTStep((int8_run / INT8_MODEL).read_bytes()), windows).argmax(1)
    decisions = [e for e in events if e["event"] == "decision"]
    assert len(decisions) == events[-1]["decisions"] == len(starts)
    live_pred = np.array([run.classes.index(d["class"]) for d in decisions])
    assert len(set(pred)) >= 2
    assert (live_pred == pred).mean() >= 0.95
    assert events[-1]["correct_fraction"] == pytest.approx(float((pred == truth).mean()), abs=0.02)


def test_summary_reports_the_stream(tiny_run, torch_events):
    summary = torch_events[-1]
    assert summary["latency_us"]["p50"] > 0 and summary["latency_us"]["p99"] >= summary["latency_us"]["p50"]
    assert set(summary["energy_uj_per_decision"]) >= {"value", "estimate", "basis"}
    assert summary["energy_uj_per_decision"]["estimate"] is True
    assert summary["lost_packets"] == 0 and summary["malformed_packets"] == 0
    assert summary["samples_received"] == summary["samples_expected"] and summary["late_samples"] == 0
    assert summary["steps"] == summary["model_samples"] * 2 - 20  # 2 lanes, the second idle for the first hop
    assert summary["host_cpu_us_per_decision"] > 0 and summary["backend"] == "torch"
    classes = open_run(tiny_run).classes
    for d in (e for e in torch_events if e["event"] == "decision"):  # the decision rule, from the event's own counts
        n = np.array(d["spike_counts"])
        assert d["class"] == classes[int(np.argmax(n))]
        assert d["confidence"] == pytest.approx(n.max() / n.sum() if n.sum() else 0.0, abs=1e-4)


def test_table_output_without_json(tiny_run, tmp_path):
    csv = tmp_path / "short.csv"
    recs = load_dataset("seglearn", ["PEN"]).only_subjects(["4"]).recordings[:1]
    from training.sources.csv_recordings import write_csv_recording

    x = recs[0].samples[:400]
    write_csv_recording(csv, np.arange(len(x)) / 50, x, ["PEN"] * len(x), "4")
    result = CliRunner().invoke(app, ["live", "--run", str(tiny_run), "--replay", str(csv), "--speed", "0",
                                      "--backend", "torch"])
    assert result.exit_code == 0, result.stderr
    assert "decisions" in result.stdout and "correct fraction" in result.stdout
    assert "{" not in result.stdout  # a table, not JSON


@pytest.mark.parametrize("args,message", [
    (["--replay", "bundled", "--ble", "AA:BB"], "exactly one source"),
    ([], "exactly one source"),
    (["--replay", "missing.csv"], "not found"),
    (["--replay", "bundled", "--speed", "-2"], "--speed"),
    (["--ble", "AA:BB", "--speed", "2"], "--speed applies to --replay only"),
    (["--replay", "bundled", "--protocol", "pmd"], "--protocol applies to --ble only"),
    (["--replay", "bundled", "--device", "toaster"], "unknown device"),
])
def test_bad_input_is_one_line_and_exit_2(tiny_run, args, message):
    code, _, stderr = live("--run", str(tiny_run), *args)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr and len(stderr.strip().splitlines()) <= 2


def test_old_profile_spelling_of_protocol_warns_and_still_applies(tiny_run):
    code, _, stderr = live("--run", str(tiny_run), "--replay", "bundled", "--profile", "pmd")
    warning, error = stderr.strip().splitlines()
    assert "deprecated" in warning and "--protocol" in warning
    assert code == 2 and "--protocol applies to --ble only" in error  # the old spelling set the protocol


def test_no_run_is_a_clear_error(tmp_path):
    code, _, stderr = live("--runs-dir", str(tmp_path), "--replay", "bundled")
    assert code == 2 and "har train" in stderr
