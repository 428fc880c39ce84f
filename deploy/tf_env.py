"""Import TensorFlow the way tensorflow-model-optimization needs it: legacy tf_keras, set before the first import."""

from __future__ import annotations

import os


def import_tensorflow():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tfmot rejects Keras 3 objects
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if os.environ["TF_USE_LEGACY_KERAS"] != "1" or not tf.keras.__name__.startswith("tf_keras"):
        from training.errors import HarError

        raise HarError("TensorFlow was imported before TF_USE_LEGACY_KERAS=1 was set; tfmot needs tf_keras")
    return tf
