"""`har deploy` for Linux boards: the bundle's runner classifies a real recording exactly as LiteRT does window by
window, benchmarks itself, and the Android bundle carries readable TFLite metadata and labels."""

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
