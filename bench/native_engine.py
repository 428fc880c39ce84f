"""The integer engine beside the TFLite int8 step, on the same run and the same held-out windows, in one run:

    python bench/native_engine.py RUN_DIR [--windows 64] [--qemu]

Host: median wall time of one step (a) the C step alone through ctypes (int16 sample in, spikes out; the sample
addresses taken beforehand, as the live backend does), and its mean inside one C loop over all windows (no ctypes call
per step; the best of 5 passes, the machine may be shared), (b) the live backend's step
(normalised float sample -> int16 boundary -> C step), (c) the LiteRT int8 step of the same run.
--qemu adds the Cortex-M4F figures under the firmware harness (instructions per step and decision, user-linked
sizes, bit-exactness; needs HAR_TFLM_ROOT). Prints one JSON object. Targets (docs/integer-engine.md): <= 3 us per
host step; <= 1/30 of the TFLM step's instructions.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.integer.codegen import model_sources  # noqa: E402
from deploy.integer.host import NativeLibrary, NativeStep, build_library  # noqa: E402
from deploy.integer.model import quantize_input  # noqa: E402
from deploy.integer.stage import integer_weights_file, load_integer_model  # noqa: E402
from deploy.parity import held_out_windows  # noqa: E402
from training.run_dir import INT8_MODEL, lanes_needed, open_run  # noqa: E402


def per_step_us(step, samples: Sequence, reset, steps_per_window: int) -> dict:
    times = []
    for i, s in enumerate(samples):
        if i % steps_per_window == 0:
            reset()
        t0 = time.perf_counter_ns()
        step(s)
        times.append(time.perf_counter_ns() - t0)
    t = np.array(times[len(times) // 10:]) / 1e3  # after warm-up
    return {"median": float(np.median(t)), "p99": float(np.percentile(t, 99)), "steps": int(len(t))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--qemu", action="store_true")
    args = ap.parse_args()
    run = open_run(args.run)
    weights = integer_weights_file(run)
    model = load_integer_model(run, weights)
    sources = model_sources(model)
    lib = NativeLibrary(build_library(sources))
    raw, _ = held_out_windows(run, args.windows)
    z = run.normalization.apply(raw)
    xq = quantize_input(z)
    steps = z.shape[1]
    lane = ctypes.create_string_buffer(lib.lib.har_lane_bytes())
    spikes = np.zeros(model.n_classes, np.uint8)
    flat = np.ascontiguousarray(xq.reshape(-1, 6), np.int16)
    samples_q = [flat.ctypes.data + i * flat.strides[0] for i in range(len(flat))]  # addresses, not ndarray.ctypes
    c_step, out = lib.lib.har_lane_step, spikes.ctypes.data
    result = {
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(), "run": str(run.path),
        "weights": weights, "windows": len(z), "nonzero_weights": model.nonzero_weights(),
        "host_us_per_step": {
            "native_c_step_ctypes": per_step_us(lambda a: c_step(lane, a, out), samples_q,
                                                lambda: lib.lib.har_lane_reset(lane), steps),
        },
    }
    passes = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        lib.run_windows(xq)
        passes.append(time.perf_counter_ns() - t0)
    result["host_us_per_step"]["native_c_batch_mean"] = min(passes) / 1e3 / (xq.shape[0] * steps)
    native = NativeStep(lib)
    result["host_us_per_step"]["native_backend_step"] = per_step_us(native.step, z.reshape(-1, 6), native.reset, steps)
    if (run.path / INT8_MODEL).is_file():
        from deploy.step_runtimes import LiteRTStep

        litert = LiteRTStep((run.path / INT8_MODEL).read_bytes())
        result["host_us_per_step"]["litert_int8_step"] = per_step_us(litert.step, z.reshape(-1, 6), litert.reset,
                                                                     steps)
    if args.qemu:
        from deploy.firmware.targets import CORTEX_M4
        from deploy.integer.firmware import measure_native

        result["cortex_m4"] = measure_native(model, sources, xq, run.window, run.hop,
                                             lanes_needed(run.window, run.hop), CORTEX_M4).to_dict()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
