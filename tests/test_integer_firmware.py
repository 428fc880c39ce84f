"""The integer engine on an emulated Cortex-M4F (arm-none-eabi-gcc, QEMU mps2-an386, the firmware harness): every
membrane of every step of real held-out windows bit-exact with the numpy reference, and the contract's decisions."""

from __future__ import annotations

import os
import shutil

import pytest
from safetensors.numpy import load_file

from deploy.integer.codegen import model_sources
from deploy.integer.model import quantize_input
from deploy.integer.quantize import quantize_l2mu
from training.config import L2MUConfig
from training.run_dir import lanes_needed, open_run


def test_engine_on_cortex_m4_is_bit_exact(int8_run):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: run `make system-deps` (CI must install it)")
    if not (os.environ.get("HAR_TFLM_ROOT") or os.environ.get("HAR_QEMU_PLUGIN_API")):
        pytest.fail("set HAR_TFLM_ROOT (the Makefile does) so the harness finds the QEMU plugin API header")
    from deploy.firmware.targets import CORTEX_M4
    from deploy.integer.firmware import measure_native
    from deploy.parity import held_out_windows

    run = open_run(int8_run)
    model = quantize_l2mu(L2MUConfig.from_dict(run.config["model"]), load_file(str(int8_run / "weights_pruned.safetensors")))
    raw, _ = held_out_windows(run, 8)
    xq = quantize_input(run.normalization.apply(raw))
    m = measure_native(model, model_sources(model), xq, run.window, run.hop, lanes_needed(run.window, run.hop),
                       CORTEX_M4)
    assert m.bit_exact and m.decisions_match
    assert m.windows == len(xq)
    # what a user links is a part of the probe ELF, and the step executes instructions
    assert 0 < m.elf["text"] < m.whole_elf["text"]
    assert 0 < m.instructions_per_step["min"] <= m.instructions_per_step["median"] <= m.instructions_per_step["max"]
    assert m.state_bytes > model.n_neurons * 4
    # the zero-state-per-stream rule (one lane, no window resets) on the same core
    running = measure_native(model, model_sources(model), xq, run.window, run.hop, 1, CORTEX_M4, reset_windows=False)
    assert running.bit_exact and running.decisions_match


def test_deploy_native_writes_a_project_measured_on_the_emulated_core(int8_run, tmp_path):
    from rich.console import Console

    from deploy.pipeline import DeployRequest, deploy
    from deploy.profiles import load_profile

    out = tmp_path / "native"
    result = deploy(DeployRequest(device="stm32l4r5", run=int8_run, out=out, runtime="native", verify=True,
                                  parity_windows=4), Console(stderr=True, quiet=True))
    assert {"har_engine.c", "har_model.c", "main.c", "Makefile", "report.json"} <= {p.name for p in out.iterdir()}
    m = result["measured"]
    assert m["bit_exact"] and m["decisions_match"] and m["windows"] == 4
    assert result["fit"]["flash_bytes"] == m["elf"]["text"] + m["elf"]["data"]
    # latency = measured instructions x the profile's CPI / clock; energy = latency x active power
    p = load_profile("stm32l4r5")
    per_decision = m["instructions_per_decision"]["median"] * p.cycles_per_instruction / p.clock_mhz
    assert result["latency_us"]["per_decision"] == pytest.approx(per_decision)
    assert result["energy_uj_per_decision"]["value"] == pytest.approx(per_decision * p.active_mw * 1e-3)


def test_deploy_native_refuses_a_device_it_does_not_fit(int8_run, tmp_path):
    from importlib import resources

    from rich.console import Console

    from deploy.pipeline import DeployRequest, deploy
    from training.errors import HarError

    text = (resources.files("device_profiles") / "stm32l4r5.toml").read_text()
    small = tmp_path / "tiny.toml"
    small.write_text(text.replace("flash_bytes = 2097152", "flash_bytes = 2048"))
    with pytest.raises(HarError) as err:
        deploy(DeployRequest(profile=small, run=int8_run, out=tmp_path / "p", runtime="native", verify=True,
                             parity_windows=2), Console(stderr=True, quiet=True))
    assert err.value.exit_code == 3 and "does not fit" in str(err.value)
    assert not (tmp_path / "p").exists()
