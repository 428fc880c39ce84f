"""Does the bundled model give the same outputs on TFLM (what the MCU runs) as on LiteRT? Checked on real test
windows of the run. TFLM's int8 FULLY_CONNECTED rounds differently from LiteRT's by up to 1 LSB (docs/toolchain.md,
"TFLM vs LiteRT numerics"), which can flip a spike, so the result is reported as fractions, not asserted to be exact."""

from __future__ import annotations

import numpy as np

from deploy.har_contract import decide
from deploy.step_runtimes import LiteRTStep, TFLMStep
from training.errors import ExitCode, HarError
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
        raise HarError(f"the run's test subjects have no windows in {data['spec']}", ExitCode.FAILURE)
    pick = np.unique(np.linspace(0, len(windows) - 1, min(limit, len(windows))).round().astype(int))
    return windows.x[pick], [dataset.classes[i] for i in windows.y[pick]]


def compare_tflm_litert(model: bytes, windows: np.ndarray, arena_bytes: int) -> dict:
    """Run both runtimes over windows (N, T, 6), each from the zero state (LiteRT: the `zero_state` signature;
    TFLM with the bundle's arena: reset(), as MicroInterpreter::Reset() on the MCU), and compare step by step."""
    litert, tflm = LiteRTStep(model), TFLMStep(model, arena_bytes)
    io = litert.io
    same_outputs = same_spikes = steps = same_counts = same_decisions = 0
    max_lsb, margins = 0, []
    for window in windows:
        litert.reset()
        tflm.reset()
        counts_l = counts_t = 0.0
        for z in window:
            q = io.quantize(z)
            out_l, out_t = litert.step_raw(q), tflm.step_raw(q)
            spikes_l, spikes_t = io.spikes(out_l), io.spikes(out_t)
            same_outputs += int(np.array_equal(out_l, out_t))
            same_spikes += int(np.array_equal(spikes_l, spikes_t))
            max_lsb = max(max_lsb, int(np.abs(out_l.astype(np.int32) - out_t.astype(np.int32)).max()))
            counts_l, counts_t = counts_l + spikes_l, counts_t + spikes_t
            steps += 1
        same_counts += int(np.array_equal(counts_l, counts_t))
        agree = decide(counts_l)[0] == decide(counts_t)[0]  # the contract's decision rule
        same_decisions += int(agree)
        if not agree:
            second, top = np.sort(counts_l)[-2:]
            margins.append(int(top - second))  # LiteRT's lead of its winning class over the runner-up, in spikes
    n = len(windows)
    return {
        "windows": n,
        "steps": steps,
        "decision_agreement": same_decisions / n,
        "window_counts_exact": same_counts / n,
        "step_outputs_exact": same_outputs / steps,
        "step_spikes_exact": same_spikes / steps,
        "max_output_diff_lsb": max_lsb,
        "max_margin_where_decisions_differ": max(margins, default=None),
        "arena_bytes": arena_bytes,
    }
