"""The TensorFlow twin of `training.l2mu.L2MU.step`, built from the same saved config and weights.

It exists for tensorflow-model-optimization (pruning needs tf_keras Dense layers) and the TFLite converter.
The maths is written once, in `l2mu_step`, and used both by the Keras window model (fine-tuning) and by the
single-step module that is converted. s_h[t-1] and s_m[t-1] are recomputed from the membranes:
S[t-1] = H(U[t-1] - thr), the same value the torch step stores.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deploy.tf_env import import_tensorflow
from training.config import L2MUConfig
from training.l2mu_layout import MODEL_CHANNEL_ORDER
from training.network import POPULATIONS, SYNAPSES, describe

tf = import_tensorflow()

# The dense weight matrices (training/network.py), each one Dense layer / FULLY_CONNECTED; the per-channel gains are
# elementwise, and A_bar, B_bar the one product `a_b_matrix`.
DENSE_SYNAPSES = tuple(s for s in SYNAPSES if s.form == "dense")
DENSE = tuple(s.name for s in DENSE_SYNAPSES)
BIASED = tuple(s.name for s in DENSE_SYNAPSES if s.bias)


@dataclass
class NeuronParams:
    beta: float
    threshold: float
    alpha: float | None  # synaptic only


def neuron_params(cfg: L2MUConfig, weights: dict[str, np.ndarray]) -> dict[str, NeuronParams]:
    """Per-population constants, learned values taking precedence over the config's."""
    out = {}
    for pop in POPULATIONS:
        beta, thr = cfg.neuron_params[pop]
        beta = float(np.clip(weights.get(f"lif.{pop}.beta", beta), 0.0, 1.0))  # beta is clamped to [0, 1]
        thr = float(weights.get(f"lif.{pop}.threshold", thr))
        alpha = float(np.clip(weights.get(f"lif.{pop}.alpha", cfg.alpha), 0.0, 1.0)) if cfg.neuron == "synaptic" else None
        out[pop] = NeuronParams(beta, thr, alpha)
    return out


def spike_atan(mem, threshold: float):
    """S = H(U - thr) forward; ATan surrogate backward (snnTorch default, alpha = 2): dS/dU = 1 / (1 + (pi (U - thr))^2)."""

    @tf.custom_gradient
    def fire(v):
        def grad(dy):
            return dy / (1.0 + tf.square(math.pi * v))

        return tf.where(v > 0.0, 1.0, 0.0), grad

    return fire(mem - threshold)


def spike_exact(mem, threshold: float):
    """S = H(U - thr) as GREATER + SELECT_V2, a pure int8 op pair (U - thr > 0 and U > thr agree exactly in IEEE)."""
    return tf.where(mem > threshold, 1.0, 0.0)


def state_sizes(cfg: L2MUConfig) -> dict[str, int]:
    """The twin's state: membranes (and synaptic currents), no spikes (s[t-1] is recomputed from U[t-1])."""
    return describe(cfg).state(spikes=False)


def zero_state(cfg: L2MUConfig, batch) -> dict:
    return {k: tf.zeros((batch, n)) for k, n in state_sizes(cfg).items()}


def l2mu_step(cfg: L2MUConfig, p: dict[str, NeuronParams], layer: dict[str, Callable], channel: Callable,
              a_b_bar, x_t, state: dict, spike: Callable):
    """One step of the L2MU, as training/l2mu.py writes it. Returns (output spikes, new state)."""
    new = {}

    def fire(pop, current):
        n = p[pop]
        mem_prev = state[f"mem_{pop}"]
        if n.alpha is not None:
            current = new[f"syn_{pop}"] = n.alpha * state[f"syn_{pop}"] + current  # I_syn[t] = a I_syn[t-1] + I[t]
        # U[t] = b U[t-1] + I[t] - R[t] thr, with R[t] thr = where(U[t-1] > thr, thr, 0) (SELECT_V2: TFLM has no SELECT)
        mem = n.beta * mem_prev + current - tf.where(mem_prev > n.threshold, n.threshold, 0.0)
        new[f"mem_{pop}"] = mem
        return spike(mem, n.threshold)  # S[t] = H(U[t] - thr)

    M, d = cfg.memory_size, cfg.order
    s_h_prev = spike(state["mem_h"], p["h"].threshold)  # s_h[t-1] = H(U_h[t-1] - thr)
    s_m_prev = spike(state["mem_m"], p["m"].threshold)  # s_m[t-1] = H(U_m[t-1] - thr)
    s_ch = fire("channel", channel(x_t))
    s_enc = fire("encoder", layer["encoder"](s_ch))
    s_in = fire("decoder", layer["decoder"](s_enc))
    # I_u = E_x s_in[t] + E_h s_h[t-1] + E_m s_m[t-1]
    s_u = fire("u", layer["e_x"](s_in) + layer["e_h"](s_h_prev) + layer["e_m"](s_m_prev))
    # I_m,k = [A_bar B_bar] [s_m,k[t-1]; s_u,k[t]]: one matrix over the M channels as rows
    m_in = tf.concat([tf.reshape(s_m_prev, (-1, d)), tf.reshape(s_u, (-1, 1))], axis=1)
    s_m = fire("m", tf.reshape(tf.matmul(m_in, a_b_bar), (-1, M * d)))
    # I_h = W_x s_in[t] + W_h s_h[t-1] + W_m s_m[t]
    s_h = fire("h", layer["w_x"](s_in) + layer["w_h"](s_h_prev) + layer["w_m"](s_m))
    s_o = fire("out", layer["out"](s_h))  # I_o = W_o s_h[t] + b_o
    return s_o, new


def dense_kernels(weights: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """torch Linear (out, in) weights as Keras (in, out) kernels and biases."""
    return {s.name: (weights[s.weight_key].T.copy(), weights[s.bias_key] if s.bias else None) for s in DENSE_SYNAPSES}


def a_b_matrix(weights: dict[str, np.ndarray]) -> np.ndarray:
    """(d + 1, d): rows A_bar^T then B_bar, so [s_m,k; s_u,k] @ it = A_bar s_m,k + B_bar s_u,k."""
    return np.vstack([weights["A_bar"].T, weights["B_bar"][None, :]]).astype(np.float32)


def channel_fn(weights: dict[str, np.ndarray]) -> Callable:
    """Per-channel populations: I_c = w_c x_c + b_c for each model channel c (loader order permuted here)."""
    w = tf.constant(weights["channel_weight"])
    b = tf.constant(weights["channel_bias"])
    order = list(MODEL_CHANNEL_ORDER)
    n = int(np.prod(weights["channel_weight"].shape))
    return lambda x: tf.reshape(tf.gather(x, order, axis=1)[:, :, None] * w + b, (-1, n))


class StepModule(tf.Module):
    """One streaming time step, weights as constants and the neuron state as resource variables (c_var).

    Two signatures: `step` (x_t (1, 6) -> spikes (1, C)) and `zero_state` (zeroes every state variable; its
    one-element `flag` input exists because the int8 calibrator rejects signatures without inputs). LiteRT's
    reset_all_variables() leaves resource variables untouched, so LiteRT and Android call `zero_state`; TFLM
    runs subgraph 0 and resets with MicroInterpreter::Reset(). Signatures are ordered by name, so `step`
    sorts before `zero_state` and is subgraph 0.
"""

    def __init__(self, cfg: L2MUConfig, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.cfg = cfg
        self.params = neuron_params(cfg, weights)
        kernels = dense_kernels(weights)
        self.layer = {n: _const_dense(k, b) for n, (k, b) in kernels.items()}
        self.channel = channel_fn(weights)
        self.a_b_bar = tf.constant(a_b_matrix(weights))
        self.state = {k: tf.Variable(tf.zeros((1, n)), trainable=False, name=k) for k, n in state_sizes(cfg).items()}

    @tf.function(input_signature=[tf.TensorSpec((1, 6), tf.float32, name="x_t")])
    def step(self, x_t):
        s_o, new = l2mu_step(self.cfg, self.params, self.layer, self.channel, self.a_b_bar, x_t,
                             {k: v.read_value() for k, v in self.state.items()}, spike_exact)
        for k, v in self.state.items():
            v.assign(new[k])
        return {"spikes": s_o}

    @tf.function(input_signature=[tf.TensorSpec((1, 1), tf.float32, name="flag")])
    def zero_state(self, flag):
        for v in self.state.values():
            v.assign(tf.zeros_like(v))
        return {"done": flag * 0.0}

    def reset(self) -> None:
        self.zero_state(tf.ones((1, 1)))


def _const_dense(kernel: np.ndarray, bias: np.ndarray | None) -> Callable:
    k = tf.constant(kernel)
    if bias is None:
        return lambda x: tf.matmul(x, k)
    b = tf.constant(bias)
    return lambda x: tf.matmul(x, k) + b


def run_windows(module: StepModule, x: np.ndarray, record: bool = False):
    """Run the step module over windows (N, T, 6) from the zero state each; spike counts (N, C), optional traces."""
    counts = np.zeros((len(x), module.cfg.n_classes), np.float32)
    traces = []
    for i, window in enumerate(x):
        module.reset()
        trace = []
        for x_t in window:
            s_o = module.step(tf.constant(x_t[None])).get("spikes").numpy()[0]
            counts[i] += s_o
            if record:
                trace.append({k: v.numpy()[0].copy() for k, v in module.state.items()} | {"spk_out": s_o})
        traces.append(trace)
    return (counts, traces) if record else counts
