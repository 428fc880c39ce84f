"""Running a single-step .tflite over windows on LiteRT and on the TensorFlow Lite Micro interpreter."""

from __future__ import annotations

import numpy as np

from training.errors import HarError


class QuantizedIO:
    """Quantise the normalised input and dequantise output spikes with the model's own parameters."""

    def __init__(self, input_details: dict, output_details: dict) -> None:
        self.in_dtype, self.out_dtype = input_details["dtype"], output_details["dtype"]
        self.in_scale, self.in_zero = _scale_zero(input_details)
        self.out_scale, self.out_zero = _scale_zero(output_details)

    def quantize(self, z: np.ndarray) -> np.ndarray:
        if self.in_dtype == np.float32:
            return z.astype(np.float32)[None]
        q = np.round(z / self.in_scale + self.in_zero)  # q = round(z / s) + z0
        return np.clip(q, -128, 127).astype(self.in_dtype)[None]

    def spikes(self, out: np.ndarray) -> np.ndarray:
        v = out[0].astype(np.float32)
        if self.out_dtype != np.float32:
            v = (v - self.out_zero) * self.out_scale  # x = s (q - z0)
        return (v > 0.5).astype(np.float32)


def _scale_zero(details: dict) -> tuple[float, int]:
    qp = details.get("quantization_parameters") or {}
    scales, zeros = qp.get("scales", []), qp.get("zero_points", [])
    if len(scales):
        return float(scales[0]), int(zeros[0])
    scale, zero = details.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class LiteRTStep:
    """The step model on LiteRT (ai-edge-litert) through its `step` and `zero_state` signatures."""

    def __init__(self, model: bytes, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            it = Interpreter(model_content=model, num_threads=num_threads)
            self._step, self._zero = it.get_signature_runner("step"), it.get_signature_runner("zero_state")
        except (ValueError, RuntimeError) as exc:
            raise HarError(f"not a valid har step model: {str(exc).splitlines()[0]}", 1) from None
        self.io = QuantizedIO(self._step.get_input_details()["x_t"], self._step.get_output_details()["spikes"])
        self._flag = np.ones((1, 1), self._zero.get_input_details()["flag"]["dtype"])

    def reset(self) -> None:
        self._zero(flag=self._flag)  # reset_all_variables() would leave the resource variables as they are

    def step(self, z: np.ndarray) -> np.ndarray:
        return self.io.spikes(self._step(x_t=self.io.quantize(z))["spikes"])


class TFLMStep:
    """The step model on the TensorFlow Lite Micro interpreter (the real TFLM kernels, via tflite_micro)."""

    def __init__(self, model: bytes, arena_size: int | None = None) -> None:
        from tflite_micro import runtime as tflm

        try:
            kwargs = {"arena_size": arena_size} if arena_size else {}
            self.it = tflm.Interpreter.from_bytes(model, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise HarError(f"TFLM cannot load the model: {str(exc).splitlines()[0]}", 1) from None
        self.io = QuantizedIO(self.it.get_input_details(0), self.it.get_output_details(0))

    def reset(self) -> None:
        self.it.reset()

    def step(self, z: np.ndarray) -> np.ndarray:
        self.it.set_input(self.io.quantize(z), 0)
        self.it.invoke()
        return self.io.spikes(self.it.get_output(0))


def window_counts(runner: LiteRTStep | TFLMStep, x: np.ndarray) -> np.ndarray:
    """Output spike counts (N, C) over normalised windows (N, T, 6), each from the zero state."""
    counts = []
    for window in x:
        runner.reset()
        counts.append(sum(runner.step(z) for z in window))
    return np.array(counts)
