"""The generated C kernels of the integer engine (deploy/integer/codegen.py, csrc/har_engine.h) on a hand-built model
whose shapes and constants reach every path: compressed columns of every length 0..19 (the unrolled walk's
remainders, several loop turns, empty columns), population sizes that are not multiples of the fire pass's unroll,
leaks of 0, 1/2 (rounding ties) and 1, a negative threshold (neurons that fire from the zero state), delayed
projections from later populations and to themselves, membranes near +-2^30. Bit-exact with the numpy reference on
the host and, through the firmware harness, on the emulated Cortex-M4F (where the leak has its own Thumb-2 form)."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from deploy.integer.codegen import model_sources
from deploy.integer.host import NativeLibrary, build_library
from deploy.integer.model import InputProjection, IntegerL2MU, Population, Projection
from deploy.integer.reference import run_reference

WINDOWS, STEPS = 6, 25


def _matrix(rng: np.random.Generator, rows: int, lengths: list[int]) -> np.ndarray:
    """int8 (rows, len(lengths)) with lengths[j] nonzero weights in column j, at random rows."""
    w = np.zeros((rows, len(lengths)), np.int8)
    for j, n in enumerate(lengths):
        w[rng.choice(rows, n, replace=False), j] = rng.choice([-1, 1], n) * rng.integers(1, 128, n)
    return w


def _silent_last_row(w: np.ndarray) -> np.ndarray:
    return np.vstack([w, np.zeros((1, w.shape[1]), np.int8)])


def edge_model(seed: int = 3) -> IntegerL2MU:
    """a's last neuron gets no current: with beta 0 and threshold -5 it is U = -R thr = 5 on every step."""
    rng = np.random.default_rng(seed)
    pops = (
        Population("in", 6, 0, 1 << 15, 5 << 18, rng.integers(-2**18, 2**18, 6).astype(np.int32)),  # beta 1
        Population("a", 10, 0, 0, -5, np.zeros(10, np.int32)),  # beta 0, fires from U = 0
        Population("b", 19, 0, 1 << 14, 1 << 27, rng.integers(-2**24, 2**24, 19).astype(np.int32)),  # ties
        Population("c", 5, 0, 30001, 3 << 26, np.zeros(5, np.int32)),
    )
    projections = (
        Projection("a", "in", False, _silent_last_row(_matrix(rng, 9, [9, 0, 5, 1, 8, 3])), 12),
        Projection("a", "b", True, _silent_last_row(_matrix(rng, 9, list(range(9)) + list(range(9)) + [4])), 10),
        Projection("b", "a", False, _matrix(rng, 19, [11, 12, 13, 14, 15, 18, 6, 7, 8, 2]), 21),
        Projection("b", "c", True, _matrix(rng, 19, [19, 16, 9, 17, 10]), 20),
        Projection("c", "b", False, _matrix(rng, 5, [5, 0, 1, 2, 3, 4] * 3 + [5]), 19),
        Projection("c", "c", True, _matrix(rng, 5, [5, 4, 3, 2, 1]), 18),
    )
    return IntegerL2MU(pops, projections, InputProjection(rng.integers(-127, 128, 6).astype(np.int8),
                                                          np.array([0, 3, 1, 4, 2, 5]), 3))


def edge_inputs(seed: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).integers(-32768, 32768, (WINDOWS, STEPS, 6)).astype(np.int16)


def test_the_edge_model_reaches_the_paths_it_is_for():
    model, xq = edge_model(), edge_inputs()
    ref = run_reference(model, xq, record=True)
    lengths = np.concatenate([np.count_nonzero(q.weight_q, 0) for q in model.projections])
    assert set(range(20)) <= set(lengths.tolist())  # every remainder of 8, one to three loop turns, empty columns
    mem = ref.membranes.astype(np.int64)
    assert (mem[..., 6 + 9] == 5).all()  # threshold -5: fired from U[-1] = 0, so R = 1 from the first step on
    assert mem.min() < -2**29 and mem.max() > 2**29  # the leak's high word is exercised
    assert all(ref.spikes[p.name].any() and not ref.spikes[p.name].all() for p in model.populations[2:])
    b = model.populations[2]
    assert (mem[..., 16:16 + b.size] % 2 != 0).any()  # beta 1/2 meets odd membranes: rounding ties


def test_host_engine_is_bit_exact_on_the_edge_model():
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.fail("no C compiler: apt-get install gcc (CI must install it)")
    model, xq = edge_model(), edge_inputs()
    ref = run_reference(model, xq, record=True)
    counts, membranes = NativeLibrary(build_library(model_sources(model))).run_windows(xq, membranes=True)
    assert np.array_equal(membranes, ref.membranes)
    assert np.array_equal(counts, ref.counts)


def test_cortex_m4_engine_is_bit_exact_on_the_edge_model():
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make system-deps` (CI must install it)")
    if not (os.environ.get("HAR_TFLM_ROOT") or os.environ.get("HAR_QEMU_PLUGIN_API")):
        pytest.fail("set HAR_TFLM_ROOT (the Makefile does) so the harness finds the QEMU plugin API header")
    from deploy.firmware.targets import CORTEX_M4
    from deploy.integer.firmware import measure_native

    model, xq = edge_model(), edge_inputs()
    m = measure_native(model, model_sources(model), xq, STEPS, 13, 2, CORTEX_M4)
    assert m.bit_exact and m.decisions_match
