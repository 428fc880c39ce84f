"""CSV recordings of the user's own watch: `timestamp_s, acc_x..gyro_z (SI units), label, subject` per row."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.atomic import write_text
from training.errors import HarError
from training.recordings import CHANNELS, Dataset, Recording

HEADER = ("timestamp_s", *CHANNELS, "label", "subject")


def format_csv(timestamps_s: np.ndarray, samples: np.ndarray, labels: list[str], subject: str,
               header: bool = True) -> str:
    """Render rows in the format `load_csv_dir` reads (one label per row); without the header to append."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    if header:
        w.writerow(HEADER)
    for t, row, label in zip(timestamps_s, samples, labels):
        w.writerow([f"{t:.6f}", *(f"{v:.6g}" for v in row), label, subject])
    return out.getvalue()


def write_csv_recording(path: Path, timestamps_s: np.ndarray, samples: np.ndarray, labels: list[str], subject: str) -> None:
    write_text(path, format_csv(timestamps_s, samples, labels, subject))


@dataclass
class CsvRows:
    """The well-formed rows of one file in file order, and how many malformed rows were skipped."""

    t: np.ndarray
    x: np.ndarray
    labels: list[str]
    subjects: list[str]
    malformed: int


def read_csv_recording(path: Path) -> tuple[list[Recording], int]:
    """Split one file into recordings at label changes; returns them and the count of malformed rows."""
    rows = read_csv_rows(path)
    return _split_runs(path, rows.t, rows.x, rows.labels, rows.subjects), rows.malformed


def read_csv_rows(path: Path) -> CsvRows:
    """Parse one file, skipping (and counting) malformed rows."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror}") from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, None)
    if header is None or [h.strip() for h in header] != list(HEADER):
        raise HarError(f"{path}: expected header {','.join(HEADER)}")
    times, values, labels, subjects, malformed = [], [], [], [], 0
    for row in rows:
        try:
            t, *vals = (float(v) for v in row[:7])
            label, subject = row[7].strip(), row[8].strip()
        except (ValueError, IndexError):
            malformed += 1
            continue
        if len(row) != len(HEADER) or not label or not np.all(np.isfinite([t, *vals])):
            malformed += 1
            continue
        times.append(t), values.append(vals), labels.append(label), subjects.append(subject)
    return CsvRows(np.array(times), np.array(values, dtype=np.float32).reshape(-1, len(CHANNELS)), labels, subjects,
                   malformed)


def _split_runs(path: Path, t: np.ndarray, x: np.ndarray, labels: list[str], subjects: list[str]) -> list[Recording]:
    recordings, start = [], 0
    for i in range(1, len(labels) + 1):
        if i == len(labels) or labels[i] != labels[start] or subjects[i] != subjects[start]:
            if i - start >= 2:
                dt = float(np.median(np.diff(t[start:i])))
                if dt <= 0:
                    raise HarError(f"{path}: timestamps do not increase")
                recordings.append(Recording(x[start:i], round(1.0 / dt, 3), labels[start], subjects[start]))
            start = i
    return recordings


def load_csv_dir(folder: Path) -> Dataset:
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise HarError(f"no .csv recordings in {folder}")
    recordings, malformed = [], 0
    for f in files:
        recs, bad = read_csv_recording(f)
        recordings += recs
        malformed += bad
    if not recordings:
        raise HarError(f"no labelled rows in the .csv files of {folder}")
    classes = sorted({r.label for r in recordings})
    return Dataset(f"csv:{folder.name}", recordings, classes, malformed)
