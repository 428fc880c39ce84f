"""`har deploy` for an MCU: the TFLM project's C array, op resolver, arena and golden window are right, the model
agrees between TFLM and LiteRT on real held-out windows, and a model that does not fit exits 3."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from rich.console import Console

from deploy.pipeline import DeployRequest, deploy

HAR = [sys.executable, "-c", "from har_app.cli import main; main()"]


@pytest.fixture(scope="module")
def stm32_bundle(int8_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("stm32") / "bundle"
    result = deploy(DeployRequest(device="stm32l4r5", run=int8_run, out=out), Console(stderr=True, quiet=True))
    return result, out


def test_c_array_holds_the_model_bytes(stm32_bundle, int8_run):
    _, out = stm32_bundle
    source = (out / "har_model_data.cc").read_text()
    assert "alignas(16) const unsigned char g_har_model[] = {" in source
    body = source.split("{", 1)[1].split("};", 1)[0]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == (int8_run / "model_int8.tflite").read_bytes()
    assert f"g_har_model_len = {len(data)};" in source


def test_resolver_registers_exactly_the_ops_litert_runs(stm32_bundle, int8_run):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_path=str(int8_run / "model_int8.tflite"),
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    used = {op["op_name"] for op in it._get_ops_details()}
    resolver = (stm32_bundle[1] / "har_op_resolver.h").read_text()
    registered = re.findall(r"r\.Add(\w+)\(\)", resolver)
    assert len(registered) == len(used) and f"MicroMutableOpResolver<{len(used)}>" in resolver
    camel = {"".join(p.capitalize() for p in op.split("_")) for op in used}
    assert set(registered) == camel


def test_arena_is_measured_and_runs_the_golden_window_in_tflm(stm32_bundle, int8_run):
    from tflite_micro import runtime as tflm

    from training.run_dir import open_run

    result, out = stm32_bundle
    arena = result["arena"]
    assert arena["min_arena_bytes"] < arena["arena_bytes"] <= 1.1 * arena["min_arena_bytes"] + 16
    config = (out / "har_model_config.h").read_text()
    assert f"#define HAR_ARENA_BYTES {arena['arena_bytes']}" in config
    golden = (out / "har_golden.h").read_text()
    rows = re.findall(r"\{([-0-9.e, f]+)\},", golden.split("kHarGoldenWindow")[1].split("};")[0])
    window = np.array([[float(v.strip().rstrip("f")) for v in row.split(",")] for row in rows], np.float32)
    expected = [int(v) for v in re.search(r"kHarGoldenCounts\[HAR_NUM_CLASSES\] = \{([0-9, ]+)\}", golden)
                .group(1).split(",")]
    run = open_run(int8_run)
    z = run.normalization.apply(window)
    it = tflm.Interpreter.from_bytes((int8_run / "model_int8.tflite").read_bytes(), arena_size=arena["arena_bytes"])
    qi, qo = it.get_input_details(0)["quantization_parameters"], it.get_output_details(0)["quantization_parameters"]
    counts = np.zeros(len(run.classes), int)
    for x in z:
        it.set_input(np.clip(np.round(x[None] / qi["scales"][0] + qi["zero_points"][0]), -128, 127).astype(np.int8), 0)
        it.invoke()
        counts += (qo["scales"][0] * (it.get_output(0)[0].astype(np.float32) - qo["zero_points"][0]) > 0.5)
    assert counts.tolist() == expected and window.shape == (run.window, 6)


def test_tflm_and_litert_agree_on_held_out_windows(stm32_bundle):
    parity = stm32_bundle[0]["parity"]
    assert parity["windows"] >= 8 and parity["steps"] == parity["windows"] * 40
    assert parity["decision_agreement"] >= 0.9  # toolchain.md section 7: +-1 LSB FC rounding may flip near-ties
    assert parity["step_outputs_exact"] >= 0.9
    assert 0.0 <= parity["window_counts_exact"] <= 1.0


def test_report_fields(stm32_bundle):
    result, out = stm32_bundle
    fit = result["fit"]
    assert fit["fits"] and fit["ram_bytes"] == 2 * result["arena"]["arena_bytes"] + 8192
    assert fit["flash_bytes"] == result["model"]["tflite_bytes"] + 98304
    assert result["latency_us"]["estimate"] is True
    assert result["latency_us"]["per_decision"] == pytest.approx(40 * result["latency_us"]["per_sample"])
    assert result["energy_uj_per_decision"]["value"] == pytest.approx(result["latency_us"]["per_decision"] * 44.9e-3)
    assert result["snn_synop_energy_uj_per_window"]["estimate"] is True
    assert (out / "report.json").exists() and (out / "README.md").exists() and (out / "main.cc").exists()


def test_model_that_does_not_fit_exits_3_with_one_line(int8_run, tmp_path):
    profile = (__import__("pathlib").Path(__file__).parent.parent / "device_profiles" / "stm32l4r5.toml").read_text()
    profile = profile.replace('name = "stm32l4r5"', 'name = "tiny"').replace("ram_bytes = 655360", "ram_bytes = 8192")
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(profile)
    done = subprocess.run([*HAR, "deploy", "--profile", str(tiny), "--run", str(int8_run), "--out",
                           str(tmp_path / "b")], capture_output=True, text=True)
    assert done.returncode == 3
    lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith(("INFO:", "WARNING:"))]
    assert len(lines) == 1 and "does not fit tiny" in lines[0] and "RAM" in lines[0]
    assert not (tmp_path / "b").exists()
