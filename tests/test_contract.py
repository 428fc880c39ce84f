"""The deployment contract: built from a real int8 run, written into every bundle as `har-contract.json`, checked on
load with one line naming the field; the generated C header and Kotlin config hold its values and the templates none;
the Pi runner, run from its bundle with no `har` importable, decides exactly as `har live --replay` on a recording at
the watch's own rate (resampling included)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from conftest import TINY_CLASSES, TINY_TEST_SUBJECT
from deploy.contract import MANIFEST, build_contract, read_bundle_contract
from deploy.har_contract import ContractError, contract_from_dict, load_contract
from deploy.pipeline import DeployRequest, deploy
from training.errors import HarError
from training.run_dir import open_run

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"


class Bundles(dict):
    """`har deploy` bundles of the int8 run, built on first use: bundles[device] -> folder."""

    def __init__(self, run: Path, root: Path) -> None:
        super().__init__()
        self.run, self.root = run, root

    def __missing__(self, device: str) -> Path:
        deploy(DeployRequest(device=device, run=self.run, out=self.root / device, parity_windows=2),
               Console(stderr=True, quiet=True))
        self[device] = self.root / device
        return self[device]


@pytest.fixture(scope="module")
def bundles(int8_run, tmp_path_factory) -> Bundles:
    return Bundles(int8_run, tmp_path_factory.mktemp("bundles"))


def test_contract_holds_the_run_and_the_models_own_values(int8_run):
    from ai_edge_litert.interpreter import Interpreter

    config = json.loads((int8_run / "config.json").read_text())["data"]
    norm = json.loads((int8_run / "normalization.json").read_text())
    step = Interpreter(model_content=(int8_run / "model_int8.tflite").read_bytes()).get_signature_runner("step")
    (s_in, z_in), (s_out, z_out) = (step.get_input_details()["x_t"]["quantization"],
                                    step.get_output_details()["spikes"]["quantization"])
    c = build_contract(open_run(int8_run))
    assert (c.window, c.hop, c.lanes, c.model_rate_hz) == (config["window"], config["hop"], 2, config["fs_hz"])
    assert list(c.classes) == TINY_CLASSES and list(c.mean) == norm["mean"] and list(c.std) == norm["std"]
    assert [ch.name for ch in c.channels] == norm["channels"] and [ch.unit for ch in c.channels] == norm["units"]
    assert (c.input_quantization.scale, c.input_quantization.zero_point) == (pytest.approx(s_in), z_in)
    assert (c.output_quantization.scale, c.output_quantization.zero_point) == (pytest.approx(s_out), z_out)
    assert c.spike_threshold == 0.5 and contract_from_dict(json.loads(c.to_json())) == c


def _broken(d: dict, path: str, value) -> dict:
    d = copy.deepcopy(d)
    *parents, leaf = path.split(".")
    target = d
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[leaf]
    else:
        target[leaf] = value
    return d


@pytest.mark.parametrize("path, value, named", [
    ("window", KeyError, "'window'"),
    ("hop", "20", "'hop'"),
    ("lanes", 3, "'lanes'"),
    ("version", 2, "'version'"),
    ("schema", "other", "'schema'"),
    ("normalization.std", [1.0, 1.0, 1.0, 1.0, 1.0, -1.0], "'normalization.std'"),
    ("input_quantization.scale", "big", "'input_quantization.scale'"),
    ("output_quantization.zero_point", 300, "'output_quantization.zero_point'"),
    ("spike_rule.threshold", KeyError, "'spike_rule.threshold'"),
    ("decision_rule", "majority", "'decision_rule'"),
    ("resampler.kaiser_beta", float("nan"), "'resampler.kaiser_beta'"),
])
def test_a_broken_manifest_fails_on_load_with_one_line_naming_the_field(bundles, tmp_path, path, value, named):
    good = json.loads((bundles["rpi4"] / MANIFEST).read_text())
    (tmp_path / MANIFEST).write_text(json.dumps(_broken(good, path, value)))
    with pytest.raises(ContractError) as err:
        load_contract(tmp_path / MANIFEST)
    message = str(err.value)
    assert named in message and "\n" not in message and message.startswith(str(tmp_path / MANIFEST))
    with pytest.raises(HarError) as har_err:
        read_bundle_contract(tmp_path)
    assert har_err.value.exit_code == 2 and named in str(har_err.value)


def test_every_bundle_template_runs_both_reset_rules_and_no_other(int8_run):
    from dataclasses import replace

    from deploy.contract import require_bundle_can_run
    from deploy.har_contract import STREAM_RESET_RULE

    contract = build_contract(open_run(int8_run))
    require_bundle_can_run(contract, "rpi4")  # the per-window rule
    require_bundle_can_run(replace(contract, reset_rule=STREAM_RESET_RULE, lanes=1), "rpi4")  # a stream run's
    with pytest.raises(HarError) as err:
        require_bundle_can_run(replace(contract, reset_rule="zero-state-per-decision"), "rpi4")
    assert err.value.exit_code == 3 and "zero-state-per-decision" in str(err.value) and "\n" not in str(err.value)


def test_every_bundle_carries_the_runs_manifest(bundles, int8_run):
    expected = build_contract(open_run(int8_run))
    for device in ("rpi4", "android", "stm32l4r5"):
        folder = bundles[device]
        assert read_bundle_contract(folder) == expected
        assert MANIFEST in json.loads((folder / "report.json").read_text())["files"]


def _c_defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"#define (\w+) (\S+)", text))


def _c_floats(text: str, name: str) -> list[float]:
    values = re.search(rf"{name}\[\w+\] = \{{([^}}]*)\}}", text).group(1)
    return [float(v.strip().rstrip("f")) for v in values.split(",")]


def test_c_header_holds_the_manifests_values(bundles):
    c = read_bundle_contract(bundles["stm32l4r5"])
    header = (bundles["stm32l4r5"] / "har_model_data.h").read_text()
    d = _c_defines(header)
    assert (int(d["HAR_WINDOW"]), int(d["HAR_HOP"]), int(d["HAR_LANES"])) == (c.window, c.hop, c.lanes)
    assert (int(d["HAR_CHANNELS"]), int(d["HAR_NUM_CLASSES"])) == (len(c.channels), len(c.classes))
    def f32(key: str) -> np.float32:
        return np.float32(d[key].rstrip("f"))

    assert f32("HAR_SAMPLE_RATE_HZ") == np.float32(c.model_rate_hz) and f32("HAR_SPIKE_THRESHOLD") == c.spike_threshold
    assert f32("HAR_INPUT_SCALE") == np.float32(c.input_quantization.scale)
    assert f32("HAR_OUTPUT_SCALE") == np.float32(c.output_quantization.scale)
    assert int(d["HAR_INPUT_ZERO_POINT"]) == c.input_quantization.zero_point
    assert int(d["HAR_OUTPUT_ZERO_POINT"]) == c.output_quantization.zero_point
    assert np.array_equal(np.float32(_c_floats(header, "kHarMean")), np.float32(c.mean))
    assert np.array_equal(np.float32(_c_floats(header, "kHarStd")), np.float32(c.std))
    assert re.findall(r'"([^"]*)"', header.split("kHarLabels", 1)[1].split(";")[0]) == list(c.classes)


def _kotlin_consts(text: str) -> dict[str, str]:
    return dict(re.findall(r"val (\w+) = (.+)", text))


def test_kotlin_config_holds_the_manifests_values(bundles):
    c = read_bundle_contract(bundles["android"])
    k = _kotlin_consts((bundles["android"] / "HarModelConfig.kt").read_text())
    def f32(key: str) -> np.float32:
        return np.float32(k[key].rstrip("f"))

    assert (int(k["WINDOW"]), int(k["HOP"]), int(k["LANES"]), int(k["CHANNELS"])) == (c.window, c.hop, c.lanes, 6)
    assert f32("RATE_HZ") == np.float32(c.model_rate_hz) and f32("SPIKE_THRESHOLD") == c.spike_threshold
    assert f32("INPUT_SCALE") == np.float32(c.input_quantization.scale)
    assert f32("OUTPUT_SCALE") == np.float32(c.output_quantization.scale)
    assert int(k["INPUT_ZERO_POINT"]) == c.input_quantization.zero_point
    assert int(k["OUTPUT_ZERO_POINT"]) == c.output_quantization.zero_point
    def floats(key: str) -> np.ndarray:
        return np.float32([v.strip().rstrip("f") for v in re.search(r"\((.*)\)", k[key]).group(1).split(",")])

    assert np.array_equal(floats("MEAN"), np.float32(c.mean)) and np.array_equal(floats("STD"), np.float32(c.std))
    assert re.findall(r'"([^"]*)"', k["LABELS"]) == list(c.classes)
    assert re.findall(r'"([^"]*)"', k["CHANNEL_NAMES"]) == [ch.name for ch in c.channels]


def test_templates_hold_no_contract_literal(bundles):
    """The classifier sources read every contract value from the generated config: no threshold, window, hop, lane
    count or scale written into them; they name the generated constants instead."""
    c = read_bundle_contract(bundles["android"])
    values = {f"{c.spike_threshold:g}", str(c.window), str(c.hop)}  # small counts such as L = 2 collide with codes
    for path in (bundles["android"] / "HarClassifier.kt", bundles["stm32l4r5"] / "har_inference.cc"):
        code = "\n".join(line.split("//")[0] for line in path.read_text().splitlines())  # comments may explain
        numbers = set(re.findall(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", code))
        assert not numbers & values, (path.name, numbers & values)
    kotlin = (bundles["android"] / "HarClassifier.kt").read_text()
    assert "HarModelConfig.LANES" in kotlin and "HarModelConfig.SPIKE_THRESHOLD" in kotlin


def test_linux_bundle_ships_the_contract_reader_and_resampler_verbatim(bundles):
    folder = bundles["rpi4"]
    assert (folder / "har_contract.py").read_bytes() == (DEPLOY / "har_contract.py").read_bytes()
    assert (folder / "har_resampler.py").read_bytes() == (DEPLOY / "stream_resampler.py").read_bytes()
    assert (folder / "har_native_log.py").read_bytes() == (DEPLOY / "native_log.py").read_bytes()
    portable = {"__future__", "json", "math", "os", "sys", "tempfile", "collections", "contextlib", "dataclasses",
                "pathlib", "numpy"}
    for name in ("har_contract.py", "stream_resampler.py", "native_log.py"):
        imports = re.findall(r"^(?:from|import) (\w+)", (DEPLOY / name).read_text(), re.M)
        assert set(imports) <= portable, (name, imports)


def _har_free_python(tmp_path: Path) -> list[str]:
    """A Python with numpy and ai-edge-litert but without `har`: a fresh venv whose only extra path is this venv's
    site-packages, added by a .pth line (so that folder's own .pth files, har's editable finder among them, never
    run), started with -I (no PYTHONPATH, no script folder, no user site)."""
    venv = tmp_path / "no-har-venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([str(python), "-I", "-c", "import numpy, ai_edge_litert\nimport deploy"],
                           capture_output=True, text=True, cwd=tmp_path)
    assert "No module named 'deploy'" in probe.stderr, probe.stderr
    return [str(python), "-I"]


def _watch_recording_csv(path: Path) -> str:
    """The held-out subject's real recordings at the watch's own 50 Hz, in har's CSV format, one after another
    (each recording its own time span, a 2 s gap between them: the gaps reset the lanes in both)."""
    from training.sources import load_dataset
    from training.sources.csv_recordings import format_csv

    recs = [r for r in load_dataset("seglearn", TINY_CLASSES).recordings if r.subject == TINY_TEST_SUBJECT][:3]
    text, t0 = [], 0.0
    for i, r in enumerate(recs):
        t = t0 + np.arange(len(r.samples)) / r.fs_hz
        text.append(format_csv(t, r.samples, [r.label] * len(t), r.subject, header=i == 0))
        t0 = t[-1] + 2.0
    path.write_text("".join(text))
    return recs[0].label


def pi_runner_and_live_replay(bundle: Path, run: Path, tmp_path: Path) -> tuple[list[dict], dict, list[dict]]:
    """The bundle's Pi runner (a Python with no `har` importable) and `har live --replay --backend litert` of `run`
    on the same watch-rate recording with gaps: (runner decisions, runner summary, har live events)."""
    csv = tmp_path / "watch.csv"
    _watch_recording_csv(csv)
    python = _har_free_python(tmp_path)
    runner = subprocess.run([*python, str(bundle / "har_runner.py"), "--csv", str(csv), "--json"],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env={"PATH": os.defpath})
    assert runner.returncode == 0, runner.stderr
    *pi, summary = [json.loads(line) for line in runner.stdout.splitlines()]
    live = subprocess.run([sys.executable, "-c", "from har_app.cli import main; main()", "live", "--replay", str(csv),
                           "--speed", "0", "--run", str(run), "--backend", "litert", "--json"],
                          capture_output=True, text=True, timeout=300)
    assert live.returncode == 0, live.stderr
    assert "XNNPACK" not in runner.stderr and "XNNPACK" not in live.stderr  # LiteRT's INFO line stays off stderr
    return pi, summary, [json.loads(line) for line in live.stdout.splitlines()]


def assert_same_decisions(pi: list[dict], summary: dict, events: list[dict]) -> None:
    """The runner's decisions are har live's: same segments, counts, classes, labels and times."""
    ours = [e for e in events if e["event"] == "decision"]
    assert summary["summary"]["segments"] == 3 == 1 + sum(e["event"] == "reset" for e in events)
    assert len(pi) == len(ours) > 10
    assert [d["counts"] for d in pi] == [e["spike_counts"] for e in ours]
    assert [(d["class"], d["label"]) for d in pi] == [(e["class"], e["label"]) for e in ours]
    assert [d["t_s"] for d in pi] == pytest.approx([e["t_s"] for e in ours], abs=1e-6)
    assert len({tuple(d["counts"]) for d in pi}) > 1  # spikes that differ between windows, so agreement means something


def test_pi_runner_without_har_decides_as_har_live_replay(bundles, int8_run, tmp_path):
    assert_same_decisions(*pi_runner_and_live_replay(bundles["rpi4"], int8_run, tmp_path))


@pytest.mark.parametrize("change, named", [
    ({"input_quantization": "double the scale"}, "'input_quantization'"),  # a manifest of another model
    ({"reset_rule": "zero-state-per-stream"}, "'lanes'"),  # a stream run's rule with the windowed lane count
])
def test_pi_runner_refuses_a_manifest_it_cannot_honour(bundles, tmp_path, change, named):
    import shutil

    folder = tmp_path / "bundle"
    shutil.copytree(bundles["rpi4"], folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    if "input_quantization" in change:
        manifest["input_quantization"]["scale"] *= 2
    else:
        manifest.update(change)
    (folder / MANIFEST).write_text(json.dumps(manifest))
    done = subprocess.run([sys.executable, str(folder / "har_runner.py"), "--stdin"], input="0 0 0 0 0 0\n",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and named in done.stderr and len(done.stderr.splitlines()) == 1
