"""Operation counts of one L2MU time step (dense, as int8 kernels execute it), from the config sizes alone.

The counts follow the network description (training/network.py) as its exported graph runs it (deploy/tf_twin.py):
every matrix product is one int8 FULLY_CONNECTED run densely (TFLM and LiteRT have no sparse kernels, so pruned
zeros still cost a MAC), the per-channel input gains one elementwise MUL, and every LIF population costs a fixed
number of elementwise operations per neuron. No torch import.
"""

from __future__ import annotations

from collections import Counter

from training.config import L2MUConfig
from training.network import describe

# Per neuron and step, leaky LIF as exported: R = H(U[t-1] - thr) (sub, greater, select), U = b U[t-1] + I - R thr
# (mul, add, mul, sub), S = H(U - thr) (sub, greater, select): 10 elementwise ops. Synaptic adds I_syn = a I_syn + I.
LIF_ELEMENTWISE = {"leaky": 10, "synaptic": 12}
RECOMPUTED_SPIKE_OPS = 3  # s[t-1] = H(U[t-1] - thr) for the fed-back h and m populations: sub, greater, select


def weight_macs(cfg: L2MUConfig) -> dict[str, int]:
    """int8 multiply-accumulates of each matrix product in one step (training/network.py): rows x columns of each
    weight matrix, the shared A_bar, B_bar blocks once per memory channel and together as one product "a_b_bar"."""
    net = describe(cfg)
    return {name: sum(net.macs(s) for s in group) for name, group in net.products().items()}


def step_ops(model_config: dict) -> dict:
    """Op counts of one step: `macs` (int8 weight MACs), `elementwise` (LIF updates, sums of currents, biases),
    `weights` (MACs per matrix), `neurons`, `parameters` (weight and bias values) and `ops` (graph operators,
    approximate: one per matrix and per elementwise operation kind of each population)."""
    cfg = L2MUConfig.from_dict(model_config)
    net = describe(cfg)
    sizes = net.sizes()
    macs = weight_macs(cfg)
    neurons = sum(sizes.values())
    per_neuron = LIF_ELEMENTWISE[cfg.neuron]
    biases = net.bias_count()
    # a population fed by k products sums k currents: k - 1 adds per neuron (u and h: three terms)
    extra_terms = {pop: k - 1 for pop, k in Counter(group[0].target for group in net.products().values()).items()}
    current_sums = sum(sizes[pop] * n for pop, n in extra_terms.items())
    fed_back = net.fed_back()
    elementwise = (neurons * per_neuron + biases + current_sums
                   + RECOMPUTED_SPIKE_OPS * sum(sizes[pop] for pop in fed_back))
    ops = len(macs) + len(sizes) * per_neuron + sum(extra_terms.values()) + len(fed_back) * RECOMPUTED_SPIKE_OPS
    return {"macs": sum(macs.values()), "elementwise": elementwise, "ops": ops, "weights": macs,
            "neurons": neurons, "parameters": net.parameter_count()}
