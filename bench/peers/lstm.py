"""Peer (a): an LSTM in Keras, as a TFLite user ships it. One LSTM(64) layer and a linear readout, about as many
parameters as the L2MU. Converted at batch 1 from a `tf.function`: the converter fuses the Keras LSTM into one
UNIDIRECTIONAL_SEQUENCE_LSTM operator (int8 in/out, integer cell), which both LiteRT and TFLM run. (The `RNN` WHILE
form segfaults int8 conversion; `unroll=True` converts but is ~8x larger: docs/toolchain.md.)"""

from __future__ import annotations

from bench.contender import Contender
from bench.peers import keras_int8
from bench.protocol import WINDOW, Fold, Settings
from deploy.tf_env import import_tensorflow

UNITS = 64


def build(n_classes: int):
    tf = import_tensorflow()
    inputs = tf.keras.Input((WINDOW, keras_int8.CHANNELS))
    h = tf.keras.layers.LSTM(UNITS)(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(n_classes)(h), name="lstm")


def contender(fold: Fold, settings: Settings) -> Contender:
    return keras_int8.contender("lstm", f"LSTM({UNITS})", build, fold, settings,
                                "batch-1 tf.function, fused UNIDIRECTIONAL_SEQUENCE_LSTM, full int8")
