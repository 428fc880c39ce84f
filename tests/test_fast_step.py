"""The fused window forward (`L2MU.run`, training/l2mu_fused.py) against the reference loop over `step`: the same
spikes and membranes at every step for the same weights and input, and the same gradients for every parameter."""

from __future__ import annotations

import pytest
import torch

from training.config import POPULATIONS, L2MUConfig
from training.l2mu import L2MU, step_loop
from training.run_config import load_run_config
from training.search_space import UNTUNED


def _model(neuron: str) -> L2MU:
    """The untuned configuration (untrained, the tuned default's output population never fires); weights and neuron
    constants moved off their initial values so that every population fires sometimes, E_m is non-zero (it starts
    at zero) and one beta sits above 1, where the clamp cuts its gradient."""
    torch.manual_seed(3)
    m = L2MU(L2MUConfig(n_classes=5, **{**load_run_config(UNTUNED).model, "neuron": neuron}))
    with torch.no_grad():
        m.e_m.weight.normal_(0.0, 0.3)
        for i, pop in enumerate(POPULATIONS):
            m.lif[pop].threshold.mul_(0.8 + 0.05 * i)
            m.lif[pop].beta.add_(0.03 * (i - 3))
        m.lif["u"].beta.fill_(1.2)
    return m


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
def test_fused_run_gives_the_spikes_and_membranes_of_the_step_loop(neuron):
    m = _model(neuron)
    x = torch.randn(6, 40, 6, generator=torch.Generator().manual_seed(0)) * 2.0
    with torch.no_grad():
        spikes, mems = m.trace(x)
        counts, states = m.run(x)[0], step_loop(m, x)[1]
    for pop in POPULATIONS:
        ref_spk = torch.stack([s[f"spk_{pop}"] for s in states], 1)
        ref_mem = torch.stack([s[f"mem_{pop}"] for s in states], 1)
        assert 0.0 < ref_spk.mean() < 1.0, f"{pop} never or always fires: the comparison would be vacuous"
        assert torch.equal(spikes[pop], ref_spk), pop
        torch.testing.assert_close(mems[pop], ref_mem, rtol=1e-5, atol=1e-5, msg=pop)
    assert torch.equal(counts, sum(s["spk_out"] for s in states))


@pytest.mark.parametrize("neuron", ["leaky", "synaptic"])
def test_fused_run_gives_the_gradients_of_the_step_loop(neuron):
    m = _model(neuron)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 40, 6, generator=gen) * 2.0
    weight = torch.randn(6, 5, generator=gen)  # a loss that weighs every output count differently
    params = [p for p in m.parameters() if p.requires_grad]
    fused = torch.autograd.grad((m(x) * weight).sum(), params)
    reference = torch.autograd.grad((step_loop(m, x)[0] * weight).sum(), params)
    names = [n for n, p in m.named_parameters() if p.requires_grad]
    assert "lif.u.beta" in names and "lif.m.threshold" in names
    # A small gradient can be the float32 sum of terms as large as the largest gradient (decoder beta: 2.3 from terms
    # of hundreds), so its summation-order error scales with that: 1e-6 of the largest, on top of each one's own.
    largest = max(ref.abs().max().item() for ref in reference)
    for name, g, ref in zip(names, fused, reference):
        scale = ref.abs().max().item()
        if name == "lif.u.beta":
            assert scale == 0.0  # beta 1.2 is clamped to 1: no gradient
        else:
            assert scale > 0.0, f"{name}: no gradient reaches it, the comparison would be vacuous"
        torch.testing.assert_close(g, ref, rtol=1e-4, atol=1e-5 * max(scale, 1.0) + 1e-6 * largest, msg=name)


def test_fused_run_adds_training_noise_only_in_training():
    m = L2MU(L2MUConfig(n_classes=3, current_noise=0.5))
    x = torch.randn(4, 20, 6, generator=torch.Generator().manual_seed(2))
    m.eval()
    assert torch.equal(m(x), step_loop(m, x)[0])
    m.train()
    torch.manual_seed(0)
    first = m.trace(x)[1]
    torch.manual_seed(1)
    second = m.trace(x)[1]
    assert all(not torch.equal(first[pop], second[pop]) for pop in POPULATIONS)
