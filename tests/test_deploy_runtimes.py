"""The int8 step model of a real `har train --compress int8` run: resetting through the `zero_state` signature
(LiteRT) and reset() (TFLM) gives exactly what a fresh interpreter gives, the flatbuffer reader sees what the
runtimes see, and a model TFLM cannot run is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import fresh_litert_counts
from deploy.parity import held_out_windows
from deploy.step_runtimes import LiteRTStep, TFLMStep, window_counts
from deploy.tflite_model import inspect_step_model
from deploy.tflm_ops import require_tflm_ops
from training.errors import HarError
from training.run_dir import open_run


@pytest.fixture(scope="module")
def model_windows(int8_run) -> tuple[bytes, np.ndarray]:
    run = open_run(int8_run)
    raw, _ = held_out_windows(run, 12)
    return (int8_run / "model_int8.tflite").read_bytes(), run.normalization.apply(raw)


def test_zero_state_signature_gives_a_fresh_interpreters_counts(model_windows):
    model, z = model_windows
    fresh = fresh_litert_counts(model, z)
    litert = LiteRTStep(model)
    assert np.array_equal(window_counts(litert, z), fresh)
    carried = np.array([sum(litert.step(x) for x in window) for window in z])  # no reset: the state carries over
    assert not np.array_equal(carried, fresh)  # so the comparison above would catch a reset that does nothing


def test_tflm_reset_gives_a_fresh_interpreters_counts(model_windows):
    model, z = model_windows
    fresh = np.array([window_counts(TFLMStep(model), window[None])[0] for window in z])
    assert np.array_equal(window_counts(TFLMStep(model), z), fresh)


def test_reader_sees_the_step_subgraph_litert_runs(model_windows):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from tflite_micro.python.tflite_micro.runtime import count_resource_variables

    model, _ = model_windows
    info = inspect_step_model(model)
    it = Interpreter(model_content=model,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    ops = it._get_ops_details()  # subgraph 0, the step, without delegate partitions
    assert info.signatures == ("step", "zero_state") and info.main_operators == len(ops)
    assert set(info.ops) >= {op["op_name"] for op in ops} and "FULLY_CONNECTED" in info.ops
    step = it.get_signature_runner("step")
    x_t, spikes = step.get_input_details()["x_t"], step.get_output_details()["spikes"]
    assert (info.input_quant.scale, info.input_quant.zero_point) == pytest.approx(x_t["quantization"])
    assert (info.output_quant.scale, info.output_quant.zero_point) == pytest.approx(spikes["quantization"])
    assert info.input_shape == (1, 6) and info.output_shape == tuple(spikes["shape"])
    assert len(info.states) == count_resource_variables(model)
    assert {s.name for s in info.states} >= {"mem_u", "mem_m", "mem_h", "mem_out"}


@pytest.mark.parametrize("cut", [None, 200])
def test_a_damaged_model_is_one_error(model_windows, cut):
    data = b"not a model at all" if cut is None else model_windows[0][:cut]
    with pytest.raises(HarError) as exc:
        inspect_step_model(data)
    assert exc.value.exit_code == 1 and "\n" not in str(exc.value)


def test_ops_tflm_lacks_are_named():
    with pytest.raises(HarError, match="no kernel for REDUCE_PROD") as exc:
        require_tflm_ops(["FULLY_CONNECTED", "REDUCE_PROD"])
    assert exc.value.exit_code == 3


def test_a_graph_xnnpack_refuses_runs_on_the_builtin_kernels(model_windows):
    """A memory population that never fires during calibration, read through nonzero E_m weights, gives E_m s_m an
    output range of zero; XNNPACK refuses the requantisation scale that follows (a trained model of the tuned
    default did this on one bench fold and `har train --compress int8` crashed). LiteRT must still run it, on its
    builtin kernels, and decide as TFLM does; a model XNNPACK accepts keeps XNNPACK."""
    import torch

    from step_model_fixture import SMALL, build_int8_step_model, seeded_l2mu

    silent_m = {**SMALL["neuron_params"], "m": (0.2, 5.0)}  # a threshold no memory membrane reaches here
    model = seeded_l2mu(3, **{**SMALL, "neuron_params": silent_m})
    with torch.no_grad():
        model.e_m.weight.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(0))
    z = np.random.default_rng(1).normal(size=(16, 40, 6)).astype(np.float32)
    refused = build_int8_step_model(model, z)
    litert = LiteRTStep(refused)
    assert litert.kernels == "builtin"
    counts = window_counts(litert, z)
    assert counts.sum() > 0 and np.array_equal(counts.argmax(1), window_counts(TFLMStep(refused), z).argmax(1))
    assert LiteRTStep(model_windows[0]).kernels == "XNNPACK"
