"""The MCU bundle as firmware: built unchanged with real compilers (g++ with TFLM's reference kernels following the
bundle README's Makefile; arm-none-eabi-g++ with CMSIS-NN through the harness), run natively and under QEMU
mps2-an386 (Cortex-M4F), fed real held-out windows; decisions and step outputs must be exactly those of the
tflite_micro Python interpreter. A stream run's bundle (one lane, reset only at a segment start) fed a real stream
decides as tflite_micro stepped through it, and as LiteRT does up to TFLM's rounding. Needs the TFLM source trees
($HAR_TFLM_ROOT, `make test` sets it to the kit)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from deploy.firmware.build import FirmwareSources, build_firmware
from deploy.firmware.qemu import run_firmware
from deploy.firmware.targets import CORTEX_M4, HOST
from deploy.firmware.tflm_lib import ROOT_ENV, locate_tree, tflm_library
from training.errors import HarError

HAR = [sys.executable, "-c", "from har_app.cli import main; main()"]
TOOLS = ("g++", "arm-none-eabi-g++", "qemu-system-arm")
WINDOWS = 8


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: a missing firmware dependency is a failure)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def tflm_root() -> Path:
    root = os.environ.get(ROOT_ENV)
    if not root:
        _missing(f"{ROOT_ENV} is not set: point it at the TFLM source trees (`make test` uses ../shared/third_party)")
    try:
        locate_tree(HOST, root)
        locate_tree(CORTEX_M4, root)
    except HarError as exc:
        _missing(f"{ROOT_ENV}={root}: {exc}")
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        _missing(f"{', '.join(missing)} not installed (`make system-deps`)")
    return Path(root)


@pytest.fixture(scope="module")
def bundle(int8_run, tmp_path_factory, tflm_root):
    """A plain `har deploy --device stm32l4r5` bundle (arena sized on the host) and held-out windows of the run."""
    from deploy.parity import held_out_windows
    from deploy.pipeline import DeployRequest, deploy
    from training.run_dir import open_run

    out = tmp_path_factory.mktemp("fw") / "har"
    result = deploy(DeployRequest(device="stm32l4r5", run=int8_run, out=out, parity_windows=4),
                    Console(stderr=True, quiet=True))
    raw, _ = held_out_windows(open_run(int8_run), WINDOWS)
    return out, result, raw.astype(np.float32)


def _quant(details: dict) -> tuple[float, int]:
    qp = details["quantization_parameters"]
    return float(qp["scales"][0]), int(qp["zero_points"][0])


def tflm_reference(model: bytes, z_windows: np.ndarray, arena: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(int8 inputs (N, T, 6), raw int8 outputs (N, T, C), spike counts (N, C)) from the tflite_micro interpreter,
    Reset() at each window start; q = round(z / s) + z0, spike = s (q - z0) > 0.5."""
    from tflite_micro import runtime as tflm

    it = tflm.Interpreter.from_bytes(model, arena_size=arena)
    (s_in, z_in), (s_out, z_out) = _quant(it.get_input_details(0)), _quant(it.get_output_details(0))
    q = np.clip(np.round(z_windows / s_in + z_in), -128, 127).astype(np.int8)
    outputs = []
    for window in q:
        it.reset()
        steps = []
        for x in window:
            it.set_input(x[None], 0)
            it.invoke()
            steps.append(it.get_output(0)[0].copy())
        outputs.append(steps)
    outputs = np.array(outputs, dtype=np.int8)
    counts = (s_out * (outputs.astype(np.float32) - z_out) > 0.5).sum(axis=1)
    return q, outputs, counts


@pytest.fixture(scope="module")
def reference(bundle, int8_run):
    from training.run_dir import open_run

    out, result, raw = bundle
    model = (int8_run / "model_int8.tflite").read_bytes()
    z = open_run(int8_run).normalization.apply(raw)
    return tflm_reference(model, z, result["arena"]["arena_bytes"])


def _readme_makefile(bundle_dir: Path) -> str:
    readme = (bundle_dir / "README.md").read_text()
    blocks = re.findall(r"```make\n(.*?)```", readme, re.S)
    assert len(blocks) == 1, "the bundle README has one Makefile"
    return blocks[0]


def _decisions(stdout: str) -> np.ndarray:
    return np.array([list(map(int, m.split())) for m in re.findall(r"^decision ([\d ]+)$", stdout, re.M)])


def _windows_file(folder: Path, raw: np.ndarray) -> None:
    import struct

    n, t, c = raw.shape
    (folder / "har_windows.bin").write_bytes(b"HARW" + struct.pack("<3I", n, t, c) + raw.astype("<f4").tobytes())


def test_readme_makefile_builds_the_bundle_on_the_host_and_matches_tflite_micro(bundle, reference, tflm_root,
                                                                                tmp_path):
    """The README's Makefile, as written, with the host tree: no warning, golden self-test passes, every window's
    decision and spike counts equal tflite_micro's."""
    from deploy.firmware.har_bundle import HAR_DIR

    out, _, raw = bundle
    (tmp_path / "Makefile").write_text(_readme_makefile(out))
    tree = locate_tree(HOST, tflm_root)
    lib = tflm_library(tree)  # the harness's cached build of the same tree (cold: minutes)
    driver = Path(str(HAR_DIR / "har_window_driver.cc"))
    done = subprocess.run(["make", f"TFLM_TREE={tree.path}", f"HAR_DIR={out}", f"TFLM_LIB={lib}",
                           f"BOARD_SRCS={driver}", "BUILD=build"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "warning:" not in done.stderr
    _windows_file(tmp_path, raw)
    run = subprocess.run([str(tmp_path / "build" / "har")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "golden window: matches the host TFLM reference" in run.stdout
    decisions = _decisions(run.stdout)
    _, _, counts = reference
    assert decisions.shape == (WINDOWS, counts.shape[1] + 1)
    assert np.array_equal(decisions[:, 1:], counts)
    assert np.array_equal(decisions[:, 0], counts.argmax(axis=1))


def test_bundle_on_emulated_cortex_m4_with_cmsis_nn_matches_tflite_micro(bundle, reference, tflm_root, tmp_path):
    """main.cc as generated, arm-none-eabi-g++ + CMSIS-NN, QEMU mps2-an386: no warning, golden self-test passes on
    the emulated M4, decisions identical."""
    from deploy.firmware.har_bundle import build_decision_firmware, run_decisions

    out, _, raw = bundle
    fw = build_decision_firmware(out, CORTEX_M4, tmp_path, tflm_root)
    assert fw.warnings == ()
    assert fw.sizes.text > (out / "har_model_data.cc").read_text().count("0x")  # the model lives in flash
    result = run_decisions(fw, raw, tflm_root)
    _, _, counts = reference
    assert result.golden_ok
    assert np.array_equal(result.counts, counts) and np.array_equal(result.classes, counts.argmax(axis=1))


@pytest.mark.parametrize("target", [HOST, CORTEX_M4], ids=lambda t: t.name)
def test_step_outputs_are_identical_to_tflite_micro(bundle, reference, tflm_root, tmp_path, target):
    """Every Invoke()'s raw int8 output on the host build and on the emulated M4 equals tflite_micro's; on the M4
    each Invoke() is counted and the 32-bit arena is smaller than the 64-bit host's."""
    from deploy.firmware.har_bundle import build_step_probe
    from deploy.firmware.tflm_probe import run_probe

    out, result, _ = bundle
    q, outputs, _ = reference
    fw = build_step_probe(out, target, tmp_path, tflm_root)
    assert fw.warnings == ()
    steps = run_probe(fw, q, count=not target.is_host, tflm_root=tflm_root)
    assert np.array_equal(steps.outputs, outputs)
    if target.is_host:
        assert steps.arena_used_bytes <= result["arena"]["min_arena_bytes"]
    else:
        assert steps.instructions.shape == q.shape[:2] and (steps.instructions > 1000).all()
        assert steps.arena_used_bytes < result["arena"]["min_arena_bytes"]


def _loop_program(folder: Path, iterations: int) -> Path:
    src = folder / f"loop{iterations}.c"
    src.write_text(f"""#include <stdio.h>
#include "prof.h"
int main(void) {{
  char line[32];
  if (!fgets(line, sizeof line, stdin)) return 1;
  FILE *f = fopen("note.txt", "w");
  fputs(line, f);
  fclose(f);
  prof_begin();
  __asm volatile("movs r0, #{iterations}\\n1: subs r0, r0, #1\\n bne 1b" ::: "r0", "cc");
  prof_end();
  printf("echo %s", line);
  return 7;
}}
""")
    return src


def test_harness_runs_plain_c_with_stdin_files_exit_code_and_exact_instruction_counts(tflm_root, tmp_path):
    """The harness API without TFLM: stdin, a semihosted file and the exit code reach the host; the counting
    plugin's region grows by exactly 2 instructions (subs, bne) per extra loop iteration."""
    regions = {}
    for n in (10, 110):
        fw = build_firmware(FirmwareSources((_loop_program(tmp_path, n),)), CORTEX_M4, tmp_path / f"b{n}", "loop")
        assert fw.warnings == () and fw.sizes.text > 0
        assert fw.sizes.data > 0 and fw.sizes.bss > 0  # newlib's reentrancy data and the semihosting handles
        result = run_firmware(fw, stdin=b"hello\n", cwd=tmp_path, count=True, tflm_root=tflm_root)
        assert result.exit_code == 7 and result.stdout == b"echo hello\n"
        assert (tmp_path / "note.txt").read_text() == "hello\n"
        assert len(result.regions) == 1 and result.total_instructions > result.regions[0]
        regions[n] = result.regions[0]
    assert regions[110] - regions[10] == 2 * 100


def test_deploy_verify_reports_measured_firmware_figures(int8_run, tflm_root, tmp_path):
    """`har deploy --verify --json`: measured instructions, ELF sizes and the target's arena; the bundle's arena
    and the fit come from them; latency is instructions x the profile's CPI, labelled an estimate."""
    from deploy.profiles import load_profile

    out = tmp_path / "bundle"
    done = subprocess.run([*HAR, "deploy", "--device", "stm32l4r5", "--run", str(int8_run), "--out", str(out),
                           "--verify", "--tflm-root", str(tflm_root), "--json"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    m = result["measured"]
    assert m["bit_exact"] is True and m["golden_self_test"] is True and m["compiler_warnings"] == 0
    assert m["windows"] == 32 and m["steps"] == 32 * 40
    assert 0 < m["instructions_per_step"]["median"] <= m["instructions_per_step"]["max"]
    assert m["instructions_per_decision"]["median"] >= 40 * m["instructions_per_step"]["min"]
    header = (out / "har_model_data.h").read_text()
    reserved = int(re.search(r"#define HAR_ARENA_BYTES (\d+)", header).group(1))
    assert m["arena_bytes"] < reserved <= 1.1 * m["arena_bytes"] + 16 and reserved == m["arena_reserved_bytes"]
    elf, fit = m["elf"], result["fit"]
    assert elf["bss"] > 2 * reserved  # two lanes' arenas are static arrays
    assert fit["flash_bytes"] == elf["text"] + elf["data"] and fit["code_bytes"] == fit["flash_bytes"] - len(
        (int8_run / "model_int8.tflite").read_bytes())
    profile = load_profile("stm32l4r5")
    lat = result["latency_us"]
    assert lat["estimate"] is True and "CPI" in lat["basis"]
    assert lat["per_sample"] == pytest.approx(
        m["instructions_per_step"]["median"] * profile.cycles_per_instruction / profile.clock_mhz)
    saved = json.loads((out / "report.json").read_text())
    assert saved["measured"] == m

    plain = subprocess.run([*HAR, "deploy", "--device", "stm32l4r5", "--run", str(int8_run), "--out",
                            str(tmp_path / "plain"), "--json"], capture_output=True, text=True)
    assert plain.returncode == 0, plain.stderr
    vs = json.loads(plain.stdout)["latency_us"]["vs_last_measurement"]
    assert vs["measured_instructions_per_step"] == m["instructions_per_step"]["median"]
    assert "op-count estimate" in vs["note"]


def test_verify_without_tflm_sources_names_the_variable(int8_run, tmp_path):
    env = {**os.environ, ROOT_ENV: str(tmp_path)}
    done = subprocess.run([*HAR, "deploy", "--device", "stm32l4r5", "--run", str(int8_run), "--verify"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and ROOT_ENV in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run([*HAR, "deploy", "--device", "host", "--run", str(int8_run), "--verify"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "MCU" in done.stderr


def test_bench_device_columns_come_from_executed_instructions(bundle, reference, tflm_root, int8_run, monkeypatch):
    """bench/device.py runs the step model through the same probe: a decision costs the window's invokes, and
    the stm32l4r5 latency is those instructions x the profile's CPI at its clock."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.device import device_from_instructions, emulated_decision
    from deploy.profiles import load_profile
    from deploy.tflite_model import inspect_step_model

    monkeypatch.setenv(ROOT_ENV, str(tflm_root))
    _, result, _ = bundle
    q, _, _ = reference
    model = (int8_run / "model_int8.tflite").read_bytes()
    info = inspect_step_model(model)
    emulated = emulated_decision(model, info.ops, q[:2], result["arena"]["min_arena_bytes"], len(info.states))
    assert emulated["invokes_per_decision"] == 40 and emulated["windows"] == 2
    insns = emulated["instructions_per_decision"]["median"]
    assert insns > 40 * 1000 and emulated["arena_used_bytes"] < result["arena"]["min_arena_bytes"]
    device = device_from_instructions(emulated)
    profile = load_profile("stm32l4r5")
    assert device["latency_us"] == pytest.approx(insns * profile.cycles_per_instruction / profile.clock_mhz)
    assert device["energy_uj"] == pytest.approx(device["latency_us"] * profile.active_mw * 1e-3)


@pytest.fixture(scope="module")
def stream_bundle(int8_stream_run, tmp_path_factory, tflm_root):
    """A `har deploy --device stm32l4r5` bundle of a stream run, and a real stream: the held-out subject's recordings
    at the model rate, cut to one length, one segment each (N, T, 6), SI units."""
    from deploy.pipeline import DeployRequest, deploy
    from training.run_dir import open_run
    from training.sources import load_dataset
    from training.windowing import resample

    from conftest import TINY_CLASSES, TINY_TEST_SUBJECT

    out = tmp_path_factory.mktemp("fw-stream") / "har"
    result = deploy(DeployRequest(device="stm32l4r5", run=int8_stream_run, out=out, parity_windows=4),
                    Console(stderr=True, quiet=True))
    run = open_run(int8_stream_run)
    recs = [r for r in load_dataset("seglearn", TINY_CLASSES).recordings if r.subject == TINY_TEST_SUBJECT]
    xs = [resample(r.samples, r.fs_hz, run.fs_hz) for r in recs]
    length = min(map(len, xs))
    return out, result, np.array([x[:length] for x in xs], np.float32)


def _stream_counts(lane_spikes, q: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The stream rule's decision counts (D, C) over quantised segments (N, T, 6): `lane_spikes(segment)` gives the
    output spikes (T, C) of the one lane stepped through a segment; a decision at every t with t + 1 >= window and
    (t + 1) % hop == 0, over the output spikes of steps t - window + 1 .. t."""
    counts = []
    for segment in q:
        spikes = lane_spikes(segment)
        n = np.concatenate([np.zeros((1, spikes.shape[1]), np.int64), np.cumsum(spikes, 0)])  # n[e]: steps 0..e-1
        counts += [n[e] - n[e - window] for e in range(window, len(segment) + 1) if e % hop == 0]
    return np.array(counts)


class _TflmLane:
    """tflite_micro's interpreter as the one lane: Reset() at each segment start (`zero_each`), or never (one state
    through the gaps)."""

    def __init__(self, model: bytes, arena: int, zero_each: bool = True) -> None:
        from tflite_micro import runtime as tflm

        self.it = tflm.Interpreter.from_bytes(model, arena_size=arena)
        self.out_q, self.zero_each = _quant(self.it.get_output_details(0)), zero_each

    def __call__(self, segment: np.ndarray) -> np.ndarray:
        if self.zero_each:
            self.it.reset()
        raw = []
        for x in segment:
            self.it.set_input(x[None], 0)
            self.it.invoke()
            raw.append(self.it.get_output(0)[0].copy())
        s_out, z_out = self.out_q
        return (s_out * (np.array(raw, np.float32) - z_out) > 0.5).astype(np.int64)  # spike: s (q - z0) > 0.5


class _LiteRTLane:
    """LiteRT's interpreter as the one lane: a fresh interpreter (the zero state) for each segment."""

    def __init__(self, model: bytes) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.model, self.Interpreter = model, Interpreter

    def __call__(self, segment: np.ndarray) -> np.ndarray:
        it = self.Interpreter(model_content=self.model)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        s_out, z_out = out["quantization"]
        spikes = []
        for x in segment:
            it.set_tensor(inp["index"], x[None])
            it.invoke()
            spikes.append(s_out * (it.get_tensor(out["index"])[0].astype(np.float32) - z_out) > 0.5)
        return np.array(spikes, np.int64)


def test_stream_bundle_on_emulated_cortex_m4_steps_one_lane_through_each_segment(stream_bundle, int8_stream_run,
                                                                                  tflm_root, tmp_path):
    """A stream run's bundle as generated (HAR_RESET_WINDOWS 0: one interpreter, a ring of HAR_WINDOW output-spike
    rows, Reset() only at a segment start), arm-none-eabi-g++ + CMSIS-NN on QEMU, fed a real stream of segments:
    every decision's counts are those of tflite_micro stepping one lane through each segment. Neither neighbouring
    rule gives them (one state through the gaps; a reset at every window), so the agreement tells the rules apart.
    LiteRT stepping the same int8 model through the same stream rounds FULLY_CONNECTED differently by up to 1 LSB
    (docs/toolchain.md) and, with no reset, a flipped spike stays in the state: measured on the tiny int8 run, 89 %
    of these 120 decisions agree (the differing ones where LiteRT's winner leads by at most 1 spike); on a full
    7-class run 98-100 % of 120-162 decisions per subject, leads of at most 5 spikes."""
    from deploy.firmware.har_bundle import GOLDEN_OK, build_decision_firmware
    from training.run_dir import open_run

    out, result, raw = stream_bundle
    header = dict(re.findall(r"#define (\w+) (\S+)", (out / "har_model_data.h").read_text()))
    assert (header["HAR_LANES"], header["HAR_RESET_WINDOWS"]) == ("1", "0")
    arena = int(header["HAR_ARENA_BYTES"])
    fw = build_decision_firmware(out, CORTEX_M4, tmp_path, tflm_root)
    assert fw.warnings == () and arena < fw.sizes.bss < 2 * arena  # one lane's arena
    _windows_file(tmp_path, raw)
    done = run_firmware(fw, cwd=tmp_path, tflm_root=tflm_root)
    stdout = done.stdout.decode()
    assert done.exit_code == 0 and GOLDEN_OK in stdout, stdout
    decisions = _decisions(stdout)

    run = open_run(int8_stream_run)
    model = (int8_stream_run / "model_int8.tflite").read_bytes()
    z = run.normalization.apply(raw)
    s_in, z_in = _quant(_TflmLane(model, arena).it.get_input_details(0))
    q = np.clip(np.round(z / s_in + z_in), -128, 127).astype(np.int8)
    expected = _stream_counts(_TflmLane(model, arena), q, run.window, run.hop)
    assert len(decisions) == len(expected) > 5 * len(raw)
    assert np.array_equal(decisions[:, 1:], expected) and np.array_equal(decisions[:, 0], expected.argmax(1))

    through_gaps = _stream_counts(_TflmLane(model, arena, zero_each=False), q, run.window, run.hop)
    assert run.window % run.hop == 0  # so the per-window rule decides at the same steps
    windows = np.array([seg[e - run.window : e] for seg in z for e in range(run.window, len(seg) + 1, run.hop)])
    _, _, per_window = tflm_reference(model, windows, arena)
    assert (through_gaps != expected).any() and (per_window != expected).any()

    litert = _stream_counts(_LiteRTLane(model), q, run.window, run.hop)
    agree = decisions[:, 0] == litert.argmax(1)
    leads = np.diff(np.sort(litert[~agree], axis=1)[:, -2:], axis=1)
    assert agree.mean() >= 0.85 and (leads <= 5).all()
