"""--record: what a source delivered, merged to 6-axis rows, read back by `har train --data csv:DIR`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from har_app.sources.base import ImuFrame
from har_app.sources.record import UNLABELLED, Recorder
from har_app.sources.replay import ReplaySource
from training.recordings import CHANNELS
from training.sources import load_dataset
from training.sources.csv_recordings import load_csv_dir


async def test_replay_recorded_round_trips_through_load_csv_dir(tmp_path):
    recs = load_dataset("seglearn").only_subjects(["4"]).recordings[:2]  # two real recordings, two exercises
    x = np.concatenate([r.samples for r in recs])
    labels = [r.label for r in recs for _ in r.samples]
    t = 12.5 + np.arange(len(x)) / 50.0
    source = ReplaySource(t, x, labels, speed=0.0)
    recorder = Recorder(tmp_path / "out" / "watch.csv", subject="me")
    recorder.start(source.expected_rate_hz)
    async for frame in source.frames():
        recorder.add(frame)
    assert recorder.close()
    assert not [p for p in (tmp_path / "out").iterdir() if p.name != "watch.csv"]  # no temp file left
    data = load_csv_dir(tmp_path / "out")
    assert data.skipped_lines == 0
    assert [(r.label, r.subject, r.fs_hz) for r in data.recordings] == [(r.label, "me", 50.0) for r in recs]
    for got, want in zip(data.recordings, recs):
        assert len(got.samples) == len(want.samples)
        np.testing.assert_allclose(got.samples, want.samples, rtol=1e-5, atol=1e-5)
    header = (tmp_path / "out" / "watch.csv").read_text().splitlines()[0]
    assert header == ",".join(("timestamp_s", *CHANNELS, "label", "subject"))


def test_separate_acc_and_gyro_frames_are_recorded_merged(tmp_path):
    # ACC and GYRO at 52 Hz with different timestamps, no labels: one 6-axis row per 1/52 s, labelled by --label.
    t_acc = np.arange(520) / 52
    t_gyro = 0.007 + np.arange(520) / 52
    rec = Recorder(tmp_path / "merged.csv", label="walking")
    rec.start(52.0)
    for i in range(0, 520, 10):
        rec.add(ImuFrame(t_acc[i : i + 10], acc=np.tile([0.0, 0.0, 9.81], (len(t_acc[i : i + 10]), 1))))
        rec.add(ImuFrame(t_gyro[i : i + 10], gyro=np.tile([0.1, 0.2, 0.3], (len(t_gyro[i : i + 10]), 1))))
    rec.close()
    data = load_csv_dir(tmp_path)
    (r,) = data.recordings
    assert r.label == "walking" and r.fs_hz == pytest.approx(52.0, abs=0.01) and 515 <= len(r.samples) <= 520
    np.testing.assert_allclose(r.samples, np.tile([0, 0, 9.81, 0.1, 0.2, 0.3], (len(r.samples), 1)), atol=1e-4)


def test_unlabelled_rows_and_empty_recordings(tmp_path):
    rec = Recorder(tmp_path / "a.csv")
    rec.start(50.0)
    t = np.arange(100) / 50
    rec.add(ImuFrame(t, np.zeros((100, 3)), np.zeros((100, 3))))
    rec.close()
    assert {r.label for r in load_csv_dir(tmp_path).recordings} == {UNLABELLED}
    empty = Recorder(tmp_path / "empty" / "b.csv")
    assert not empty.close()
    assert list((tmp_path / "empty").iterdir()) == []  # nothing received: no file, no temp file


def test_ctrl_c_keeps_the_recording_and_prints_the_summary(tiny_run, tmp_path):
    out_csv = tmp_path / "rec" / "live.csv"
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "har"), "live", "--run", str(tiny_run), "--replay", "bundled",
         "--speed", "8", "--backend", "torch", "--record", str(out_csv), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "NO_COLOR": "1"})
    decisions = 0
    for line in proc.stdout:
        if json.loads(line)["event"] == "decision":
            decisions += 1
            if decisions == 3:
                proc.send_signal(signal.SIGINT)
                break
    rest = proc.stdout.read().splitlines()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    summary = json.loads(rest[-1])
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert summary["decisions"] >= 3 and summary["recording_written"] is True
    data = load_csv_dir(out_csv.parent)
    rows = sum(len(r.samples) for r in data.recordings)
    # every received sample is in the file (the recorder's grid is the 50 Hz source grid)
    assert rows == summary["samples_received"]
    assert not [p for p in out_csv.parent.iterdir() if p != out_csv]


def test_a_file_made_while_recording_is_not_overwritten(tmp_path):
    target = tmp_path / "rec.csv"
    rec = Recorder(target, label="walking")
    rec.start(50.0)
    rec.add(ImuFrame(np.arange(100) / 50, np.zeros((100, 3)), np.zeros((100, 3))))
    target.write_text("someone else's data\n")  # appears before the recording is closed
    (tmp_path / "rec-2.csv").write_text("and more\n")
    assert rec.close() and rec.path == tmp_path / "rec-3.csv"
    assert target.read_text() == "someone else's data\n" and (tmp_path / "rec-2.csv").read_text() == "and more\n"
    assert len(rec.path.read_text().splitlines()) == 101
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec-2.csv", "rec-3.csv", "rec.csv"]


def test_recorder_refuses_a_file_with_data(tmp_path):
    from training.errors import HarError

    (tmp_path / "keep.csv").write_text("x\n")
    with pytest.raises(HarError, match="already exists and is not empty"):
        Recorder(tmp_path / "keep.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.csv"]  # no temp file either
