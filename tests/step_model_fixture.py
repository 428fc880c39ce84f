"""A small real stateful int8 step model with seeded weights that spike reliably, for the live backends' state tests.

Two LIF layers (6 -> H -> C) as one streaming time step with the signatures of the run-directory contract (as
deploy/tf_twin.py builds them): `step` (x_t (1, 6) -> spikes (1, C)) and `zero_state` (flag (1, 1) -> zeroes the
membranes), membranes in tf.Variables, converted full-int8 with resource variables (docs/toolchain.md).
`reference_spikes` is the same network in float numpy, for checking what LiteRT returns. Used by
tests/test_live_*.py and bench/live_latency.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BETA, THRESHOLD = 0.8, 1.0


@dataclass
class LifWeights:
    w1: np.ndarray  # (6, H)
    b1: np.ndarray  # (H,)
    w2: np.ndarray  # (H, C)
    b2: np.ndarray  # (C,)


def lif_weights(n_classes: int, hidden: int = 16, seed: int = 0) -> LifWeights:
    rng = np.random.default_rng(seed)
    return LifWeights(rng.normal(0, 0.6, (6, hidden)).astype(np.float32), rng.normal(0, 0.1, hidden).astype(np.float32),
                      rng.normal(0, 0.5, (hidden, n_classes)).astype(np.float32),
                      np.full(n_classes, 0.1, np.float32))


def _lif(mem: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # U[t] = beta U[t-1] + I[t] - thr H(U[t-1] - thr);  S[t] = H(U[t] - thr)   (snnTorch Leaky, subtract reset)
    mem = BETA * mem + current - THRESHOLD * (mem > THRESHOLD)
    return mem, (mem > THRESHOLD).astype(np.float32)


def reference_spikes(w: LifWeights, x: np.ndarray) -> np.ndarray:
    """Output spikes (T, C) of the float network over x (T, 6) from the zero state."""
    m1, m2, out = np.zeros(len(w.b1)), np.zeros(len(w.b2)), []
    for x_t in x:
        m1, s1 = _lif(m1, x_t @ w.w1 + w.b1)
        m2, s2 = _lif(m2, s1 @ w.w2 + w.b2)
        out.append(s2)
    return np.array(out)


def build_int8_step_model(w: LifWeights, calibration: np.ndarray) -> bytes:
    """Convert the network to a full-int8 .tflite step; calibration (N, T, 6) is fed in time order."""
    from deploy.tf_env import import_tensorflow

    tf = import_tensorflow()

    class LifStep(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1, self.b1, self.w2, self.b2 = (tf.constant(a) for a in (w.w1, w.b1, w.w2, w.b2))
            self.m1 = tf.Variable(tf.zeros((1, len(w.b1))), trainable=False)
            self.m2 = tf.Variable(tf.zeros((1, len(w.b2))), trainable=False)

        def _lif(self, var, current):
            one, zero = tf.constant(1.0), tf.constant(0.0)
            mem = BETA * var + current - THRESHOLD * tf.where(var > THRESHOLD, one, zero)
            var.assign(mem)
            return tf.where(mem > THRESHOLD, one, zero)

        @tf.function(input_signature=[tf.TensorSpec((1, 6), tf.float32, name="x_t")])
        def step(self, x_t):
            s1 = self._lif(self.m1, tf.matmul(x_t, self.w1) + self.b1)
            return {"spikes": self._lif(self.m2, tf.matmul(s1, self.w2) + self.b2)}

        @tf.function(input_signature=[tf.TensorSpec((1, 1), tf.float32, name="flag")])
        def zero_state(self, flag):
            for var in (self.m1, self.m2):
                var.assign(tf.zeros_like(var))
            return {"done": flag * 0.0}

    def representative():
        for seq in calibration:  # in time order, from the zero state
            yield "zero_state", {"flag": np.ones((1, 1), np.float32)}
            for x_t in seq:
                yield "step", {"x_t": x_t[None].astype(np.float32)}

    module = LifStep()
    fns = [module.step.get_concrete_function(), module.zero_state.get_concrete_function()]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(fns, module)
    conv.experimental_enable_resource_variables = True
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return conv.convert()
