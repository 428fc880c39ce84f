"""The L2MU step: Legendre matrices, a hand-computed two-step example, and step-versus-window equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.config import L2MUConfig
from training.l2mu import L2MU
from training.legendre import legendre_system, zoh_legendre


def test_legendre_system_order_4_matches_the_reference():
    a, b = legendre_system(4)
    assert a.tolist() == [[-1, -1, -1, -1], [3, -3, -3, -3], [-5, 5, -5, -5], [7, -7, 7, -7]]
    assert b.tolist() == [1, -3, 5, -7]


def test_zoh_discretisation_matches_the_reference_test_vector():
    a_bar, b_bar = zoh_legendre(4, 7.0)
    assert np.allclose(a_bar[0], [0.852, -0.116, -0.096, -0.034], atol=1e-3)
    assert np.allclose(b_bar, [0.148, -0.348, 0.482, -0.238], atol=1e-3)
    assert max(abs(np.linalg.eigvals(a_bar))) == pytest.approx(0.632, abs=1e-3)
    a, b = legendre_system(4)
    assert np.allclose(b_bar, np.linalg.solve(a, (a_bar - np.eye(4)) @ b))  # B_bar = A^-1 (A_bar - I) B


def _hand_model() -> L2MU:
    """One neuron per population (P=E=O=M=d=H=1), two classes, every population beta = 0.5, threshold = 1."""
    cfg = L2MUConfig(n_classes=2, pop_per_channel=1, encoder_size=1, encoder_out=1, memory_size=1, order=1,
                     hidden_size=1, learn_neuron_params=False, neuron_params={p: (0.5, 1.0) for p in
                                                  ("channel", "encoder", "decoder", "u", "m", "h", "out")})
    m = L2MU(cfg)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.channel_weight[0, 0] = 4.0  # model channel 0 = acc_x
        m.encoder.weight[0, 0] = 2.0
        m.decoder.weight[0, 0] = 2.0
        m.e_x.weight[0, 0], m.e_h.weight[0, 0], m.e_m.weight[0, 0] = 2.0, 0.25, 0.5
        m.w_x.weight[0, 0], m.w_h.weight[0, 0], m.w_m.weight[0, 0] = 0.5, 0.4, 2.0
        m.out.weight[:, 0] = torch.tensor([2.0, 0.5])
        m.out.bias[:] = torch.tensor([0.0, 0.2])
        m.A_bar.fill_(0.5)
        m.B_bar.fill_(1.5)
    return m


def test_two_steps_match_a_hand_computed_example():
    m = _hand_model()
    state = m.initial_state(1)
    # Step 1, x = acc_x 1, all state 0.  U = 0.5 U_prev + I - R thr,  S = H(U - 1)
    s_o, state = m.step(torch.tensor([[1.0, 0, 0, 0, 0, 0]]), state)
    expected_mem_1 = {
        "channel": [4.0, 0, 0, 0, 0, 0],  # I = 4 * 1
        "encoder": [2.0],  # I = 2 * s_ch(1)
        "decoder": [2.0],
        "u": [2.0],  # E_x s_in = 2; s_h, s_m at t-1 are 0
        "m": [1.5],  # A_bar * 0 + B_bar * s_u(1)
        "h": [2.5],  # W_x s_in + W_m s_m = 0.5 + 2
        "out": [2.0, 0.7],  # W_o s_h + b
    }
    for pop, mem in expected_mem_1.items():
        assert state[f"mem_{pop}"][0].tolist() == pytest.approx(mem), pop
    assert s_o[0].tolist() == [1.0, 0.0]
    assert [state[f"spk_{p}"][0, 0].item() for p in ("encoder", "decoder", "u", "m", "h")] == [1.0] * 5
    # Step 2, x = 0. Every neuron that spiked resets by thr = 1.
    s_o, state = m.step(torch.zeros(1, 6), state)
    expected_mem_2 = {
        "channel": [1.0, 0, 0, 0, 0, 0],  # 0.5 * 4 + 0 - 1
        "encoder": [0.0],  # 0.5 * 2 + 2 * s_ch(0) - 1
        "decoder": [0.0],
        "u": [0.75],  # 0.5 * 2 + (E_h s_h(1) + E_m s_m(1) = 0.75) - 1
        "m": [0.25],  # 0.5 * 1.5 + (A_bar s_m(1) + B_bar s_u(0) = 0.5) - 1
        "h": [0.65],  # 0.5 * 2.5 + (W_h s_h(1) = 0.4) - 1
        "out": [0.0, 0.55],  # [0.5 * 2 + 0 - 1, 0.5 * 0.7 + 0.2 - 0]
    }
    for pop, mem in expected_mem_2.items():
        assert state[f"mem_{pop}"][0].tolist() == pytest.approx(mem), pop
    assert s_o[0].tolist() == [0.0, 0.0]
    assert m(torch.tensor([[[1.0, 0, 0, 0, 0, 0], [0] * 6]])).tolist() == [[1.0, 0.0]]


def test_synaptic_neurons_integrate_a_decaying_current():
    cfg = L2MUConfig(n_classes=2, neuron="synaptic", alpha=0.5, pop_per_channel=1, encoder_size=1, encoder_out=1,
                     memory_size=1, order=1, hidden_size=1,
                     neuron_params={p: (0.5, 10.0) for p in ("channel", "encoder", "decoder", "u", "m", "h", "out")})
    m = L2MU(cfg)
    with torch.no_grad():
        m.channel_weight.zero_()
        m.channel_bias.zero_()
        m.channel_weight[0, 0] = 1.0
    state = m.initial_state(1)
    x = torch.tensor([[2.0, 0, 0, 0, 0, 0]])
    _, state = m.step(x, state)  # I_syn = 2, U = 2
    _, state = m.step(torch.zeros(1, 6), state)  # I_syn = 0.5 * 2 + 0 = 1, U = 0.5 * 2 + 1 = 2
    assert state["syn_channel"][0, 0].item() == pytest.approx(1.0)
    assert state["mem_channel"][0, 0].item() == pytest.approx(2.0)


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
def test_window_forward_is_the_loop_over_step(neuron):
    torch.manual_seed(0)
    m = L2MU(L2MUConfig(n_classes=4, neuron=neuron, hidden_size=12, memory_size=3, order=3)).eval()
    x = torch.randn(5, 30, 6) * 2
    counts, trace = m.run(x, record=True)
    state, manual = m.initial_state(5), torch.zeros(5, 4)
    for t in range(30):
        s_o, state = m.step(x[:, t], state)
        manual += s_o
        assert torch.equal(trace["h"][:, t], state["spk_h"])
    assert torch.equal(counts, manual) and torch.equal(m(x), counts)
    assert counts.sum() > 0  # the example actually exercises spiking


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="neuron must be one of"):
        L2MUConfig(n_classes=3, neuron="izhikevich")
    with pytest.raises(ValueError, match="hidden_size must be >= 1, got 0"):
        L2MUConfig(n_classes=3, hidden_size=0)
    with pytest.raises(ValueError, match="population 'u'"):
        L2MUConfig(n_classes=3, neuron_params={**{p: (0.5, 1.0) for p in
                                                  ("channel", "encoder", "decoder", "m", "h", "out")}, "u": (1.5, 1.0)})


def test_current_noise_acts_in_training_only():
    torch.manual_seed(0)
    m = L2MU(L2MUConfig(n_classes=3, hidden_size=8, memory_size=2, current_noise=0.5))
    x = torch.randn(4, 20, 6)
    m.eval()
    quiet = m(x)
    assert torch.equal(quiet, m(x))  # evaluation (and so export) is deterministic
    m.train()
    assert not torch.equal(m(x), quiet)
