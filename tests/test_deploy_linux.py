"""`har deploy` for Linux boards: the bundle's runner classifies a real recording exactly as LiteRT does window by
window (a stream run's: one lane stepped through each segment), benchmarks itself, and the Android bundle carries
readable TFLite metadata and labels, and a stream run's Kotlin config its reset rule."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from rich.console import Console

from conftest import TINY_CLASSES, TINY_TEST_SUBJECT, fresh_litert_counts
from deploy.pipeline import DeployRequest, deploy
from test_contract import assert_same_decisions, pi_runner_and_live_replay  # the windowed rule's cross-runtime check
from training.run_dir import open_run


@pytest.fixture(scope="module")
def rpi4_bundle(int8_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("rpi4") / "bundle"
    return deploy(DeployRequest(device="rpi4", run=int8_run, out=out), Console(stderr=True, quiet=True)), out


def _recording_csv(run, path):
    """A real seglearn recording of the held-out subject, resampled to the model rate, in har's CSV format."""
    from training.sources import load_dataset
    from training.sources.csv_recordings import write_csv_recording
    from training.windowing import resample

    rec = next(r for r in load_dataset("seglearn", TINY_CLASSES).recordings if r.subject == TINY_TEST_SUBJECT)
    x = resample(rec.samples, rec.fs_hz, run.fs_hz)
    write_csv_recording(path, np.arange(len(x)) / run.fs_hz, x, [rec.label] * len(x), rec.subject)
    return x, rec.label


def _litert_decisions(model: bytes, z: np.ndarray, window: int, hop: int) -> list[int]:
    """Reference: every window k (start k * hop) on a fresh interpreter; argmax of summed spikes."""
    windows = np.array([z[start : start + window] for start in range(0, len(z) - window + 1, hop)])
    return fresh_litert_counts(model, windows).argmax(1).tolist()


def test_runner_streams_a_real_recording_like_litert(rpi4_bundle, int8_run, tmp_path):
    result, out = rpi4_bundle
    run = open_run(int8_run)
    x, label = _recording_csv(run, tmp_path / "rec.csv")
    done = subprocess.run([sys.executable, str(out / "har_runner.py"), "--csv", str(tmp_path / "rec.csv"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(ln) for ln in done.stdout.splitlines()]
    decisions, summary = lines[:-1], lines[-1]["summary"]
    expected = _litert_decisions((int8_run / "model_int8.tflite").read_bytes(), run.normalization.apply(x),
                                 run.window, run.hop)
    assert len(decisions) == len(expected) > 3
    assert [d["class_index"] for d in decisions] == expected
    assert all(d["label"] == label and d["class"] == run.classes[d["class_index"]] for d in decisions)
    assert summary["samples"] == len(x) and summary["malformed"] == 0 and summary["per_step_us"]["n"] > 0


@pytest.fixture(scope="module")
def rpi4_stream_bundle(int8_stream_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("rpi4-stream") / "bundle"
    return deploy(DeployRequest(device="rpi4", run=int8_stream_run, out=out), Console(stderr=True, quiet=True)), out


def _segments_csv(run, path, gap_s: float) -> list[np.ndarray]:
    """The held-out subject's real recordings at the model rate, one after another with `gap_s` of silence between
    them, in har's CSV format; returns each recording's samples as written (6 significant digits)."""
    from training.sources import load_dataset
    from training.sources.csv_recordings import format_csv
    from training.windowing import resample

    recs = [r for r in load_dataset("seglearn", TINY_CLASSES).recordings if r.subject == TINY_TEST_SUBJECT]
    text, segments, t0 = [], [], 0.0
    for i, r in enumerate(recs):
        x = resample(r.samples, r.fs_hz, run.fs_hz)
        t = t0 + np.arange(len(x)) / run.fs_hz
        text.append(format_csv(t, x, [r.label] * len(x), r.subject, header=i == 0))
        segments.append(np.array([[float(f"{v:.6g}") for v in row] for row in x], np.float32))
        t0 = t[-1] + gap_s
    path.write_text("".join(text))
    return segments


def _litert_spikes(model: bytes, segments: list[np.ndarray], zero_each: bool) -> list[np.ndarray]:
    """Output spikes (n_i, C) of LiteRT stepped through normalised segments (n_i, 6) without any reset: a fresh
    interpreter (the zero state, no reset relied on) per segment if `zero_each`, else one through them all."""
    from ai_edge_litert.interpreter import Interpreter

    out, it = [], None
    for z in segments:
        if it is None or zero_each:
            it = Interpreter(model_content=model)
            it.allocate_tensors()
        i, o = it.get_input_details()[0], it.get_output_details()[0]
        (s_in, z_in), (s_out, z_out) = i["quantization"], o["quantization"]
        spikes = []
        for x in z:
            it.set_tensor(i["index"], np.clip(np.round(x / s_in + z_in), -128, 127).astype(np.int8)[None])
            it.invoke()
            spikes.append(s_out * (it.get_tensor(o["index"])[0].astype(np.float32) - z_out) > 0.5)
        out.append(np.array(spikes, np.int64))
    return out


def _ring_counts(spikes: np.ndarray, window: int, hop: int) -> np.ndarray:
    """The stream rule's decision counts (D, C): at every t with t + 1 >= window and (t + 1) % hop == 0, the output
    spikes of steps t - window + 1 .. t summed."""
    n = np.concatenate([np.zeros((1, spikes.shape[1]), np.int64), np.cumsum(spikes, axis=0)])  # n[e] = steps 0..e-1
    return np.array([n[e] - n[e - window] for e in range(window, len(spikes) + 1) if e % hop == 0])


def test_stream_runner_steps_one_lane_through_each_segment(rpi4_stream_bundle, int8_stream_run, tmp_path):
    """A stream run's bundle: one lane, zeroed only where a gap longer than the resampler's max_gap_s starts a new
    segment, a decision every hop over the last window of output spikes, exactly as LiteRT stepped through each
    segment from the zero state. Neither neighbouring rule gives these counts on this recording (checked here, so
    that the agreement tells the rules apart): one state run on through the gaps, or a reset at every window."""
    _, out = rpi4_stream_bundle
    run = open_run(int8_stream_run)
    manifest = json.loads((out / "har-contract.json").read_text())
    assert (manifest["reset_rule"], manifest["lanes"]) == ("zero-state-per-stream", 1)
    segments = _segments_csv(run, tmp_path / "rec.csv", 2 * manifest["resampler"]["max_gap_s"])
    done = subprocess.run([sys.executable, str(out / "har_runner.py"), "--csv", str(tmp_path / "rec.csv"), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    *decisions, summary = [json.loads(ln) for ln in done.stdout.splitlines()]
    model = (int8_stream_run / "model_int8.tflite").read_bytes()
    z = [run.normalization.apply(x) for x in segments]
    expected = np.concatenate([_ring_counts(s, run.window, run.hop) for s in _litert_spikes(model, z, True)])
    assert summary["summary"]["segments"] == len(segments) and summary["summary"]["samples"] == sum(map(len, z))
    assert [d["counts"] for d in decisions] == expected.tolist()
    assert [d["class_index"] for d in decisions] == expected.argmax(1).tolist()
    through_gaps = np.concatenate([_ring_counts(s, run.window, run.hop) for s in _litert_spikes(model, z, False)])
    per_window = np.concatenate([fresh_litert_counts(model, np.array([s[e - run.window : e]
                                                                      for e in range(run.window, len(s) + 1, run.hop)]))
                                 for s in z])
    assert run.window % run.hop == 0  # so the per-window rule decides at the same steps
    assert (through_gaps != expected).any() and (per_window != expected).any()


def test_stream_runner_without_har_decides_as_har_live_replay(rpi4_stream_bundle, int8_stream_run, tmp_path):
    """The cross-runtime check of the stream rule: the Pi runner with no `har` importable and `har live --replay`
    on a recording at the watch's own rate (resampling and gaps included) give the same decisions."""
    _, out = rpi4_stream_bundle
    pi, summary, events = pi_runner_and_live_replay(out, int8_stream_run, tmp_path)
    assert events[0]["lanes"] == 1
    assert_same_decisions(pi, summary, events)


def test_stream_runner_benchmarks_one_step_per_sample(rpi4_stream_bundle):
    _, out = rpi4_stream_bundle
    bench = subprocess.run([sys.executable, str(out / "har_runner.py"), "--benchmark", "--runs", "50"],
                           capture_output=True, text=True, timeout=120)
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)["benchmark"]
    hop = json.loads((out / "har-contract.json").read_text())["hop"]
    assert report["per_decision_us"]["n"] == 50 and report["per_step_us"]["n"] == 50 * hop  # one lane, hop steps


def test_runner_skips_malformed_stdin_lines_and_benchmarks(rpi4_bundle):
    _, out = rpi4_bundle
    rows = ["1 2 3 0.1 0.2 0.3"] * 30 + ["not a sample", "1,2,3"] + ["3,2,1,0,0,0"] * 30  # 60 valid: windows 0, 1
    done = subprocess.run([sys.executable, str(out / "har_runner.py"), "--stdin", "--json"], input="\n".join(rows),
                          capture_output=True, text=True, timeout=120)
    summary = json.loads(done.stdout.splitlines()[-1])["summary"]
    assert done.returncode == 0 and summary == {**summary, "samples": 60, "malformed": 2, "decisions": 2}
    bench = subprocess.run([sys.executable, str(out / "har_runner.py"), "--benchmark", "--runs", "50"],
                           capture_output=True, text=True, timeout=120)
    report = json.loads(bench.stdout)["benchmark"]
    assert report["per_decision_us"]["n"] == 50 and report["per_step_us"]["n"] == 50 * 40
    assert 0 < report["per_step_us"]["median"] <= report["per_step_us"]["p99"]


def test_rpi4_bundle_contents_and_estimate(rpi4_bundle):
    result, out = rpi4_bundle
    assert {"model_int8.tflite", "har-contract.json", "har_runner.py", "requirements.txt", "har.service",
            "labels.txt", "report.json"} <= {p.name for p in out.iterdir()}
    assert result["latency_us"]["estimate"] is True and result["parity"] is None
    assert "numpy" in (out / "requirements.txt").read_text() and "ExecStart=" in (out / "har.service").read_text()


def test_host_latency_is_measured(int8_run, tmp_path):
    result = deploy(DeployRequest(device="host", run=int8_run, out=tmp_path / "host"), Console(stderr=True, quiet=True))
    lat = result["latency_us"]
    assert lat["estimate"] is False and result["benchmark"]["host"] == "localhost"
    assert 0 < lat["per_sample"] <= lat["p99_per_sample"] and lat["per_decision"] > lat["per_sample"]
    assert result["energy_uj_per_decision"]["value"] == pytest.approx(lat["per_decision"] * 3500e-3)


def _table_field(buf: bytes, table_pos: int, slot: int):
    """Absolute position of a field of a flatbuffer table (generic reader, independent of the writer)."""
    import flatbuffers

    table = flatbuffers.table.Table(buf, table_pos)
    off = table.Offset(4 + 2 * slot)
    return table, off


def _string(buf: bytes, table_pos: int, slot: int) -> str:
    table, off = _table_field(buf, table_pos, slot)
    return table.String(off + table.Pos).decode()


def _vector_tables(buf: bytes, table_pos: int, slot: int) -> list[int]:
    table, off = _table_field(buf, table_pos, slot)
    start = table.Vector(off)
    return [table.Indirect(start + 4 * i) for i in range(table.VectorLen(off))]


def test_android_model_carries_metadata_and_labels(int8_run, tmp_path):
    import ai_edge_litert.schema_py_generated as schema

    deploy(DeployRequest(device="android", run=int8_run, out=tmp_path / "a"), Console(stderr=True, quiet=True))
    data = (tmp_path / "a" / "har_model.tflite").read_bytes()
    assert zipfile.ZipFile(io.BytesIO(data)).read("labels.txt").decode().split() == TINY_CLASSES
    model = schema.Model.GetRootAs(data, 0)
    entries = {model.Metadata(i).Name(): model.Metadata(i).Buffer() for i in range(model.MetadataLength())}
    meta = model.Buffers(entries[b"TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert meta[4:8] == b"M001"
    root = int.from_bytes(meta[:4], "little")
    assert _string(meta, root, 0) == "har L2MU step"  # ModelMetadata.name
    subgraph = _vector_tables(meta, root, 3)[0]  # subgraph_metadata
    inp = _vector_tables(meta, subgraph, 2)[0]
    out = _vector_tables(meta, subgraph, 3)[0]
    assert _string(meta, inp, 0) == "x_t" and "acc_x" in _string(meta, inp, 1)
    labels_file = _vector_tables(meta, out, 6)[0]  # TensorMetadata.associated_files
    assert _string(meta, labels_file, 0) == "labels.txt"
    table, off = _table_field(meta, labels_file, 2)
    assert table.Get(flatbuffers_int8(), off + table.Pos) == 2  # TENSOR_AXIS_LABELS
    assert (tmp_path / "a" / "labels.txt").read_text().split() == TINY_CLASSES
    _kotlin_uses_the_models_signatures((tmp_path / "a" / "HarClassifier.kt").read_text(), data)
    _same_outputs(data, (int8_run / "model_int8.tflite").read_bytes())


def test_a_stream_runs_kotlin_config_carries_its_reset_rule(int8_stream_run, tmp_path):
    """HarModelConfig.kt of a stream run: one lane, RESET_WINDOWS false (HarClassifier.kt's stream rule), window and
    hop of the manifest; the classifier reads the rule from the config only."""
    out = tmp_path / "a"
    deploy(DeployRequest(device="android", run=int8_stream_run, out=out), Console(stderr=True, quiet=True))
    manifest = json.loads((out / "har-contract.json").read_text())
    config = dict(re.findall(r"const val (\w+) = (\S+)", (out / "HarModelConfig.kt").read_text()))
    assert (manifest["reset_rule"], manifest["lanes"]) == ("zero-state-per-stream", 1)
    assert (config["RESET_WINDOWS"], int(config["LANES"])) == ("false", manifest["lanes"])
    assert (int(config["WINDOW"]), int(config["HOP"])) == (manifest["window"], manifest["hop"])
    kotlin = (out / "HarClassifier.kt").read_text()
    assert "if (HarModelConfig.RESET_WINDOWS) pushWindows() else pushStream()" in kotlin
    assert "zero-state-per" not in "\n".join(line.split("//")[0] for line in kotlin.splitlines())
    _kotlin_uses_the_models_signatures(kotlin, (out / "har_model.tflite").read_bytes())


def _kotlin_uses_the_models_signatures(kotlin: str, model: bytes) -> None:
    """Every signature and tensor name HarClassifier.kt passes to LiteRT exists in the bundled model, and a lane's
    state is zeroed with the zero_state signature."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_content=model).get_signature_list()
    runs = re.findall(r'runSignature\(mapOf\("(\w+)" to \w+\), mapOf\("(\w+)" to \w+\), "(\w+)"\)', kotlin)
    assert {key for *_, key in runs} == {"step", "zero_state"}
    for inp, out, key in runs:
        assert signatures[key] == {"inputs": [inp], "outputs": [out]}
    for name, key in re.findall(r'get(?:In|Out)putTensorFromSignature\("(\w+)", "(\w+)"\)', kotlin):
        assert name in signatures[key]["inputs"] + signatures[key]["outputs"]


def flatbuffers_int8():
    from flatbuffers import number_types

    return number_types.Int8Flags


def _same_outputs(a: bytes, b: bytes) -> None:
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(3).integers(-100, 100, (40, 6)).astype(np.int8)
    outs = []
    for model in (a, b):
        it = Interpreter(model_content=model)
        it.allocate_tensors()
        i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
        seq = []
        for row in x:
            it.set_tensor(i, row[None])
            it.invoke()
            seq.append(it.get_tensor(o).copy())
        outs.append(np.array(seq))
    assert np.array_equal(*outs)
