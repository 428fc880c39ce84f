"""`har train --stream` on a tiny real slice of the bundled watch data: it trains, its state is never reset inside a
stream (in evaluation and in `har live`), its contract says one lane, and `har live --replay` steps once per sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console
from step_model_fixture import SMALL
from typer.testing import CliRunner

from conftest import TINY_CLASSES, TINY_TEST_SUBJECT
from deploy.contract import build_contract
from deploy.har_contract import STREAM_RESET_RULE, ContractError, contract_from_dict
from har_app.cli import app
from har_app.live.backends import TorchStep
from har_app.live.merge import ModelSample
from har_app.live.stream_runner import StreamRunner
from training.checkpoint import load_model
from training.run_dir import open_run
from training.sources import load_dataset
from training.windowing import resample

STRETCH = 120


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory) -> Path:
    """The tiny model of tests/conftest.py trained as a stream run (5 windowed epochs, then 3 stream epochs on 6 s
    stretches, 20 decisions (4 stretches) per batch, one torch thread) and compressed as `har train --stream
    --compress int8` does: pruned to 50 % (2 fine-tuning epochs), int8 calibrated on 16 windows, integer stage."""
    from har_app.train_job import run_train_job
    from training.pipeline import TrainRequest

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    req = TrainRequest(subjects=["3", "4", "5", "6"], activities=TINY_CLASSES, test_subjects=[TINY_TEST_SUBJECT],
                       val_subjects=["3"], epochs=5, lr=1e-2, batch_size=20, model=SMALL,
                       runs_dir=tmp_path_factory.mktemp("stream-runs"), name="tiny-stream", stream=True,
                       stream_settings={"stretch": STRETCH, "finetune_epochs": 3, "finetune_lr": 2e-3},
                       compress="int8", sparsity=0.5, finetune_epochs=2, calibration_windows=16)
    try:
        result = run_train_job(req, Console(stderr=True, quiet=True))
    finally:
        torch.set_num_threads(threads)
    return Path(result["run_dir"])


def never_reset_counts(model, z: np.ndarray, window: int) -> np.ndarray:
    """Reference: `step` from the zero state over the whole stream z (n, 6), never reset; at every sample the output
    spikes summed over the last `window` steps (n, C)."""
    state, spikes = model.initial_state(1), []
    with torch.no_grad():
        for x in z:
            s_o, state = model.step(torch.from_numpy(x)[None], state)
            spikes.append(s_o[0].numpy())
    c = np.cumsum(np.concatenate([np.zeros((1, model.cfg.n_classes)), spikes]), 0)
    return np.array([c[t + 1] - c[max(0, t + 1 - window)] for t in range(len(z))])


def windowed_counts(model, z: np.ndarray, window: int, ends: list[int]) -> np.ndarray:
    """What a model reset at every window would count: the window ending at each t of `ends` from the zero state."""
    with torch.no_grad():
        return np.array([model(torch.from_numpy(z[t + 1 - window : t + 1])[None])[0].numpy() for t in ends])


def test_stream_run_trains_and_reports_every_hop(stream_run):
    run = open_run(stream_run)
    assert run.config["data"]["stream"] is True and run.stream
    assert run.config["stream_settings"]["stretch"] == STRETCH
    metrics = json.loads((stream_run / "metrics.json").read_text())
    assert metrics["training"]["best_epoch"] >= 1
    history = json.loads((stream_run / "history.json").read_text())["epochs"]
    assert all(np.isfinite(e["val_loss"]) and e["val_loss"] > 0 for e in history)
    phases = [e["phase"] for e in history]  # windowed training first, then the stream fine-tune, numbered on
    assert phases == sorted(phases, key=["windows", "streams"].index) and phases[-1] == "streams"
    assert [e["epoch"] for e in history] == list(range(1, len(history) + 1))
    recs = load_dataset("seglearn", TINY_CLASSES).only_subjects([TINY_TEST_SUBJECT]).recordings
    n = sum(len(resample(r.samples, r.fs_hz, run.fs_hz)) for r in recs)
    hops = len(range(run.window, n + 1, run.hop))  # decisions at t + 1 = window, window + hop, ... <= n
    fl = metrics["stages"]["float"]
    assert fl["windows"] == hops
    assert 0.0 <= fl["accuracy"] <= 1.0 and 0.0 <= fl["accuracy_every_sample"] <= 1.0
    assert np.array(fl["confusion_matrix"]).sum() == hops


def test_evaluation_never_resets_the_state_inside_a_stream(stream_run):
    from training.streaming import build_streams, stream_counts

    run = open_run(stream_run)
    model = load_model(run).eval()
    dataset = load_dataset("seglearn", TINY_CLASSES)
    stream = build_streams(dataset, run.fs_hz, [TINY_TEST_SUBJECT])[0]
    assert len(stream.changes) > 2 and stream.y[stream.changes[1]] != stream.y[0]  # activities joined, interleaved
    z = run.normalization.apply(stream.x[: stream.changes[2]])  # two recordings: the state crosses a boundary
    counts, _ = stream_counts(model, [z], run.window)
    carried = never_reset_counts(model, z, run.window)
    np.testing.assert_array_equal(counts[0], carried)
    ends = list(range(run.window - 1, len(z), run.hop))
    fresh = windowed_counts(model, z, run.window, ends)
    assert (np.abs(carried[ends] - fresh).sum(1) > 0).mean() > 0.2  # resetting per window would change many
    assert carried[ends].sum() > len(ends)  # the output population spikes, so the comparisons mean something


def test_live_runner_keeps_one_state_through_a_recording(stream_run):
    run = open_run(stream_run)
    model = load_model(run).eval()
    rec = load_dataset("seglearn", TINY_CLASSES).only_subjects([TINY_TEST_SUBJECT]).recordings[0]
    x = resample(rec.samples, rec.fs_hz, run.fs_hz)
    runner = StreamRunner([TorchStep(model)], run.window, run.hop, run.normalization.apply)
    decisions = {}
    for t, xt in enumerate(x):
        d = runner.push(ModelSample(t / run.fs_hz, xt, rec.label, t == 0))
        if d is not None:
            decisions[t] = d
    assert sorted(decisions) == list(range(run.window - 1, len(x), run.hop))
    assert runner.resets == 1 and runner.times.count == len(x)  # one step per sample, reset only at the start
    ends = sorted(decisions)
    carried = never_reset_counts(model, run.normalization.apply(x), run.window)
    live = np.array([decisions[t].counts for t in ends])
    np.testing.assert_array_equal(live, carried[ends])
    # a runner resetting per window would give these counts instead, and fail above
    assert not np.array_equal(live, windowed_counts(model, run.normalization.apply(x), run.window, ends))


def test_contract_of_a_stream_run_says_one_lane(stream_run):
    contract = build_contract(open_run(stream_run))
    assert contract.lanes == 1 and contract.reset_rule == STREAM_RESET_RULE
    d = json.loads(contract.to_json())
    assert contract_from_dict(d) == contract
    with pytest.raises(ContractError, match="lanes"):
        contract_from_dict({**d, "lanes": 2})
    with pytest.raises(ContractError, match="lanes"):  # the windowed rule needs ceil(window / hop) lanes
        contract_from_dict({**d, "reset_rule": "zero-state-per-window"})


def test_live_replay_steps_one_lane_once_per_sample(stream_run):
    result = CliRunner().invoke(app, ["live", "--run", str(stream_run), "--replay", "bundled", "--speed", "0",
                                      "--json", "--backend", "torch"])
    assert result.exit_code == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    start, summary = events[0], events[-1]
    assert start["lanes"] == 1
    assert summary["steps"] == summary["model_samples"] > 0 and summary["lane_resets"] == 1
    n = summary["model_samples"]
    assert summary["decisions"] == len(range(start["window"], n + 1, start["hop"]))
    assert summary["energy_uj_per_decision"]["basis"].endswith(f"x {start['hop']} steps")  # one lane: hop per decision


def test_compressed_stream_run_is_scored_on_one_lane_through_each_stream(stream_run):
    """Every compression stage of a stream run scores the same decisions as the float stage (every hop of the test
    stream), and its LiteRT figure is what stepping the int8 model once through the stream, never reset, gives."""
    from collections import deque

    from ai_edge_litert.interpreter import Interpreter

    from training.streaming import build_streams

    run = open_run(stream_run)
    stages = json.loads((stream_run / "metrics.json").read_text())["stages"]
    hops = stages["float"]["windows"]
    assert stages["pruned"]["windows"] == stages["int8"]["windows"] == stages["integer"]["windows"] == hops
    assert stages["integer"]["engine_bit_exact_counts"] is True
    stream = build_streams(load_dataset("seglearn", TINY_CLASSES), run.fs_hz, [TINY_TEST_SUBJECT])[0]
    it = Interpreter(model_content=(stream_run / "model_int8.tflite").read_bytes())
    step = it.get_signature_runner("step")
    (s_in, z_in) = step.get_input_details()["x_t"]["quantization"]
    (s_out, z_out) = step.get_output_details()["spikes"]["quantization"]
    recent, correct, decisions = deque(maxlen=run.window), 0, 0
    for t, z in enumerate(run.normalization.apply(stream.x)):
        q = np.clip(np.round(z / s_in + z_in), -128, 127).astype(np.int8)[None]
        recent.append(s_out * (step(x_t=q)["spikes"][0].astype(np.float32) - z_out) > 0.5)
        if t + 1 >= run.window and (t + 1) % run.hop == 0:
            decisions += 1
            correct += int(np.argmax(np.sum(recent, 0)) == stream.y[t])
    assert decisions == hops
    assert stages["int8"]["accuracy_litert"] == pytest.approx(correct / decisions)


def test_a_fine_tune_keeps_its_start_unless_an_epoch_beats_it(tiny_run):
    """run_epochs with the starting weights' validation accuracy: epochs that do not beat it leave the weights as
    they were (best_epoch 0); without it the first epoch's weights are kept."""
    from training.loop import run_epochs
    from training.train_config import TrainConfig

    def fine_tune(start: float):
        model = load_model(open_run(tiny_run))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        x = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 40, 6)).astype(np.float32))
        y = torch.arange(8) % model.cfg.n_classes

        def train_epoch(opt):
            loss = (torch.nn.functional.cross_entropy(model(x), y)
                    + 1e-3 * sum(p.square().sum() for p in model.parameters()))  # every weight gets a gradient
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.item(), 0.0

        hist = run_epochs(model, TrainConfig(epochs=2, lr=1e-2, patience=2), train_epoch, lambda: (1.0, 0.5),
                          start_val_accuracy=start)
        changed = any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        return hist, changed

    kept, changed = fine_tune(0.6)
    assert kept.best_epoch == 0 and kept.best_val_accuracy == 0.6 and not changed
    replaced, changed = fine_tune(-1.0)
    assert replaced.best_epoch == 1 and changed
