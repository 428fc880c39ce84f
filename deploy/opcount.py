"""Operation counts of one L2MU time step (dense, as int8 kernels execute it), from the config sizes alone.

The counts follow the step in training/l2mu.py and its exported graph (deploy/tf_twin.py): every weight matrix is one
int8 FULLY_CONNECTED run densely (TFLM and LiteRT have no sparse kernels, so pruned zeros still cost a MAC), and
every LIF population costs a fixed number of elementwise operations per neuron. No torch import.
"""

from __future__ import annotations

from training.config import L2MUConfig

# Per neuron and step, leaky LIF as exported: R = H(U[t-1] - thr) (sub, greater, select), U = b U[t-1] + I - R thr
# (mul, add, mul, sub), S = H(U - thr) (sub, greater, select): 10 elementwise ops. Synaptic adds I_syn = a I_syn + I.
LIF_ELEMENTWISE = {"leaky": 10, "synaptic": 12}
RECOMPUTED_SPIKE_OPS = 3  # s[t-1] = H(U[t-1] - thr) for the fed-back h and m populations: sub, greater, select


def weight_macs(cfg: L2MUConfig) -> dict[str, int]:
    """int8 multiply-accumulates of each weight matrix in one step (rows x columns)."""
    P, E, O, M, d, H, C = (cfg.pop_per_channel, cfg.encoder_size, cfg.encoder_out, cfg.memory_size, cfg.order,
                           cfg.hidden_size, cfg.n_classes)
    n_in = cfg.channels * P
    return {
        "channel": n_in,  # I_c = w_c x_c + b_c: one multiply per channel neuron
        "encoder": n_in * E,
        "decoder": E * O,
        "e_x": O * M, "e_h": H * M, "e_m": M * d * M,  # I_u = E_x s_in + E_h s_h[t-1] + E_m s_m[t-1]
        "a_b_bar": M * (d + 1) * d,  # I_m,k = [A_bar B_bar] [s_m,k[t-1]; s_u,k]  for k = 1..M
        "w_x": O * H, "w_h": H * H, "w_m": M * d * H,  # I_h = W_x s_in + W_h s_h[t-1] + W_m s_m
        "out": H * C,  # I_o = W_o s_h + b_o
    }


def step_ops(model_config: dict) -> dict:
    """Op counts of one step: `macs` (int8 weight MACs), `elementwise` (LIF updates, sums of currents, biases),
    `weights` (MACs per matrix), `neurons`, `parameters` (weight and bias values) and `ops` (graph operators,
    approximate: one per matrix and per elementwise operation kind of each population)."""
    cfg = L2MUConfig.from_dict(model_config)
    sizes = cfg.population_sizes()
    macs = weight_macs(cfg)
    neurons = sum(sizes.values())
    per_neuron = LIF_ELEMENTWISE[cfg.neuron]
    biases = sizes["channel"] + cfg.encoder_size + cfg.encoder_out + cfg.n_classes
    current_sums = 2 * cfg.memory_size + 2 * cfg.hidden_size  # the three-term sums into u and h
    fed_back = RECOMPUTED_SPIKE_OPS * (cfg.hidden_size + sizes["m"])
    elementwise = neurons * per_neuron + biases + current_sums + fed_back
    # A_bar, B_bar are fixed, not trained; learned neuron constants: beta and threshold (and alpha) per population
    neuron_constants = len(sizes) * (3 if cfg.neuron == "synaptic" else 2) if cfg.learn_neuron_params else 0
    parameters = sum(macs.values()) - macs["a_b_bar"] + biases + neuron_constants
    ops = len(macs) + len(sizes) * per_neuron + 4 + 2 * RECOMPUTED_SPIKE_OPS
    return {"macs": sum(macs.values()), "elementwise": elementwise, "ops": ops, "weights": macs,
            "neurons": neurons, "parameters": parameters}
