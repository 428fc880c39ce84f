"""Bad input and data loss through the real `har` CLI in a subprocess: every case ends with its exit code and
exactly one line on stderr (no traceback), and leaves nothing behind; `--out` never deletes what har did not
write, and an untrained run is never taken as the latest."""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from cli import assert_one_line_error, har, json_out
from test_deploy_ssh import sshd  # noqa: F401  (fixture: a real sshd on 127.0.0.1)

from training.sources.csv_recordings import format_csv

HAR_EXE = str(Path(sys.executable).parent / "har")


def tree(path: Path) -> dict[str, bytes]:
    """Every file below `path` (relative name -> content), to compare before and after a command."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


# --- har train: CLI numbers, refused before any data is read or any folder is created -------------------------

@pytest.mark.parametrize("args, fragment", [
    (["--rate", "0"], "--rate must be in [1, 1000] Hz, got 0.0"),
    (["--rate", "nan"], "--rate must be in [1, 1000] Hz, got nan"),
    (["--rate", "-20"], "--rate must be in [1, 1000] Hz, got -20.0"),
    (["--lr", "nan"], "--lr must be a positive number, got nan"),
    (["--lr", "-0.01"], "--lr must be a positive number, got -0.01"),
    (["--lr", "inf"], "--lr must be a positive number, got inf"),
    (["--batch-size", "0"], "--batch-size must be a positive integer, got 0"),
    (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
    (["--epochs", "-3"], "--epochs must be a positive integer, got -3"),
    (["--window", "0"], "--window must be a positive integer, got 0"),
    (["--hop", "-1"], "--hop must be a positive integer, got -1"),
    (["--patience", "0"], "--patience must be a positive integer, got 0"),
    (["--seed", "-1"], "--seed must be an integer in [0, 2^32), got -1"),
    (["--cv", "1"], "--cv must be 0 (one held-out split) or K >= 2, got 1"),
    (["--sparsity", "nan"], "--sparsity must be in [0, 1), got nan"),
    (["--finetune-epochs", "0"], "--finetune-epochs must be a positive integer, got 0"),
    (["--calibration-windows", "-5"], "--calibration-windows must be a positive integer, got -5"),
    (["--theta", "nan"], "theta must be positive (in steps), got nan"),
    (["--current-noise", "-1"], "current_noise must be a non-negative number, got -1.0"),
])
def test_bad_train_numbers(tmp_path, args, fragment):
    runs = tmp_path / "runs"
    assert_one_line_error(har("train", *args, "--runs-dir", str(runs)), 2, fragment)
    assert not runs.exists()  # nothing created, not even an empty run directory


def test_runs_dir_that_is_a_file(tmp_path):
    (tmp_path / "runs").write_text("mine")
    assert_one_line_error(har("train", "--runs-dir", str(tmp_path / "runs")), 2, "is a file, not a folder")
    assert_one_line_error(har("train", "--runs-dir", str(tmp_path / "runs" / "sub")), 2,
                          f"{tmp_path / 'runs'} is a file, not a folder")
    assert_one_line_error(har("live", "--runs-dir", str(tmp_path / "runs"), "--replay", "bundled"), 2,
                          "is a file, not a folder")
    assert (tmp_path / "runs").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["runs"]


def test_interrupted_before_the_first_epoch_leaves_no_run(tmp_path):
    """Ctrl-C once the data is loaded: exit 130, one line, no run directory. The hidden population is 16x the
    default so that the first epoch on all the bundled data (~3 s with the default model) lasts far longer than the
    signal takes to arrive."""
    runs = tmp_path / "runs"
    # As from a terminal: SIGINT at its default, also when this suite runs in a background job (which ignores it,
    # and Python then installs no KeyboardInterrupt handler).
    proc = subprocess.Popen([HAR_EXE, "train", "--epochs", "1", "--hidden", "1024", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stderr:
        if "windows of 40" in line:  # printed once the windows are cut, right before training starts
            break
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, rest
    errors = [ln for ln in rest.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "interrupted" in errors[0] and "Traceback" not in rest
    assert not runs.exists() or list(runs.iterdir()) == []


# --- run directories: config.json and normalization.json, read by `har live` and `har deploy` -----------------

def _set(section: str, key: str, value):
    def change(config: dict, norm: dict) -> None:
        config[section][key] = value
    return change


def _drop(section: str, key: str):
    def change(config: dict, norm: dict) -> None:
        del config[section][key]
    return change


def _norm(key: str, value):
    def change(config: dict, norm: dict) -> None:
        norm[key] = value
    return change


RUN_DIR_CASES = [
    ("no-window", _drop("data", "window"), "config.json: missing field data.window"),
    ("window-str", _set("data", "window", "40"), "config.json: data.window must be a positive integer, got '40'"),
    ("window-0", _set("data", "window", 0), "config.json: data.window must be a positive integer, got 0"),
    ("hop-neg", _set("data", "hop", -20), "config.json: data.hop must be a positive integer, got -20"),
    ("rate-0", _set("data", "fs_hz", 0), "config.json: data.fs_hz must be in [1, 1000] Hz, got 0"),
    ("rate-neg", _set("data", "fs_hz", -20.0), "config.json: data.fs_hz must be in [1, 1000] Hz, got -20.0"),
    ("classes-one", _set("data", "classes", ["PEN"]), "config.json: data.classes must be a list of at least two"),
    ("no-split", _drop("split", "test"), "config.json: missing field split.test"),
    ("hidden-str", _set("model", "hidden_size", "16"), "config.json: model: hidden_size must be >= 1, got '16'"),
    ("model-extra", _set("model", "bogus", 1), "config.json: model: unknown fields bogus"),
    ("no-classes-n", _drop("model", "n_classes"), "config.json: model: missing field n_classes"),
    ("n-classes", _set("model", "n_classes", 5), "model.n_classes is 5 but data.classes names 3 classes"),
    ("mean-5", _norm("mean", [0.0] * 5), "normalization.json: mean must be 6 finite numbers"),
    ("std-nan", _norm("std", [float("nan")] * 6),
     "normalization.json: std must be 6 finite positive numbers, got [nan"),
    ("std-zero", _norm("std", [1.0] * 5 + [0.0]), "normalization.json: std must be 6 finite positive numbers"),
    ("std-matrix", _norm("std", [[1.0] * 6]), "normalization.json: std must be 6 finite positive numbers"),
]


def _corrupt_copy(run: Path, dest: Path, change) -> Path:
    shutil.copytree(run, dest)
    config = json.loads((dest / "config.json").read_text())
    norm = json.loads((dest / "normalization.json").read_text())
    change(config, norm)
    (dest / "config.json").write_text(json.dumps(config))  # json writes NaN as NaN, which json.loads reads back
    (dest / "normalization.json").write_text(json.dumps(norm))
    return dest


@pytest.mark.parametrize("name, change, fragment", RUN_DIR_CASES, ids=[c[0] for c in RUN_DIR_CASES])
def test_corrupt_run_directory(tiny_run, tmp_path, name, change, fragment):
    run = _corrupt_copy(tiny_run, tmp_path / name, change)
    before = tree(run)
    assert_one_line_error(har("live", "--run", str(run), "--replay", "bundled", "--speed", "0", "--backend",
                              "torch"), 2, fragment)
    assert tree(run) == before


@pytest.mark.parametrize("name, change, fragment", [RUN_DIR_CASES[2], RUN_DIR_CASES[13]],
                         ids=[RUN_DIR_CASES[2][0], RUN_DIR_CASES[13][0]])
def test_corrupt_run_directory_for_deploy(tiny_run, tmp_path, name, change, fragment):
    run = _corrupt_copy(tiny_run, tmp_path / name, change)
    before = tree(run)
    assert_one_line_error(har("deploy", "--device", "rpi4", "--run", str(run)), 2, fragment)
    assert tree(run) == before  # no deploy/ folder either


@pytest.mark.parametrize("content, fragment", [
    (b"{not json", "config.json is not valid JSON"),
    (b'{"data": "\xff\xfe"}', "config.json is not valid JSON"),
    (b"[1, 2]", "config.json: must hold a JSON object, got list"),
])
def test_unreadable_config(tiny_run, tmp_path, content, fragment):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_bytes(content)
    assert_one_line_error(har("live", "--run", str(run), "--replay", "bundled"), 2, fragment)


# --- an untrained run is never "the latest" ----------------------------------------------------------------

def test_latest_run_skips_untrained_and_half_written_runs(tiny_run, tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(tiny_run, runs / "20000101-000000-trained")
    newer = {"20300101-000000-no-metrics": "metrics.json", "20300101-000001-no-weights": "weights.safetensors",
             "20300101-000002-no-normalization": "normalization.json"}
    for name, missing in newer.items():
        shutil.copytree(tiny_run, runs / name)
        (runs / name / missing).unlink()
    untrained = runs / "20300101-000003-no-epoch"  # e.g. written by an older har with --epochs 0
    shutil.copytree(tiny_run, untrained)
    metrics = json.loads((untrained / "metrics.json").read_text())
    metrics["training"].update(epochs_run=0, best_epoch=-1)
    (untrained / "metrics.json").write_text(json.dumps(metrics))
    rec = tmp_path / "rec.csv"
    _write_recording(rec, 1 / 50.0)
    proc = har("live", "--runs-dir", str(runs), "--replay", str(rec), "--speed", "0", "--backend", "torch", "--json")
    assert proc.returncode == 0, proc.stderr
    start = json.loads(proc.stdout.splitlines()[0])
    assert start["event"] == "start" and start["run"] == str(runs / "20000101-000000-trained")
    (runs / "20000101-000000-trained" / "metrics.json").unlink()
    assert_one_line_error(har("deploy", "--device", "rpi4", "--runs-dir", str(runs)), 2, "no trained run in")


# --- device profiles, replay, scan, record, remote dir ------------------------------------------------------

def test_profile_that_is_not_utf8(tmp_path):
    profile = tmp_path / "board.toml"
    profile.write_bytes(b'[device]\nname = "b\xe9"\n')
    assert_one_line_error(har("devices", "--profile", str(profile)), 2, "not UTF-8 text (byte 0xe9 at offset 18)")
    assert_one_line_error(har("deploy", "--profile", str(profile)), 2, f"device profile {profile}: not UTF-8")


def _write_recording(path: Path, step_s: float, n: int = 150) -> None:
    x = np.tile([0.0, 0.0, 9.81, 0.0, 0.0, 0.0], (n, 1))
    path.write_text(format_csv(np.arange(n) * step_s, x, ["PEN"] * n, "me"))


@pytest.mark.parametrize("step_s, args, fragment", [
    (1e7, [], "the timestamps give a sample rate of 1e-07 Hz (a median step of 1e+07 s)"),
    (0.02, ["--speed", "nan"], "--speed must be >= 0 (0: as fast as possible), got nan"),
    (0.02, ["--speed", "-2"], "--speed must be >= 0 (0: as fast as possible), got -2.0"),
])
def test_bad_replay(tiny_run, tmp_path, step_s, args, fragment):
    rec = tmp_path / "rec.csv"
    _write_recording(rec, step_s)
    assert_one_line_error(har("live", "--run", str(tiny_run), "--replay", str(rec), "--backend", "torch", *args), 2,
                          fragment)


@pytest.mark.parametrize("address", ["garbage", "unix:foo=bar", "unix:path"])
def test_scan_with_a_malformed_dbus_address(address):
    proc = har("scan", "--timeout", "0.2", env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": address})
    assert_one_line_error(proc, 2, "malformed D-Bus address in DBUS_SYSTEM_BUS_ADDRESS")


@pytest.mark.parametrize("timeout", ["nan", "0", "inf"])
def test_scan_timeout(timeout):
    assert_one_line_error(har("scan", "--timeout", timeout), 2, "--timeout must be in [0.1, 600] seconds, got")


def test_record_never_overwrites(tiny_run, tmp_path):
    rec = tmp_path / "rec.csv"
    _write_recording(rec, 1 / 50.0)
    base = ["live", "--run", str(tiny_run), "--replay", str(rec), "--speed", "0", "--backend", "torch", "--record"]
    thesis = tmp_path / "thesis.csv"
    thesis.write_text("my data\n")
    assert_one_line_error(har(*base, str(thesis)), 2, f"--record {thesis} already exists and is not empty")
    assert thesis.read_text() == "my data\n"
    assert_one_line_error(har(*base, str(tmp_path)), 2, "exists and is not a regular file")
    assert_one_line_error(har(*base, str(thesis / "x.csv")), 2, f"{thesis} is a file, not a folder")
    empty = tmp_path / "empty.csv"
    empty.touch()  # an empty file holds nothing to lose: the recording goes there
    proc = har(*base, str(empty), "--json")
    assert proc.returncode == 0, proc.stderr
    assert empty.read_text().startswith("timestamp_s,") and len(empty.read_text().splitlines()) == 151
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "rec.csv", "thesis.csv"]


@pytest.mark.parametrize("remote, fragment", [
    ("~bob/x", "'~' is expanded only at the start"),
    ("a/~/b", "'~' is expanded only at the start"),
    ("../x", "no '..'"),
])
def test_bad_remote_dir(tmp_path, remote, fragment):
    assert_one_line_error(har("deploy", "--device", "rpi4", "--host", "pi@localhost", "--remote-dir", remote,
                              "--runs-dir", str(tmp_path)), 2, fragment)


# --- har deploy --out: never deletes what it did not write --------------------------------------------------

def _deploy(run: Path, out: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HAR_EXE, "deploy", "--device", "rpi4", "--run", str(run), "--out", out, "--json"],
                          capture_output=True, text=True, timeout=600, cwd=cwd)


def test_out_refuses_what_it_did_not_write(int8_run, tmp_path):
    thesis = tmp_path / "thesis"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("years of work")
    (thesis / "notes").mkdir()
    (thesis / "notes" / "a.txt").write_text("a")
    plain = tmp_path / "config.toml"
    plain.write_text("mine = 1\n")
    link = tmp_path / "link"
    link.symlink_to(thesis)
    before = tree(tmp_path)
    cases = [(str(thesis), "is a folder that is not empty and holds no har bundle"),
             (str(plain), "is a file, not a folder"),
             (str(plain / "bundle"), f"{plain} is a file, not a folder"),
             (str(link), "is a symbolic link"),
             (".", "--out . is a folder that is not empty and holds no har bundle"),
             ("/", "the root folder cannot hold a bundle")]
    for out, fragment in cases:
        proc = _deploy(int8_run, out, cwd=thesis)
        assert_one_line_error(proc, 2, fragment)
    assert tree(tmp_path) == before and link.is_symlink()  # nothing deleted, changed or left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "link", "thesis"]  # no ..old-*/.new-*


def test_out_replaces_an_earlier_bundle_and_fills_an_empty_folder(int8_run, tmp_path):
    out = tmp_path / "bundle"
    first = json_out(_deploy(int8_run, str(out)))
    assert set(first["files"]) == {p.name for p in out.iterdir()}
    (out / "labels.txt").write_text("edited\n")  # a file of the bundle: replaced with the rest
    second = json_out(_deploy(int8_run, str(out)))
    assert second["files"] == first["files"] and (out / "labels.txt").read_text() != "edited\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no staging or old copy left
    (out / "thesis.tex").write_text("mine")  # the earlier bundle now also holds a file of the user's
    assert_one_line_error(_deploy(int8_run, str(out)), 2, "holds files that are not part of its earlier bundle "
                                                          "(thesis.tex)")
    assert (out / "thesis.tex").read_text() == "mine" and (out / "report.json").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    result = json_out(_deploy(int8_run, ".", cwd=empty))  # the working directory itself, empty
    assert result["bundle"] == str(empty) and empty.stat().st_ino == inode
    assert {p.name for p in empty.iterdir()} == set(result["files"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "empty"]


def test_remote_dir_tilde_is_the_remote_home(sshd, int8_run, tmp_path):
    """`--remote-dir ~/DIR` over a real ssh to this machine: the bundle lands in the user's home, and no folder
    literally named `~` is created."""
    port, identity, known_hosts, _ = sshd
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    name = f"har-test-{uuid.uuid4().hex[:8]}"
    try:
        proc = subprocess.run([HAR_EXE, "deploy", "--device", "rpi4", "--run", str(int8_run), "--out",
                               str(tmp_path / "b"), "--host", f"{getpass.getuser()}@127.0.0.1:{port}",
                               "--known-hosts", str(known_hosts), "--identity", str(identity), "--remote-dir",
                               f"~/{name}", "--remote-python", sys.executable, "--json"],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        assert (home / name / "har_runner.py").is_file() and not (home / "~" / name).exists()
    finally:
        shutil.rmtree(home / name, ignore_errors=True)
        shutil.rmtree(home / "~" / name, ignore_errors=True)
