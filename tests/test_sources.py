"""Loaders: the bundled seglearn watch data (safe unpickling), WISDM raw files, CSV recordings."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from wisdm_fixture import ACTIVITIES, MALFORMED, SUBJECTS, accel_x, gyro_x, write_wisdm

from training.errors import HarError
from training.recordings import CHANNELS, Recording
from training.sources import load_dataset
from training.sources.csv_recordings import load_csv_dir, write_csv_recording
from training.sources.seglearn_watch import load_seglearn_watch, read_numpy_object_file
from training.sources.wisdm import ACTIVITIES as WISDM_NAMES


def test_seglearn_watch_is_real_watch_data_in_si_units():
    d = load_dataset("seglearn")
    assert d.classes == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert d.subjects == [str(s) for s in range(1, 11)]
    assert len(d.recordings) == 140 and d.fs_hz == 50.0
    assert sum(len(r.samples) for r in d.recordings) == 244_102
    acc = np.concatenate([r.samples[:, :3] for r in d.recordings])
    # gravity is in every accelerometer sample: its mean magnitude is of the order of 1 g = 9.81 m/s^2
    assert 8.0 < np.linalg.norm(acc, axis=1).mean() < 14.0


def _npy_with_pickle(obj) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(obj, dtype=object), allow_pickle=True)
    return buf.getvalue()


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_object_npy_with_foreign_globals_is_refused(capsys):
    raw = _npy_with_pickle({"X": [_Exploit()]})
    with pytest.raises(HarError, match="builtins.print"):
        read_numpy_object_file(raw)
    assert "must never run" not in capsys.readouterr().out


def test_object_npy_with_numpy_types_only_loads():
    data = read_numpy_object_file(_npy_with_pickle({"X": [np.arange(6.0).reshape(1, 6)], "y": np.array([1])}))
    assert data.item()["X"][0].shape == (1, 6)


def test_seglearn_file_with_other_content_is_refused(tmp_path):
    path = tmp_path / "watch_dataset.npy"
    path.write_bytes(_npy_with_pickle({"X": []}))
    with pytest.raises(HarError, match="hash mismatch"):
        load_seglearn_watch(path)


def test_pickle_module_is_not_used_for_plain_loading():
    # a pickle stream without the .npy header is not accepted either
    with pytest.raises(HarError):
        read_numpy_object_file(pickle.dumps({"X": []}))


def test_wisdm_raw_folder_is_aligned_per_subject_and_activity(tmp_path):
    written = write_wisdm(tmp_path)
    d = load_dataset(f"wisdm:{tmp_path}", activities=list(ACTIVITIES))
    assert d.skipped_lines == written["malformed"] == len(MALFORMED) * len(SUBJECTS) == 15
    assert d.classes == [WISDM_NAMES[c] for c in ACTIVITIES]
    assert sorted({(r.subject, r.label) for r in d.recordings}) == sorted(
        (s, WISDM_NAMES[c]) for s in SUBJECTS for c in ACTIVITIES)
    for rec in d.recordings:
        assert rec.fs_hz == 20.0
        # both sensors cover the grid: gyro starts 30 ms later and has 58 rows of 50 ms -> about 2.8 s
        assert 50 <= len(rec.samples) <= 58
        t = 0.03 + np.arange(len(rec.samples)) / 20.0  # the grid starts where the later sensor starts
        assert np.allclose(rec.samples[:, 0], accel_x(t), atol=0.06)  # +-2 ms jitter on a 0.5 Hz sine
        assert np.allclose(rec.samples[:, 3], gyro_x(t), atol=0.06)
        assert np.allclose(rec.samples[:, 2], 9.8)


def test_wisdm_default_subset_is_the_seven_hand_oriented_activities(tmp_path):
    write_wisdm(tmp_path)
    d = load_dataset(f"wisdm:{tmp_path}")
    assert d.classes == [WISDM_NAMES[c] for c in "POFQRGS"]
    assert {r.label for r in d.recordings} == {WISDM_NAMES["P"], WISDM_NAMES["O"]}  # A is not hand-oriented


def test_wisdm_unknown_activity_code_is_a_clear_error(tmp_path):
    write_wisdm(tmp_path)
    with pytest.raises(HarError, match="unknown WISDM activity codes N,Z"):
        load_dataset(f"wisdm:{tmp_path}", activities=["P", "N", "Z"])


def test_missing_data_path_is_a_clear_error(tmp_path):
    with pytest.raises(HarError, match="data path not found"):
        load_dataset(f"wisdm:{tmp_path / 'nope'}")
    with pytest.raises(HarError, match="unknown data source"):
        load_dataset("kaggle:x")


def test_csv_recordings_round_trip_and_malformed_rows_are_counted(tmp_path):
    t = np.arange(100) / 25.0
    x = np.random.default_rng(0).normal(size=(100, 6)).astype(np.float32)
    labels = ["walk"] * 60 + ["clap"] * 40
    write_csv_recording(tmp_path / "a.csv", t, x, labels, "s1")
    with open(tmp_path / "a.csv", "a") as f:
        f.write("1.0,2.0,oops,4,5,6,7,walk,s1\n")  # malformed: a non-number
        f.write("1.0,2.0\n")  # malformed: short row
    d = load_csv_dir(tmp_path)
    assert d.skipped_lines == 2
    assert d.classes == ["clap", "walk"]
    walk, clap = d.recordings
    assert (walk.label, clap.label) == ("walk", "clap") and walk.subject == "s1"
    assert walk.fs_hz == pytest.approx(25.0)
    assert np.allclose(np.vstack([walk.samples, clap.samples]), x, atol=1e-5)


def test_csv_without_the_header_is_refused(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    with pytest.raises(HarError, match="expected header"):
        load_csv_dir(tmp_path)


def test_recording_validates_its_shape():
    with pytest.raises(ValueError, match=r"\(n, 6\)"):
        Recording(np.zeros((10, 3)), 20.0, "a", "1")
    assert len(CHANNELS) == 6
