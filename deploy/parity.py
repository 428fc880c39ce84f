"""Does the bundled model give the same outputs on TFLM (what the MCU runs) as on LiteRT? Checked on real test
windows of the run. TFLM's int8 FULLY_CONNECTED rounds differently from LiteRT's by up to 1 LSB (toolchain.md
section 7), which can flip a spike, so the result is reported as fractions, not asserted to be exact."""

from __future__ import annotations

import numpy as np

from deploy.step_runtimes import QuantizedIO
from training.errors import HarError
from training.run_dir import Run


def held_out_windows(run: Run, limit: int) -> tuple[np.ndarray, list[str]]:
    """Up to `limit` raw windows (N, T, 6), SI units, of the run's test subjects, spread over the set, and their
    labels."""
    from training.sources import load_dataset
    from training.windowing import make_windows

    data = run.config["data"]
    dataset = load_dataset(data["spec"], data.get("activities")).only_subjects(run.config["split"]["test"])
    windows = make_windows(dataset, run.fs_hz, run.window, run.hop)
    if len(windows) == 0:
        raise HarError(f"the run's test subjects have no windows in {data['spec']}", 1)
    pick = np.unique(np.linspace(0, len(windows) - 1, min(limit, len(windows))).round().astype(int))
    return windows.x[pick], [dataset.classes[i] for i in windows.y[pick]]


def decide(counts: np.ndarray) -> int:
    return int(np.argmax(counts))  # class = argmax of summed spikes, ties -> lowest index


class _LiteRTRaw:
    """LiteRT, fresh interpreter per window: `reset_all_variables()` does not zero resource variables in
    ai-edge-litert 2.3.0, a new interpreter does."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model, self.Interpreter = model, Interpreter
        self.reset()
        self.io = QuantizedIO(self.it.get_input_details()[0], self.it.get_output_details()[0])

    def reset(self) -> None:
        self.it = self.Interpreter(model_content=self.model)
        self.it.allocate_tensors()
        self._in, self._out = self.it.get_input_details()[0]["index"], self.it.get_output_details()[0]["index"]

    def step(self, q: np.ndarray) -> np.ndarray:
        self.it.set_tensor(self._in, q)
        self.it.invoke()
        return self.it.get_tensor(self._out)[0].copy()


class _TFLMRaw:
    """TFLM with the bundle's arena size, `reset()` per window as the firmware does (MicroInterpreter::Reset)."""

    def __init__(self, model: bytes, arena_bytes: int) -> None:
        from tflite_micro import runtime as tflm

        self.it = tflm.Interpreter.from_bytes(model, arena_size=arena_bytes)

    def reset(self) -> None:
        self.it.reset()

    def step(self, q: np.ndarray) -> np.ndarray:
        self.it.set_input(q, 0)
        self.it.invoke()
        return self.it.get_output(0)[0].copy()


def tflm_window_counts(model: bytes, window: np.ndarray, arena_bytes: int) -> np.ndarray:
    """Output spike counts (C,) of one normalised window (T, 6) on TFLM from the zero state."""
    tflm = _TFLMRaw(model, arena_bytes)
    io = _LiteRTRaw(model).io
    return sum(io.spikes(tflm.step(io.quantize(z))[None]) for z in window).astype(np.int64)


def compare_tflm_litert(model: bytes, windows: np.ndarray, arena_bytes: int) -> dict:
    """Run both runtimes over windows (N, T, 6) from the zero state each and compare step by step."""
    litert, tflm = _LiteRTRaw(model), _TFLMRaw(model, arena_bytes)
    io = litert.io
    same_outputs = same_spikes = steps = same_counts = same_decisions = 0
    max_lsb = 0
    for window in windows:
        litert.reset()
        tflm.reset()
        counts_l = counts_t = 0.0
        for z in window:
            q = io.quantize(z)
            out_l, out_t = litert.step(q), tflm.step(q)
            spikes_l, spikes_t = io.spikes(out_l[None]), io.spikes(out_t[None])
            same_outputs += int(np.array_equal(out_l, out_t))
            same_spikes += int(np.array_equal(spikes_l, spikes_t))
            max_lsb = max(max_lsb, int(np.abs(out_l.astype(np.int32) - out_t.astype(np.int32)).max()))
            counts_l, counts_t = counts_l + spikes_l, counts_t + spikes_t
            steps += 1
        same_counts += int(np.array_equal(counts_l, counts_t))
        same_decisions += int(decide(counts_l) == decide(counts_t))
    n = len(windows)
    return {
        "windows": n,
        "steps": steps,
        "decision_agreement": same_decisions / n,
        "window_counts_exact": same_counts / n,
        "step_outputs_exact": same_outputs / steps,
        "step_spikes_exact": same_spikes / steps,
        "max_output_diff_lsb": max_lsb,
        "arena_bytes": arena_bytes,
    }
