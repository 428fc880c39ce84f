"""Step-model backends. Choosing a backend and refusing a model that breaks the contract use the real int8 step
model of a `har train --compress int8` run; the state tests (reset, lanes, reset_all_variables) use the same int8
L2MU step graph for a seeded untrained model (tests/step_model_fixture.py), whose output population fires on these
inputs (checked below), whereas the tiny trained run may emit no output spike at all on some seeds."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from step_model_fixture import reference_spikes

from har_app.live.backends import INT8_MODEL, LiteRTStep, TorchStep, choose_backend, open_lanes
from training.errors import HarError
from training.run_dir import open_run


def stream(step, x: np.ndarray) -> np.ndarray:
    return np.array([step.step(z) for z in x])


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(7).normal(size=(3, 40, 6)).astype(np.float32)


def test_litert_step_follows_the_float_network(int8_step_model, inputs):
    model, float_model = int8_step_model
    lane = LiteRTStep(model)
    agree, total_spikes = [], 0
    for seq in inputs:
        lane.reset()
        got = stream(lane, seq)
        want = reference_spikes(float_model, seq)
        assert set(np.unique(got)) <= {0.0, 1.0}
        agree.append((got == want).mean())
        total_spikes += got.sum()
    assert total_spikes > 0
    assert np.mean(agree) > 0.85  # int8 flips a few spikes near the threshold (docs/toolchain.md)


def test_litert_reset_returns_to_the_zero_state(int8_step_model, inputs):
    model, _ = int8_step_model
    fresh = stream(LiteRTStep(model), inputs[0])
    lane = LiteRTStep(model)
    stream(lane, inputs[1])  # leave some state behind
    carried = stream(lane, inputs[0])
    lane.reset()
    again = stream(lane, inputs[0])
    np.testing.assert_array_equal(again, fresh)
    assert not np.array_equal(carried, fresh)  # the state is real: without a reset the same input differs


def test_litert_reset_all_variables_keeps_resource_state(int8_step_model, inputs):
    # Why the contract's step model has a `zero_state` signature: ai-edge-litert 2.3.0's reset_all_variables() does
    # not touch resource variables. If this starts failing, LiteRT fixed it.
    model, _ = int8_step_model
    it = Interpreter(model_content=model)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scale, zero = inp["quantization"]

    def run(seq):
        res = []
        for z in seq:
            it.set_tensor(inp["index"], np.clip(np.round(z[None] / scale + zero), -128, 127).astype(np.int8))
            it.invoke()
            res.append(it.get_tensor(out["index"]).copy())
        return np.array(res)

    first = run(inputs[0])
    run(inputs[1])
    it.reset_all_variables()
    assert not np.array_equal(run(inputs[0]), first)


def test_lanes_are_independent(int8_step_model, inputs):
    model, _ = int8_step_model
    a, b = LiteRTStep(model), LiteRTStep(model)
    solo = stream(LiteRTStep(model), inputs[0])
    out_a = []
    for za, zb in zip(inputs[0], inputs[2]):
        out_a.append(a.step(za))
        b.step(zb)
    np.testing.assert_array_equal(np.array(out_a), solo)


def test_backend_choice(tiny_run, tmp_path, int8_run):
    messages = []
    run = open_run(tiny_run)
    assert choose_backend(run, None, messages.append) == "torch" and INT8_MODEL in messages[0]
    with pytest.raises(HarError, match="compress int8"):
        choose_backend(run, "litert", messages.append)
    assert choose_backend(run, "torch", messages.append) == "torch"
    copy = shutil.copytree(tiny_run, tmp_path / "run")
    (copy / INT8_MODEL).write_bytes((int8_run / INT8_MODEL).read_bytes())
    run = open_run(copy)
    assert choose_backend(run, None, messages.append) == "litert" and len(messages) == 1
    lanes = open_lanes(run, "litert", 2)
    assert len(lanes) == 2 and all(isinstance(lane, LiteRTStep) for lane in lanes)
    assert all(isinstance(lane, TorchStep) for lane in open_lanes(run, "torch", 2))


def test_the_integer_engine_is_the_default_where_a_compiler_is_present(int8_run, monkeypatch):
    """A run with its integer stage runs on the C engine by default; with no C compiler on PATH (CC unset), on its
    int8 step model on LiteRT."""
    from deploy.integer.host import compiler

    run = open_run(int8_run)
    assert "integer" in run.metrics["stages"] and compiler() is not None
    assert choose_backend(run, None, print) == "native"
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    assert compiler() is None and choose_backend(run, None, print) == "litert"


def test_a_tflite_that_breaks_the_contract_is_refused(int8_run, tmp_path):
    copy = shutil.copytree(int8_run, tmp_path / "run")
    run = open_run(copy)
    run.config["data"]["classes"] = ["a", "b"]  # the model has 3 outputs
    with pytest.raises(HarError, match="3 outputs; this run has 2 classes"):
        open_lanes(run, "litert", 2)
    (copy / INT8_MODEL).write_bytes(b"not a flatbuffer")
    with pytest.raises(HarError, match="not a valid"):
        open_lanes(open_run(copy), "litert", 2)
