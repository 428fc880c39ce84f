"""Device profiles: the shipped ones load, bad fields are refused with the field and value named, `har devices`
lists them without importing TensorFlow or torch; the op counts and the energy formulas."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deploy.energy import estimate_energy_per_decision, estimate_latency, snn_synop_energy
from deploy.opcount import step_ops
from deploy.profiles import list_profiles, load_profile, load_profile_file
from har_app.cli import app
from training.errors import HarError

SHIPPED = {"stm32l4r5", "stm32h743", "rpi4", "android", "host"}
PROFILES_DIR = Path(__file__).parent.parent / "device_profiles"
HAR = [sys.executable, "-c", "from har_app.cli import main; main()"]


def test_shipped_profiles_load_with_the_datasheet_figures():
    profiles = {p.name: p for p in list_profiles()}
    assert SHIPPED <= set(profiles)
    l4 = profiles["stm32l4r5"]
    assert (l4.core, l4.clock_mhz, l4.ram_bytes, l4.flash_bytes, l4.runtime) == (
        "Arm Cortex-M4F", 120.0, 640 * 1024, 2 * 1024 * 1024, "tflm")
    h7 = profiles["stm32h743"]
    assert (h7.clock_mhz, h7.ram_bytes, h7.flash_bytes) == (480.0, 1024 * 1024, 2 * 1024 * 1024)
    assert profiles["rpi4"].cores == 4 and profiles["rpi4"].runtime == "litert"
    assert load_profile("rpi4") == profiles["rpi4"]


def test_every_number_in_a_shipped_profile_has_a_comment():
    for path in PROFILES_DIR.glob("*.toml"):
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if value.strip() and value.strip()[0] in "0123456789":
                assert "#" in value, f"{path.name}: {key.strip()} has no source comment"


def _profile_text(**changes: str) -> str:
    text = (PROFILES_DIR / "stm32l4r5.toml").read_text()
    for key, value in changes.items():
        lines = text.splitlines()
        lines = [f"{key} = {value}" if ln.split("=")[0].strip() == key else ln for ln in lines]
        text = "\n".join(lines)
    return text


@pytest.mark.parametrize("changes, message", [
    ({"clock_mhz": "-120"}, "[device] clock_mhz must be a positive number, got -120"),
    ({"ram_bytes": '"640K"'}, "[memory] ram_bytes must be a positive integer, got '640K'"),
    ({"runtime": '"tensorrt"'}, "[device] runtime must be one of tflm, litert, got 'tensorrt'"),
    ({"bundle": '"fpga"'}, "[device] bundle must be one of mcu, linux, android, got 'fpga'"),
    ({"active_mw": "true"}, "[power] active_mw must be a positive number, got True"),
    ({"name": '"My Board"'}, "[device] name must be lower-case letters, digits, '-' or '_', got 'My Board'"),
])
def test_bad_field_is_named_with_its_value(tmp_path, changes, message):
    path = tmp_path / "bad.toml"
    path.write_text(_profile_text(**changes))
    with pytest.raises(HarError) as info:
        load_profile_file(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_missing_unknown_and_inconsistent_fields(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text(_profile_text().replace("idle_mw", "# idle_mw"))
    with pytest.raises(HarError, match=r"missing field \[power\] idle_mw"):
        load_profile_file(path)
    path.write_text(_profile_text() + "\n[power2]\nx = 1\n")
    with pytest.raises(HarError, match=r"unknown field \[power2\] x"):
        load_profile_file(path)
    path.write_text(_profile_text(runtime='"litert"'))
    with pytest.raises(HarError, match="runtime must be tflm for an mcu bundle"):
        load_profile_file(path)
    path.write_text("[device\nname=")
    with pytest.raises(HarError, match="not valid TOML"):
        load_profile_file(path)
    with pytest.raises(HarError, match="unknown device 'esp32'"):
        load_profile("esp32")


def test_har_devices_lists_profiles_and_a_user_profile(tmp_path):
    user = tmp_path / "myboard.toml"
    user.write_text(_profile_text(name='"myboard"', ram_bytes="65536"))
    result = CliRunner().invoke(app, ["devices", "--json", "--profile", str(user)])
    assert result.exit_code == 0, result.output
    devices = {d["name"]: d for d in json.loads(result.stdout)["devices"]}
    assert SHIPPED | {"myboard"} <= set(devices)
    assert devices["myboard"]["ram_bytes"] == 65536
    table = CliRunner().invoke(app, ["devices"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "stm32l4r5" in table.stdout and "Cortex-M7" in table.stdout


def test_bad_user_profile_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(_profile_text(flash_bytes="0"))
    done = subprocess.run([*HAR, "devices", "--profile", str(bad)],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "[memory] flash_bytes" in done.stderr


def test_cli_import_and_devices_do_not_import_torch_or_tensorflow():
    code = ("import sys\nfrom typer.testing import CliRunner\nimport har_app.cli as cli\n"
            "r = CliRunner().invoke(cli.app, ['devices', '--json'])\nassert r.exit_code == 0, r.output\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'tensorflow', 'tflite_micro'))\n"
            "print(heavy)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_step_ops_parameters_match_the_trained_model(tiny_run):
    from training.run_dir import open_run

    run = open_run(tiny_run)
    ops = step_ops(run.config["model"])
    assert ops["parameters"] == run.metrics["model"]["params"]  # torch's count of trainable parameters
    cfg = run.config["model"]
    P, E, H, M, d = cfg["pop_per_channel"], cfg["encoder_size"], cfg["hidden_size"], cfg["memory_size"], cfg["order"]
    assert ops["weights"]["encoder"] == 6 * P * E and ops["weights"]["w_h"] == H * H
    assert ops["weights"]["a_b_bar"] == M * (d + 1) * d


def test_latency_and_energy_formulas():
    profile = load_profile("stm32l4r5")  # 120 MHz, 8.1 cycles/MAC, 12 cycles/elementwise, 600 cycles/op, 44.9 mW
    latency = estimate_latency(profile, {"macs": 1000, "elementwise": 100, "ops": 10}, steps_per_decision=40)
    cycles = 1000 * 8.1 + 100 * 12 + 10 * 600  # 15,300 cycles
    assert latency["per_sample"] == pytest.approx(cycles / 120)
    assert latency["per_decision"] == pytest.approx(40 * cycles / 120)
    assert latency["estimate"] is True and "stm32l4r5" in latency["basis"]
    energy = estimate_energy_per_decision(profile, 10_000.0, measured=True)  # 10 ms x 44.9 mW = 449 uJ
    assert energy["value"] == pytest.approx(449.0) and energy["estimate"] is True and "measured" in energy["basis"]
    synop = snn_synop_energy(1_000_000, 2_000_000)  # 4.6 uJ + 1.8 uJ
    assert synop["value"] == pytest.approx(6.4) and synop["estimate"] is True and "5.7 %" in synop["caveat"]
