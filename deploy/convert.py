"""TFLite conversion of the single-step stateful L2MU graph (state as resource variables), fp32 and full int8."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from deploy.native_log import native_noise_filtered
from deploy.tf_twin import StepModule, tf


def convert_step(module: StepModule, calibration: np.ndarray | None = None) -> bytes:
    """fp32 when `calibration` is None; else full-integer int8 calibrated on normalised windows (N, T, 6),
    fed sample by sample in time order so the state variables follow real trajectories."""
    fns = [module.step.get_concrete_function(), module.zero_state.get_concrete_function()]
    conv = tf.lite.TFLiteConverter.from_concrete_functions(fns, module)
    conv.experimental_enable_resource_variables = True
    if calibration is not None:
        def representative() -> Iterator[dict]:
            for window in calibration:  # in time order, reset at each window start as in training
                yield "zero_state", {"flag": np.ones((1, 1), np.float32)}
                for x_t in window:
                    yield "step", {"x_t": x_t[None].astype(np.float32)}

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = representative
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with native_noise_filtered():  # calibration runs the model on LiteRT, whose XNNPACK delegate logs a line
        return conv.convert()
