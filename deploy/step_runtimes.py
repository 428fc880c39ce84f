"""Running a single-step .tflite over windows on LiteRT and on the TensorFlow Lite Micro interpreter."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from deploy.contract import SPIKE_THRESHOLD
from deploy.har_contract import Quantization, output_spikes, quantize_input
from deploy.native_log import native_noise_filtered
from deploy.tflite_model import RESET_SIGNATURE, STEP_SIGNATURE
from training.errors import ExitCode, HarError


class QuantizedIO:
    """Quantise the normalised input and turn the raw output into spikes with the model's own parameters and the
    contract's rules (deploy/har_contract.py)."""

    def __init__(self, input_details: dict, output_details: dict) -> None:
        self.input_quant, self.output_quant = _quantization(input_details), _quantization(output_details)

    def quantize(self, z: np.ndarray) -> np.ndarray:
        return quantize_input(z, self.input_quant)[None]

    def spikes(self, out: np.ndarray) -> np.ndarray:
        return output_spikes(out[0], self.output_quant, SPIKE_THRESHOLD)


def _quantization(details: dict) -> Quantization:
    scale, zero = _scale_zero(details)
    return Quantization(np.dtype(details["dtype"]).name, scale, zero)


def _scale_zero(details: dict) -> tuple[float, int]:
    qp = details.get("quantization_parameters") or {}
    scales, zeros = qp.get("scales", []), qp.get("zero_points", [])
    if len(scales):
        return float(scales[0]), int(zeros[0])
    scale, zero = details.get("quantization", (0.0, 0))
    return float(scale), int(zero)


class StepRuntime(ABC):
    """The step model on one runtime: one copy of the network state, advanced one sample per step."""

    io: QuantizedIO

    @abstractmethod
    def reset(self) -> None:
        """Back to the zero state (a window start)."""

    @abstractmethod
    def step_raw(self, q: np.ndarray) -> np.ndarray:
        """One step on a quantised input (1, 6); the model's raw output (1, C)."""

    def step(self, z: np.ndarray) -> np.ndarray:
        """One step on a normalised sample z (6,); the output spikes (C,)."""
        return self.io.spikes(self.step_raw(self.io.quantize(z)))


class LiteRTStep(StepRuntime):
    """The step model on LiteRT (ai-edge-litert) through its `step` and `zero_state` signatures. LiteRT applies its
    XNNPACK delegate by default. XNNPACK refuses a graph with a requantisation scale it cannot represent, which a
    population that never fired during calibration produces (docs/toolchain.md, "XNNPACK and silent populations");
    the step then runs on LiteRT's builtin kernels. `kernels` says which ran."""

    def __init__(self, model: bytes, num_threads: int = 1) -> None:
        try:
            self._open(model, num_threads, delegate=True)
            self.kernels = "XNNPACK"
        except _DelegateRefused:
            self._open(model, num_threads, delegate=False)
            self.kernels = "builtin"

    def _open(self, model: bytes, num_threads: int, delegate: bool) -> None:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        resolver = OpResolverType.AUTO if delegate else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        try:
            it = Interpreter(model_content=model, num_threads=num_threads, experimental_op_resolver_type=resolver)
            self._step, self._zero = it.get_signature_runner(STEP_SIGNATURE), it.get_signature_runner(RESET_SIGNATURE)
        except (ValueError, RuntimeError) as exc:
            raise HarError(f"not a valid har step model: {str(exc).splitlines()[0]}", ExitCode.FAILURE) from None
        x_t = self._step.get_input_details()["x_t"]
        self.io = QuantizedIO(x_t, self._step.get_output_details()["spikes"])
        self._flag = np.ones((1, 1), self._zero.get_input_details()["flag"]["dtype"])
        try:
            with native_noise_filtered():  # the first invoke creates the XNNPACK delegate, which logs a line
                self._step(x_t=np.zeros(x_t["shape"], x_t["dtype"]))
                self.reset()
        except RuntimeError as exc:
            if delegate and "XNNPACK" in str(exc):
                raise _DelegateRefused from None
            raise HarError(f"LiteRT cannot run the step model: {str(exc).splitlines()[0]}", ExitCode.FAILURE) from None

    def reset(self) -> None:
        self._zero(flag=self._flag)  # reset_all_variables() would leave the resource variables as they are

    def step_raw(self, q: np.ndarray) -> np.ndarray:
        return self._step(x_t=q)["spikes"]


class _DelegateRefused(Exception):
    """XNNPACK failed to prepare the graph (LiteRTStep falls back to the builtin kernels)."""


class TFLMStep(StepRuntime):
    """The step model on the TensorFlow Lite Micro interpreter (the real TFLM kernels, via tflite_micro); TFLM
    invokes subgraph 0, the `step` signature, and reset() zeroes the resource variables."""

    def __init__(self, model: bytes, arena_size: int | None = None) -> None:
        from tflite_micro import runtime as tflm

        from deploy.tflite_model import read_model

        read_model(model)  # tflite_micro's own flatbuffer parsing raises struct errors on a damaged file
        try:
            kwargs = {"arena_size": arena_size} if arena_size else {}
            self.it = tflm.Interpreter.from_bytes(model, **kwargs)
        except (ValueError, RuntimeError) as exc:
            raise HarError(f"TFLM cannot load the model: {str(exc).splitlines()[0]}", ExitCode.FAILURE) from None
        self.io = QuantizedIO(self.it.get_input_details(0), self.it.get_output_details(0))

    def reset(self) -> None:
        self.it.reset()

    def step_raw(self, q: np.ndarray) -> np.ndarray:
        self.it.set_input(q, 0)
        self.it.invoke()
        return self.it.get_output(0)


def window_counts(runner: StepRuntime, x: np.ndarray) -> np.ndarray:
    """Output spike counts (N, C) over normalised windows (N, T, 6), each from the zero state."""
    counts = []
    for window in x:
        runner.reset()
        counts.append(sum(runner.step(z) for z in window))
    return np.array(counts)
