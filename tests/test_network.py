"""The network description (training/network.py) against the torch model and the real int8 step graph."""

from __future__ import annotations

from math import prod
from pathlib import Path

import numpy as np
import pytest
import torch

from training.config import L2MUConfig
from training.l2mu import L2MU
from training.network import INPUT, describe

CONFIGS = {
    "default": L2MUConfig(n_classes=7),
    "synaptic, other sizes": L2MUConfig(n_classes=4, neuron="synaptic", pop_per_channel=3, encoder_size=11,
                                        encoder_out=5, memory_size=7, order=3, hidden_size=9),
    "fixed neuron constants": L2MUConfig(n_classes=3, pop_per_channel=2, memory_size=5, order=6, hidden_size=13,
                                         learn_neuron_params=False),
}


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_parameter_count_is_torchs(cfg):
    assert describe(cfg).parameter_count() == L2MU(cfg).parameter_count()


def test_cell_parameter_count_is_the_papers():
    """docs/l2mu.md, "Parameter count": n = 12, H = 120, M = 70, d = 7, C = 7 give a cell of 119,027 parameters
    (the authors' 1.19e5): the trained matrices and biases into u, m, h and out."""
    net = describe(L2MUConfig(n_classes=7, encoder_out=12, hidden_size=120, memory_size=70, order=7))
    shapes = net.tensor_shapes()
    cell = [s for s in net.synapses if s.trained and s.target in ("u", "m", "h", "out")]
    assert sum(prod(shapes[s.weight_key]) + (prod(shapes[s.bias_key]) if s.bias else 0) for s in cell) == 119_027


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_stored_tensor_has_the_described_shape(cfg):
    stored = {key: tuple(w.shape) for key, w in L2MU(cfg).weights().items()}
    assert stored == describe(cfg).tensor_shapes()  # the same tensors, none missing, none extra


@pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_state_step_writes_is_the_described_state(cfg):
    model = L2MU(cfg).eval()
    state = model.initial_state(2)
    with torch.no_grad():
        _, new = model.step(torch.zeros(2, 6), state)
    described = describe(cfg).state(spikes=True)
    assert {k: v.shape[1] for k, v in state.items()} == described
    assert {k: v.shape[1] for k, v in new.items()} == described  # what the equations of `step` produce


def test_fan_out_follows_the_equations():
    """docs/l2mu.md: I_u = E_x s_in + E_h s_h[t-1] + E_m s_m[t-1]; I_m,k = A_bar s_m,k[t-1] + B_bar s_u,k;
    I_h = W_x s_in + W_h s_h[t-1] + W_m s_m; I_o = W_o s_h + b_o."""
    cfg = CONFIGS["synaptic, other sizes"]
    E, O, M, d, H, C = cfg.encoder_size, cfg.encoder_out, cfg.memory_size, cfg.order, cfg.hidden_size, cfg.n_classes
    assert L2MU(cfg).fan_out() == {"channel": (E, 0), "encoder": (O, 0), "decoder": (M + H, 0), "u": (d, 0),
                                   "m": (H, M + d), "h": (C, M + H), "out": (0, 0)}


def _fully_connected(tflite: bytes) -> list[tuple[int, int, int]]:
    """(input rows, weight rows, weight cols) of every FULLY_CONNECTED op of the step subgraph (subgraph 0)."""
    import ai_edge_litert.schema_py_generated as schema

    from deploy.tflite_model import inspect_step_model, read_model

    assert inspect_step_model(tflite).signatures == ("step", "zero_state")  # and `step` is subgraph 0
    model = read_model(tflite)
    graph = model.subgraphs[0]
    found = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) != schema.BuiltinOperator.FULLY_CONNECTED:
            continue
        x, w = (graph.tensors[i].shape.tolist() for i in op.inputs[:2])
        assert len(w) == 2 and x[-1] == w[1]
        found.append((prod(x[:-1]), w[0], w[1]))
    return found


def test_int8_graph_runs_one_fully_connected_per_described_product(int8_run: Path):
    """deploy/tf_twin.py: every dense synapse is one FULLY_CONNECTED on the (1, source) spikes; the per-channel
    gains (I_c = w_c x_c + b_c) are an elementwise MUL, no FULLY_CONNECTED; A_bar and B_bar are one
    FULLY_CONNECTED, their (d, d) and (d, 1) blocks side by side as (d, d + 1) weights, over the M memory channels
    as M input rows of [s_m,k[t-1]; s_u,k]."""
    from training.run_dir import open_run

    cfg = L2MUConfig.from_dict(open_run(int8_run).config["model"])
    net = describe(cfg)
    expected = []
    for group in net.products().values():
        if group[0].form == "per_input":
            continue
        rows = {net.shape(s)[0] for s in group}
        assert len(rows) == 1  # stacked sources: one output block
        batch = net.memory_channels if group[0].form == "per_memory_channel" else 1
        expected.append((batch, rows.pop(), sum(net.shape(s)[1] for s in group)))
    found = _fully_connected((int8_run / "model_int8.tflite").read_bytes())
    assert sorted(found) == sorted(expected)
    assert len(found) == sum(s.form == "dense" for s in net.synapses) + 1  # nine dense matrices and [A_bar B_bar]
    P, E, O, M, d, H, C = (cfg.pop_per_channel, cfg.encoder_size, cfg.encoder_out, cfg.memory_size, cfg.order,
                           cfg.hidden_size, cfg.n_classes)
    weights = 6 * P * E + E * O + (O + H + M * d) * (M + H) + d * (d + 1) + H * C
    assert sum(r * c for _, r, c in found) == weights
    macs = sum(n * r * c for n, r, c in found)
    assert macs == weights - d * (d + 1) + M * d * (d + 1)
    assert macs == sum(net.macs(s) for s in net.synapses if s.source != INPUT)


def test_int8_graph_keeps_the_described_state(int8_run: Path):
    from deploy.tflite_model import inspect_step_model
    from training.run_dir import open_run

    cfg = L2MUConfig.from_dict(open_run(int8_run).config["model"])
    info = inspect_step_model((int8_run / "model_int8.tflite").read_bytes())
    assert {s.name: s.size for s in info.states} == describe(cfg).state(spikes=False)  # membranes, no spikes


def test_a_shared_block_repeats_once_per_memory_channel():
    """A one-column block is stored as a vector (B_bar, (d,)); its full matrix puts B_bar s_u,k into memory channel k."""
    from deploy.integer.quantize import memory_matrices

    cfg = L2MUConfig(n_classes=2, memory_size=3, order=2)
    a, b = memory_matrices(cfg, np.arange(4.0).reshape(2, 2), np.array([5.0, 7.0]))
    assert a.shape == (6, 6) and b.shape == (6, 3)
    assert b[:, 1].tolist() == [0, 0, 5, 7, 0, 0] and a[2:4, 2:4].tolist() == [[0, 1], [2, 3]]
