"""The integer L2MU specification (deploy/integer/reference.py) and the quantisation of a real pruned run into it."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from deploy.integer.model import InputProjection, IntegerL2MU, Population, Projection, quantize_input
from deploy.integer.quantize import power_of_two_exponent, quantize_l2mu, to_int8
from deploy.integer.reference import leak, run_reference
from training.config import L2MUConfig
from training.errors import HarError
from training.run_dir import open_run


def two_neuron_model(threshold: int = 10) -> IntegerL2MU:
    """One input neuron (beta 0.5, input weight 3) driving one output neuron (beta 0, weight 5 << 1)."""
    a = Population("a", 1, 0, 1 << 14, threshold, np.zeros(1, np.int32))
    b = Population("b", 1, 0, 0, 9, np.array([1], np.int32))
    return IntegerL2MU((a, b), (Projection("b", "a", False, np.array([[5]], np.int8), 1),),
                       InputProjection(np.array([3], np.int8), np.array([0]), 0))


def test_leak_rounds_half_up_with_arithmetic_shift():
    u = np.array([12, 13, -3, -4, 1, -1], np.int64)
    # 0.5 U exactly: 6, 6.5 -> 7, -1.5 -> -1, -2, 0.5 -> 1, -0.5 -> 0
    assert leak(1 << 14, u).tolist() == [6, 7, -1, -2, 1, 0]


def test_reference_steps_by_hand():
    x = np.zeros((1, 3, 6), np.int16)
    x[0, :, 0] = 4  # input current 12 every step
    run = run_reference(two_neuron_model(), x, record=True)
    # a: U1 = 12 > 10 fires; U2 = leak(12) - 10 + 12 = 8; U3 = leak(8) + 12 = 16 fires
    assert run.spikes["a"][0, :, 0].tolist() == [1, 0, 1]
    # b: U = 1 + 10 s_a (beta 0): 11 > 9 fires, then R subtracts 9: 1 - 9 = -8, then 1 - 0 + 10 = 11
    assert run.membranes[0, :, 1].tolist() == [11, -8, 11]
    assert run.counts.tolist() == [[2]]


def test_spike_needs_strictly_more_than_threshold():
    x = np.zeros((1, 1, 6), np.int16)
    x[0, 0, 0] = 4
    assert run_reference(two_neuron_model(threshold=12), x, record=True).spikes["a"][0, 0, 0] == 0


def test_a_membrane_outside_int32_is_an_error():
    x = np.full((1, 1, 6), 32767, np.int16)
    big = two_neuron_model()
    inp = InputProjection(np.array([127], np.int8), np.array([0]), 10)
    with pytest.raises(HarError, match="left int32"):
        run_reference(IntegerL2MU(big.populations, big.projections, inp), x)


def test_input_boundary_rounds_to_nearest_even_and_saturates():
    z = np.array([0.5 / 2048, 1.5 / 2048, -1.0, 100.0, -100.0])
    assert quantize_input(z).tolist() == [0, 2, -2048, 32767, -32768]


def test_power_of_two_scale_uses_the_int8_range_and_keeps_zeros():
    w = np.array([[0.0, 0.3], [-0.9, 0.02]])
    k = power_of_two_exponent(w)
    assert k == 7  # 0.9 * 2^7 = 115 <= 127 < 0.9 * 2^8
    q = to_int8(w, k)
    assert q[0, 0] == 0 and np.abs(q).max() <= 127
    assert np.abs(q / 2.0**k - w).max() <= 2.0 ** -(k + 1)


def test_quantised_run_keeps_its_structure(int8_run):
    run = open_run(int8_run)
    cfg = L2MUConfig.from_dict(run.config["model"])
    weights = load_file(str(int8_run / "weights_pruned.safetensors"))
    model = quantize_l2mu(cfg, weights)
    assert [p.name for p in model.populations] == ["channel", "encoder", "decoder", "u", "m", "h", "out"]
    assert model.n_neurons == sum(cfg.population_sizes().values())
    for q in model.projections:
        assert q.shift >= 0
    w_h = next(q for q in model.projections if q.source == "h" and q.target == "h")
    # pruning survives: every zero float weight is a zero int8 weight
    assert np.all(w_h.weight_q[weights["w_h.weight"] == 0] == 0)
    thr = model.population("h").threshold_q / 2.0 ** model.population("h").frac_bits
    assert thr == pytest.approx(float(weights["lif.h.threshold"]), abs=2.0 ** -model.population("h").frac_bits)


def test_integer_first_layer_spikes_match_float(int8_run):
    """The channel populations see only the input and weight rounding: their first-step spikes match torch."""
    import torch

    from deploy.parity import held_out_windows
    from training.checkpoint import load_model

    run = open_run(int8_run)
    raw, _ = held_out_windows(run, 32)
    z = run.normalization.apply(raw)
    model = quantize_l2mu(L2MUConfig.from_dict(run.config["model"]), load_file(str(int8_run / "weights_pruned.safetensors")))
    ref = run_reference(model, quantize_input(z[:, :1]), record=True)
    net = load_model(run, "weights_pruned.safetensors")
    with torch.inference_mode():
        _, trace = net.run(torch.from_numpy(z[:, :1]), record=True)
    same = np.mean(ref.spikes["channel"][:, 0] == trace["channel"][:, 0].numpy())
    assert same >= 0.98


def test_compress_reports_the_integer_stage_side_by_side(int8_run):
    from deploy.integer.quantize import power_of_two_exponent

    stage = open_run(int8_run).metrics["stages"]["integer"]
    for key in ("accuracy_float", "accuracy_integer_reference", "accuracy_engine", "agreement_integer_with_float"):
        assert 0.0 <= stage[key] <= 1.0
    assert stage["engine_bit_exact_counts"] is True and stage["accuracy_engine"] == stage["accuracy_integer_reference"]
    assert stage["weights"] == "weights_integer.safetensors" and stage["finetune"]["epochs"] >= 1
    # integer-aware fine-tuning leaves every matrix on its int8 grid, still pruned
    tuned = load_file(str(int8_run / "weights_integer.safetensors"))
    pruned = load_file(str(int8_run / "weights_pruned.safetensors"))
    for name in ("encoder.weight", "w_h.weight", "out.weight", "channel_weight"):
        k = power_of_two_exponent(tuned[name])
        assert np.array_equal(tuned[name] * 2.0**k, np.rint(tuned[name] * 2.0**k))
        assert np.all(tuned[name][pruned[name] == 0] == 0)
