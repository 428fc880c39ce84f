"""The TensorFlow twin of the step gives the torch model's spike trains, and membranes within 1e-5."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import POPULATIONS, L2MUConfig
from training.l2mu import L2MU, numpy_weights


def _torch_trace(model: L2MU, window: np.ndarray) -> list[dict]:
    state, trace = model.initial_state(1), []
    with torch.no_grad():
        for x_t in window:
            _, state = model.step(torch.from_numpy(x_t[None]), state)
            trace.append({k: v[0].numpy().copy() for k, v in state.items()})
    return trace


@pytest.mark.parametrize("neuron, learn", [("leaky", False), ("synaptic", False), ("leaky", True)])
def test_torch_and_tf_step_agree(neuron, learn):
    from deploy.tf_twin import StepModule, run_windows

    torch.manual_seed(1)
    cfg = L2MUConfig(n_classes=5, neuron=neuron, hidden_size=24, memory_size=6, order=3, learn_neuron_params=learn)
    model = L2MU(cfg).eval()
    if learn:  # learned per-population constants must reach the twin too
        with torch.no_grad():
            for pop in POPULATIONS:
                model.lif[pop].beta.mul_(0.9)
                model.lif[pop].threshold.add_(0.05)
    x = (np.random.default_rng(2).normal(size=(3, 30, 6)) * 1.5).astype(np.float32)
    module = StepModule(cfg, numpy_weights(model))
    _, tf_traces = run_windows(module, x, record=True)
    spikes_seen = 0
    for window, tf_trace in zip(x, tf_traces):
        for t_state, tf_state in zip(_torch_trace(model, window), tf_trace):
            for key, value in tf_state.items():
                if key == "spk_out":
                    assert np.array_equal(value, t_state["spk_out"])
                    continue
                assert np.abs(value - t_state[key]).max() < 1e-5, key
                kind, pop = key.split("_", 1)
                if kind != "mem":
                    continue
                threshold = module.params[pop].threshold
                assert np.array_equal((value > threshold).astype(np.float32), t_state[f"spk_{pop}"]), pop
            spikes_seen += sum(t_state[f"spk_{p}"].sum() for p in POPULATIONS)
    assert spikes_seen > 100  # the comparison covers real spiking activity
