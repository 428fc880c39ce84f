"""The C99 engine on the host (system C compiler, -Wall -Wextra -Werror, ctypes): bit-exact with the numpy
reference on every membrane of every step of real held-out windows, and the lanes/decision rule of the contract."""

from __future__ import annotations

import ctypes
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from deploy.integer.codegen import columns, model_sources
from deploy.integer.host import NativeLibrary, NativeStep, build_library
from deploy.integer.model import quantize_input
from deploy.integer.quantize import quantize_l2mu
from deploy.integer.reference import run_reference
from har_app.live.runtime import decide
from training.config import L2MUConfig
from training.run_dir import open_run


@pytest.fixture(scope="module")
def engine(int8_run, tmp_path_factory):
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("no C compiler: apt-get install gcc (CI must install it)")
    from deploy.parity import held_out_windows

    run = open_run(int8_run)
    model = quantize_l2mu(L2MUConfig.from_dict(run.config["model"]), load_file(str(int8_run / "weights_pruned.safetensors")))
    raw, _ = held_out_windows(run, 48)
    xq = quantize_input(run.normalization.apply(raw))
    return model, NativeLibrary(build_library(model_sources(model))), xq, run


def test_columns_store_only_nonzero_weights():
    w = np.array([[0, 3, 0], [-2, 0, 0], [5, 1, 0]], np.int8)
    starts, rows, vals = columns(w)
    assert starts.tolist() == [0, 2, 4, 4]
    assert rows.tolist() == [1, 2, 0, 2] and vals.tolist() == [-2, 5, 3, 1]


def test_engine_is_bit_exact_with_the_reference(engine):
    model, lib, xq, _ = engine
    ref = run_reference(model, xq, record=True)
    counts, membranes = lib.run_windows(xq, membranes=True)
    assert membranes.shape == ref.membranes.shape
    assert np.array_equal(membranes, ref.membranes)  # every neuron, every step, every window
    assert np.array_equal(counts, ref.counts)
    assert ref.spikes["h"].any() and ref.spikes["out"].any()  # the windows exercise the event-driven paths


def test_one_lane_steps_like_the_batch_runner(engine):
    model, lib, xq, run = engine
    step = NativeStep(lib)
    z = xq[3].astype(np.float64) / 2048.0  # quantises back to the same int16 samples
    counts = sum(step.step(s) for s in z)
    step.reset()
    again = sum(step.step(s) for s in z)
    ref = run_reference(model, xq[3:4]).counts[0]
    assert np.array_equal(counts, ref) and np.array_equal(again, ref)


def test_stream_lanes_and_decisions_follow_the_contract(engine):
    model, lib, xq, run = engine
    window, hop = xq.shape[1], xq.shape[1] // 2
    segment = np.ascontiguousarray(xq[:6].reshape(-1, 6))  # one segment of six windows back to back
    stream = ctypes.create_string_buffer(lib.lib.har_stream_bytes())
    assert lib.lib.har_stream_init(stream, window, hop, 2, 1) == 0
    assert lib.lib.har_stream_init(stream, window, hop, 1, 1) == -1  # one lane cannot hold overlapping windows
    assert lib.lib.har_stream_init(stream, window, hop, 2, 1) == 0

    got = [(c, counts) for c, counts in _stream_decisions(lib, stream, segment)]
    starts = range(0, len(segment) - window + 1, hop)
    expected = run_reference(model, np.stack([segment[s:s + window] for s in starts])).counts
    assert [c for _, c in got] == expected.tolist()
    assert [k for k, _ in got] == [decide(c)[0] for c in expected]


def test_har_live_replays_bundled_data_on_the_native_backend(int8_run):
    import json

    from cli import har

    proc = har("live", "--run", str(int8_run), "--replay", "bundled", "--backend", "native", "--speed", "0", "--json")
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    summary = events[-1]
    decisions = [e for e in events if e["event"] == "decision"]
    assert summary["event"] == "summary" and summary["backend"] == "native"
    assert summary["decisions"] == len(decisions) > 0
    run = open_run(int8_run)
    assert all(e["class"] in run.classes and sum(e["spike_counts"]) <= run.window * len(run.classes) for e in decisions)


def test_native_lanes_of_a_run_follow_the_integer_stage(int8_run):
    from har_app.live.backends import choose_backend, open_lanes
    from deploy.integer.stage import integer_weights_file, load_integer_model

    run = open_run(int8_run)
    assert choose_backend(run, "native", print) == "native"
    lanes = open_lanes(run, "native", 2)
    model = load_integer_model(run, integer_weights_file(run))
    assert integer_weights_file(run) == "weights_integer.safetensors"
    from deploy.parity import held_out_windows

    raw, _ = held_out_windows(run, 2)
    z = run.normalization.apply(raw)
    for lane, window in zip(lanes, z):
        counts = sum(lane.step(s) for s in window)
        assert np.array_equal(counts, run_reference(model, quantize_input(window[None])).counts[0])


def test_stream_without_resets_decides_over_the_last_window(engine):
    """The contract's zero-state-per-stream rule: one lane, state kept, a decision every hop over the last window."""
    model, lib, xq, run = engine
    window, hop = xq.shape[1], 10
    segment = np.ascontiguousarray(xq[:4].reshape(-1, 6))
    stream = ctypes.create_string_buffer(lib.lib.har_stream_bytes())
    assert lib.lib.har_stream_init(stream, window, hop, 2, 0) == -1  # one lane only
    assert lib.lib.har_stream_init(stream, window, hop, 1, 0) == 0

    got = [counts for _, counts in _stream_decisions(lib, stream, segment)]
    out = run_reference(model, segment[None], record=True).spikes["out"][0].astype(np.int64)  # never reset
    ends = [i for i in range(window, len(segment) + 1) if i % hop == 0]
    assert got == [out[i - window:i].sum(0).tolist() for i in ends]


def _stream_decisions(lib, stream, segment: np.ndarray) -> list[tuple[int, list[int]]]:
    """(class, counts) of every decision `har_stream_push` makes over the samples of `segment`."""

    class Decision(ctypes.Structure):
        _fields_ = [("class_index", ctypes.c_uint8), ("counts", ctypes.c_uint16 * lib.classes),
                    ("total", ctypes.c_uint16)]

    got, d = [], Decision()
    for sample in segment:
        if lib.lib.har_stream_push(stream, np.ascontiguousarray(sample).ctypes.data, ctypes.byref(d)):
            got.append((d.class_index, list(d.counts)))
    return got
