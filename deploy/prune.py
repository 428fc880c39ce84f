"""Magnitude pruning of every L2MU weight matrix with tensorflow-model-optimization, then fine-tuning.

The Keras twin runs a whole window by looping `tf_twin.l2mu_step` over T steps with the surrogate gradient.
Each pruning wrapper advances its step counter once per call, and the unrolled window calls every layer T
times per batch, so the polynomial schedule is expressed in wrapper calls (batches x T).

The fine-tune sees the training loop's data (training/loop.py): raw SI windows, a fresh random wrist rotation and
scale per window and epoch (`augment_deg` of the run), normalised after augmentation. It uses the run's learned
neuron constants (beta, threshold per population), held fixed. It adds no current noise (docs/toolchain.md,
"Pruning fine-tune").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from collections.abc import Callable

from deploy.tf_twin import (BIASED, DENSE, a_b_matrix, channel_fn, dense_kernels, l2mu_step, neuron_params,
                            spike_atan, tf, zero_state)
from training.augment import augment
from training.config import L2MUConfig

import tensorflow_model_optimization as tfmot  # noqa: E402  (after tf_twin set TF_USE_LEGACY_KERAS)

keras = tf.keras


class KerasL2MU(keras.Model):
    """The window model for fine-tuning: every weight matrix is a plain Dense layer, optionally pruning-wrapped."""

    def __init__(self, cfg: L2MUConfig, weights: dict[str, np.ndarray], schedule=None) -> None:
        super().__init__()
        self.cfg = cfg
        self.params = neuron_params(cfg, weights)
        self.a_b_bar = tf.constant(a_b_matrix(weights))
        self.channel = channel_fn(weights)  # per-channel input gains: vectors, not matrices; kept as trained
        self.names = DENSE
        for name, (kernel, bias) in dense_kernels(weights).items():
            layer = keras.layers.Dense(kernel.shape[1], use_bias=name in BIASED, name=name)
            layer.build((None, kernel.shape[0]))
            layer.set_weights([kernel, bias] if bias is not None else [kernel])
            if schedule is not None:
                layer = tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
            setattr(self, f"dense_{name}", layer)

    def dense(self, name: str):
        return getattr(self, f"dense_{name}")

    def call(self, x, training=None):
        layers = {n: (lambda v, n=n: self.dense(n)(v, training=training)) for n in self.names}
        steps, x_time_major = tf.shape(x)[1], tf.transpose(x, (1, 0, 2))

        def body(t, counts, state):
            s_o, state = l2mu_step(self.cfg, self.params, layers, self.channel, self.a_b_bar, x_time_major[t], state,
                                   spike_atan)
            return t + 1, counts + s_o, state  # logits = sum_t s_o[t]

        init = (tf.constant(0), tf.zeros((tf.shape(x)[0], self.cfg.n_classes)), zero_state(self.cfg, tf.shape(x)[0]))
        # A while loop, not an unrolled one: tracing T copies of nine pruning wrappers takes minutes.
        return tf.while_loop(lambda t, *_: t < steps, body, init, maximum_iterations=steps)[1]

    def pruned_weights(self, base: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Strip the wrappers (the inner Dense layers carry the masked kernels) and return torch-layout weights."""
        out = dict(base)
        for n in self.names:
            layer = self.dense(n)
            layer = getattr(layer, "layer", layer)  # a pruning wrapper holds the Dense it wraps in .layer
            kernel, *bias = layer.get_weights()
            out[f"{n}.weight"] = np.ascontiguousarray(kernel.T)
            if bias:
                out[f"{n}.bias"] = bias[0]
        return out


@dataclass
class PruneResult:
    weights: dict[str, np.ndarray]
    sparsity: dict[str, float]  # per weight matrix, reached
    overall: float  # over all pruned matrices
    history: list[dict]


def layer_sparsity(weights: dict[str, np.ndarray]) -> tuple[dict[str, float], float]:
    per = {n: float(np.mean(weights[f"{n}.weight"] == 0)) for n in DENSE}
    total = sum(weights[f"{n}.weight"].size for n in DENSE)
    zeros = sum(int(np.sum(weights[f"{n}.weight"] == 0)) for n in DENSE)
    return per, zeros / total


class AugmentedWindows(keras.utils.Sequence):
    """Training batches as training/loop.py `fit` makes them: each epoch a seeded permutation of the raw windows,
    a fresh augmentation of each (none if `augment_deg` is 0), then normalisation."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, normalize: Callable[[np.ndarray], np.ndarray],
                 augment_deg: float, seed: int) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.normalize, self.augment_deg = normalize, augment_deg
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def on_epoch_end(self) -> None:
        order = self.rng.permutation(len(self.x))
        x = self.x[order]
        x = augment(x, self.rng, self.augment_deg) if self.augment_deg > 0 else x
        self.epoch_x, self.epoch_y = self.normalize(x).astype(np.float32), self.y[order]

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        batch = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self.epoch_x[batch], self.epoch_y[batch]


def prune_and_finetune(cfg: L2MUConfig, weights: dict[str, np.ndarray], x_train: np.ndarray, y_train: np.ndarray,
                       x_val: np.ndarray, y_val: np.ndarray, sparsity: float,
                       normalize: Callable[[np.ndarray], np.ndarray], augment_deg: float, epochs: int = 12,
                       batch_size: int = 128, lr: float = 5e-4, seed: int = 0,
                       on_epoch=lambda e: None) -> PruneResult:
    """Polynomial magnitude pruning to `sparsity` over the first 2/3 of fine-tuning, then fine-tune at it.
    `x_train` are raw SI windows (augmented, then normalised per epoch), `x_val` normalised ones. One `seed` fixes
    the order and augmentation (and every TF random draw), with deterministic TF ops: the same run and seed give
    the same pruned weights."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    batches = AugmentedWindows(x_train, y_train, batch_size, normalize, augment_deg, seed)
    steps = x_train.shape[1]
    calls_per_epoch = len(batches) * steps
    frequency = 2 * steps  # a mask update every two batches
    # The last update must fall on end_step, or the final sparsity stays one update short of the target.
    end = frequency * max(1, (2 * epochs * calls_per_epoch) // (3 * frequency))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=sparsity, begin_step=0, end_step=end, frequency=frequency)
    model = KerasL2MU(cfg, weights, schedule)
    model(x_val[:1])  # builds the wrappers (their pruning_step variables) before UpdatePruningStep looks
    model.compile(optimizer=keras.optimizers.Adam(lr), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    log = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: on_epoch({"epoch": epoch + 1, **logs}))
    hist = model.fit(batches, epochs=epochs, validation_data=(x_val, y_val), shuffle=False,
                     callbacks=[tfmot.sparsity.keras.UpdatePruningStep(), log], verbose=0)
    pruned = model.pruned_weights(weights)
    per, overall = layer_sparsity(pruned)
    history = [dict(zip(hist.history, v)) for v in zip(*hist.history.values())]
    return PruneResult(pruned, per, overall, history)
