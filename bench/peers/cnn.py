"""Peer (b): a small 1D-CNN in the style of the vendors' HAR model zoos (the STM32 model zoo's IGN model: one wide
convolution, max pooling, a small dense layer, dropout), on all 6 channels. Full int8 TFLite at batch 1."""

from __future__ import annotations

from bench.contender import Contender
from bench.peers import keras_int8
from bench.protocol import WINDOW, Fold, Settings
from deploy.tf_env import import_tensorflow

FILTERS, KERNEL, POOL, DENSE, DROPOUT = 24, 16, 3, 12, 0.5


def build(n_classes: int):
    tf = import_tensorflow()
    layers = tf.keras.layers
    inputs = tf.keras.Input((WINDOW, keras_int8.CHANNELS))
    h = layers.Conv1D(FILTERS, KERNEL, activation="relu")(inputs)
    h = layers.Dropout(DROPOUT)(layers.MaxPooling1D(POOL)(h))
    h = layers.Dropout(DROPOUT)(layers.Dense(DENSE, activation="relu")(layers.Flatten()(h)))
    return tf.keras.Model(inputs, layers.Dense(n_classes)(h), name="cnn")


def contender(fold: Fold, settings: Settings) -> Contender:
    return keras_int8.contender("cnn", f"1D-CNN (IGN-style, {FILTERS}x{KERNEL})", build, fold, settings,
                                f"Conv1D({FILTERS}, {KERNEL}) + MaxPool({POOL}) + Dense({DENSE}), batch 1, full int8")
