"""`har tune` end to end on a tiny slice of the bundled watch data: a real Optuna study in SQLite, the best config
trained by `har train --config`, bad input, a real PostgreSQL server shared by two worker processes (one killed
mid-trial), and optuna-dashboard serving the study over HTTP on loopback."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from glob import glob
from pathlib import Path

import pytest

from cli import assert_one_line_error, har, json_out

SLICE = ["--subjects", "3,4,5,6,7", "--activities", "PEN,ABD,FEL", "--test-subjects", "4", "--folds", "2",
         "--epochs", "2", "--patience", "2"]
TINY_SPACE = """
[space]
lr = { low = 3e-3, high = 2e-2, log = true }
batch_size = 64
hidden_size = { low = 8, high = 16, step = 8 }
memory_size = { low = 4, high = 8, step = 4 }
order = { low = 2, high = 3 }
theta = { low = 4.0, high = 20.0 }
pop_per_channel = 2
encoder_size = { choices = [8, 16] }
encoder_out = 8
"beta.h" = { low = 0.3, high = 0.9, step = 0.1 }
"threshold.h" = { low = 0.2, high = 0.8, step = 0.1 }
"""


def _space(folder: Path, text: str = TINY_SPACE) -> Path:
    path = folder / "space.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, dict]:
    """`har tune --trials 2 --json` on the slice; (runs dir, JSON result)."""
    runs = tmp_path_factory.mktemp("tune")
    result = json_out(har("tune", "--name", "tiny", "--trials", "2", "--space", str(_space(runs)), *SLICE,
                          "--runs-dir", str(runs), "--json"))
    return runs, result


def _trials(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as con:
        return con.execute("SELECT number, state FROM trials ORDER BY number").fetchall()


def test_tune_runs_a_study_and_writes_best_config_trials_and_plots(study):
    runs, result = study
    assert result["study"] == "tiny" and result["storage"] == f"sqlite:///{(runs / 'tune-tiny.db').resolve()}"
    assert result["trials"] == 2 and result["test_subjects"] == ["4"]
    assert 0.0 <= result["best"]["value"] <= 1.0
    with open(result["trials_csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows if r["state"] in ("COMPLETE", "PRUNED")] and len(rows) == 2
    assert max(float(r["value"]) for r in rows if r["state"] == "COMPLETE") == result["best"]["value"]
    for name in ("optimization_history.png", "param_importances.png"):
        assert (Path(result["run_dir"]) / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = tomllib.loads(Path(result["best"]["config"]).read_text())
    assert best["model"]["hidden_size"] == result["best"]["params"]["hidden_size"]
    assert best["model"]["encoder_out"] == 8 and best["train"]["batch_size"] == 64  # fixed settings are kept
    assert best["model"]["neuron_params"]["h"] == pytest.approx(
        [result["best"]["params"]["beta.h"], result["best"]["params"]["threshold.h"]])


def test_har_train_accepts_the_best_config(study, tmp_path):
    _, result = study
    best = tomllib.loads(Path(result["best"]["config"]).read_text())
    run = json_out(har("train", "--config", result["best"]["config"], "--subjects", "3,4,5,6,7", "--activities",
                       "PEN,ABD,FEL", "--test-subjects", "4", "--val-subjects", "3", "--epochs", "1",
                       "--runs-dir", str(tmp_path), "--json"))
    config = json.loads((Path(run["run_dir"]) / "config.json").read_text())
    for key in ("hidden_size", "memory_size", "order", "theta", "encoder_size", "pop_per_channel"):
        assert config["model"][key] == best["model"][key], key
    assert config["model"]["neuron_params"]["h"] == pytest.approx(best["model"]["neuron_params"]["h"])
    assert config["train"]["lr"] == pytest.approx(best["train"]["lr"]) and config["train"]["epochs"] == 1


def test_no_trial_sees_the_test_subjects(study):
    import optuna

    from training.search_space import load_space
    from training.tune import Objective, StudyIdentity, TuneRequest, open_storage

    runs, result = study
    storage = open_storage(result["storage"], 30)
    ident = StudyIdentity(**optuna.load_study(study_name="tiny", storage=storage).user_attrs["har"])
    assert ident.test_subjects == ["4"] and "4" not in ident.train_subjects
    objective = Objective(TuneRequest(folds=2, epochs=2), ident, load_space(_space(runs)))
    assert set(objective.windows.subjects) == {"3", "5", "6", "7"}
    assert all("4" not in train + val for train, val in objective.folds)


def test_local_worker_processes_share_one_study(tmp_path):
    space = _space(tmp_path)
    result = json_out(har("tune", "--name", "local", "--workers", "2", "--trials", "3", "--space", str(space), *SLICE,
                          "--runs-dir", str(tmp_path), "--json"))
    with open(result["trials_csv"]) as f:
        rows = [r for r in csv.DictReader(f) if r["state"] in ("COMPLETE", "PRUNED")]
    assert result["trials"] == len(rows) >= 3  # a worker may finish one trial in flight when the target is reached
    assert len({r["worker"] for r in rows}) == 2


def test_a_new_study_first_scores_the_untuned_configuration(tmp_path):
    import optuna
    from rich.console import Console

    from training.run_config import load_run_config
    from training.search_space import UNTUNED
    from training.tune import TuneRequest, prepare

    storage, _, _ = prepare(TuneRequest(name="base", subjects=["3", "4", "5", "6", "7"], test_subjects=["4"],
                                        folds=2, runs_dir=tmp_path), Console(quiet=True))
    (first,) = optuna.load_study(study_name="base", storage=storage).get_trials(deepcopy=False)
    untuned = load_run_config(UNTUNED)
    assert first.state.name == "WAITING" and first.user_attrs["baseline"] == "untuned"
    params = first.system_attrs["fixed_params"]
    assert params["hidden_size"] == untuned.model["hidden_size"] == 64 and params["lr"] == untuned.train["lr"]
    assert (params["beta.h"], params["threshold.h"]) == tuple(untuned.model["neuron_params"]["h"])


@pytest.mark.parametrize("args, code, fragment", [
    (["--storage", "postgresql://a@b@c:x/y"], 2, "malformed storage URL"),
    (["--storage", "mysql://user@127.0.0.1/db"], 2, "use sqlite:///FILE or postgresql://"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/db"], 1, "cannot open storage"),
    (["--space", "EMPTY"], 2, "the search space is empty"),
    (["--space", "REVERSED"], 2, "low 64 is above high 8"),
    (["--space", "BAD_BETA"], 2, "beta must be in [0, 1]"),
])
def test_bad_tune_input_is_one_line(tmp_path, args, code, fragment):
    spaces = {"EMPTY": "[space]\nbatch_size = 64\n", "REVERSED": "[space]\nhidden_size = { low = 64, high = 8 }\n",
              "BAD_BETA": '[space]\n"beta.u" = { low = 0.5, high = 1.5 }\n'}
    args = [str(_space(tmp_path, spaces[a])) if a in spaces else a for a in args]
    assert_one_line_error(har("tune", "--trials", "1", *SLICE, "--runs-dir", str(tmp_path), *args), code, fragment)
    assert not (tmp_path / "tune-l2mu").exists()


def test_a_study_of_another_class_set_or_split_is_refused_untouched(study):
    runs, _ = study
    before = _trials(runs / "tune-tiny.db")
    base = ["tune", "--name", "tiny", "--trials", "1", "--space", str(runs / "space.toml"), "--runs-dir", str(runs)]
    other = [a if a != "PEN,ABD,FEL" else "PEN,ABD" for a in SLICE]
    assert_one_line_error(har(*base, "--resume", *other), 2, "is of another class set")
    moved = [a if a != "4" else "5" for a in SLICE]
    assert_one_line_error(har(*base, "--resume", *moved), 2, "is of another test subjects")
    assert_one_line_error(har(*base, *SLICE), 2, "already exists")
    assert _trials(runs / "tune-tiny.db") == before


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dashboard_serves_the_study_over_http(study):
    runs, _ = study
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "har_app", "tune", "--dashboard", "--name", "tiny",
                             "--runs-dir", str(runs), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        body = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    body = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.5)
        assert body is not None, "the dashboard never answered"
        (summary,) = body["study_summaries"]
        assert summary["study_name"] == "tiny"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", timeout=5) as r:
            assert len(json.loads(r.read())["trials"]) == 2
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/dashboard", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def _postgres_bin(tool: str) -> str | None:
    found = sorted(glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    return found[-1] if found else shutil.which(tool)


@pytest.fixture
def postgres() -> str:
    """A real PostgreSQL server in a temp dir on a loopback port, run as the unprivileged `postgres` (or `nobody`)
    user when the tests run as root (in a folder of its own under the system temp dir: pytest's is root-only);
    yields its URL."""
    initdb, pg_ctl = _postgres_bin("initdb"), _postgres_bin("pg_ctl")
    if not (initdb and pg_ctl):
        message = "PostgreSQL server binaries (Debian package postgresql) are missing: make system-deps"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    home = Path(tempfile.mkdtemp(prefix="har-pg-"))
    home.chmod(0o755)
    data, port = home / "pg", _free_port()
    data.mkdir()
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = "postgres" if _has_user("postgres") else "nobody"
        shutil.chown(data, user)
        prefix = ["runuser", "-u", user, "--"]
    subprocess.run([*prefix, initdb, "-D", str(data), "-U", "har", "--auth=trust", "-E", "UTF8"], check=True,
                   capture_output=True)
    subprocess.run([*prefix, pg_ctl, "-D", str(data), "-l", str(data / "log"), "-w", "-o",
                    f"-h 127.0.0.1 -p {port} -k {data}", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://har@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_two_workers_share_a_postgres_study_and_a_killed_trial_is_retried(postgres, tmp_path):
    import optuna

    from training.tune import open_storage

    space = _space(tmp_path)
    common = ["tune", "--name", "shared", "--storage", postgres, "--space", str(space), *SLICE, "--heartbeat", "1",
              "--runs-dir", str(tmp_path)]
    a = subprocess.Popen([sys.executable, "-m", "har_app", *common, "--trials", "6"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    storage = open_storage(postgres, 1)
    deadline = time.monotonic() + 300

    def trials():
        try:
            return optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
        except KeyError:
            return []

    while not trials():
        assert a.poll() is None and time.monotonic() < deadline, a.communicate()[1]
        time.sleep(0.5)
    b = subprocess.Popen([sys.executable, "-m", "har_app", *common, "--trials", "6", "--resume", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    worker_a = f"{socket.gethostname()}:{a.pid}"
    worker_b = f"{socket.gethostname()}:{b.pid}"
    killed = None
    while killed is None:  # kill A in the middle of a trial that it began after B began one of its own
        assert time.monotonic() < deadline and a.poll() is None and b.poll() is None, "workers ended early"
        ts = trials()
        running_a = [t for t in ts if t.state.name == "RUNNING" and t.user_attrs.get("worker") == worker_a]
        first_b = min((t.number for t in ts if t.user_attrs.get("worker") == worker_b), default=None)
        if running_a and first_b is not None and running_a[0].number > first_b and running_a[0].intermediate_values:
            killed = running_a[0].number
            os.kill(a.pid, signal.SIGKILL)
        time.sleep(0.2)
    a.wait()
    out, err = b.communicate(timeout=600)
    assert b.returncode == 0, err
    result = json.loads(out)
    ts = {t.number: t for t in trials()}
    assert ts[killed].state.name == "FAIL"  # failed by B's heartbeat check, not left RUNNING
    retries = [t for t in ts.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
    assert retries[0].params == ts[killed].params  # the killed trial is run again, nothing is lost
    finished = [t for t in ts.values() if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) >= 6 and result["trials"] == len(finished)
    by_a = [t.number for t in ts.values() if t.user_attrs.get("worker") == worker_a]
    by_b = [t.number for t in ts.values() if t.user_attrs.get("worker") == worker_b]
    assert min(by_b) < max(by_a) and by_a and by_b  # the two workers' trials interleave in one study
    assert not [t for t in ts.values() if t.state.name == "RUNNING"]


def test_a_worker_that_reaches_the_target_still_retries_a_trial_killed_just_before(tmp_path):
    """A is killed mid-trial; B joins at once with --trials 1. B's first ask comes before A's heartbeat is stale, so
    B runs a fresh trial and reaches its target: it must then stay, fail A's trial and run its retry."""
    import optuna

    from training.tune import open_storage

    common = ["tune", "--name", "last", "--space", str(_space(tmp_path)), *SLICE, "--heartbeat", "2",
              "--runs-dir", str(tmp_path)]
    a = subprocess.Popen([sys.executable, "-m", "har_app", *common, "--trials", "3"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    storage = open_storage(f"sqlite:///{tmp_path / 'tune-last.db'}", 2)
    deadline = time.monotonic() + 300
    killed = None
    while killed is None:  # kill A once it has finished one trial and reported an epoch of the next
        assert a.poll() is None and time.monotonic() < deadline, a.communicate()[1]
        try:
            ts = optuna.load_study(study_name="last", storage=storage).get_trials(deepcopy=False)
        except KeyError:
            ts = []
        running = [t for t in ts if t.state.name == "RUNNING" and t.intermediate_values]
        if running and any(t.state.name == "COMPLETE" for t in ts):
            killed = running[0].number
            os.kill(a.pid, signal.SIGKILL)
        time.sleep(0.2)
    a.wait()
    result = json_out(har(*common, "--trials", "1", "--resume", "--json"))
    ts = {t.number: t for t in optuna.load_study(study_name="last", storage=storage).get_trials(deepcopy=False)}
    assert ts[killed].state.name == "FAIL"
    retries = [t for t in ts.values() if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state.name in ("COMPLETE", "PRUNED")
    assert retries[0].params == ts[killed].params
    assert not [t for t in ts.values() if t.state.name == "RUNNING"]
    assert result["trials"] == len([t for t in ts.values() if t.state.name in ("COMPLETE", "PRUNED")])


@pytest.mark.parametrize("line, message", [
    ("lr = nan", "lr must be a positive number, got nan"),
    ("epochs = 0", "epochs must be a positive integer, got 0"),
    ("seed = -1", "seed must be an integer in [0, 2^32), got -1"),
    ("dropout = 0.1", "unknown training setting 'dropout'"),
])
def test_har_train_config_applies_the_cli_rules_to_train_settings(tmp_path, line, message):
    config = tmp_path / "bad.toml"
    config.write_text(f"[train]\n{line}\n")
    proc = har("train", "--config", str(config), "--runs-dir", str(tmp_path / "runs"))
    assert_one_line_error(proc, 2, message)
    assert not (tmp_path / "runs").exists()
