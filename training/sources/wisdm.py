"""WISDM 2019 raw watch files: accelerometer + gyroscope aligned per subject and activity on a 20 Hz grid."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from training.errors import HarError
from training.recordings import Dataset, Recording

WISDM_FS_HZ = 20.0
ACTIVITIES = {
    "A": "walking", "B": "jogging", "C": "stairs", "D": "sitting", "E": "standing", "F": "typing",
    "G": "brushing_teeth", "H": "eating_soup", "I": "eating_chips", "J": "eating_pasta", "K": "drinking",
    "L": "eating_sandwich", "M": "kicking", "O": "playing_catch", "P": "dribbling", "Q": "writing",
    "R": "clapping", "S": "folding_clothes",
}
HAND_ORIENTED = ["P", "O", "F", "Q", "R", "G", "S"]  # NeHAR subset 2, in its label order
MAX_GAP_S = 1.0  # a longer gap between samples splits a segment into two recordings
_LINE = re.compile(r"^\s*(\d+),([A-S]),(\d+),([-+0-9.eE]+),([-+0-9.eE]+),([-+0-9.eE]+);?\s*$")


def parse_wisdm_file(path: Path) -> tuple[dict[tuple[str, str], np.ndarray], int]:
    """Parse one raw file into {(subject, code): rows (n, 4) = t_ns, x, y, z} and a count of malformed lines."""
    rows: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    malformed = 0
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        raise HarError(f"cannot read {path}: {exc.strerror}") from None
    for line in lines:
        if not line.strip():
            continue
        m = _LINE.match(line)
        try:
            values = (float(int(m.group(3))), float(m.group(4)), float(m.group(5)), float(m.group(6)))
        except (AttributeError, ValueError):
            malformed += 1
            continue
        if not np.all(np.isfinite(values)) or m.group(2) not in ACTIVITIES:  # N matches [A-S] but is unused
            malformed += 1
            continue
        rows.setdefault((m.group(1), m.group(2)), []).append(values)
    return {k: _sorted_unique(np.array(v)) for k, v in rows.items()}, malformed


def _sorted_unique(rows: np.ndarray) -> np.ndarray:
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    keep = np.concatenate([[True], np.diff(rows[:, 0]) > 0])
    return rows[keep]


def align_on_grid(acc: np.ndarray, gyro: np.ndarray, fs_hz: float = WISDM_FS_HZ) -> list[np.ndarray]:
    """Interpolate both sensors onto one grid over their common time span; split at gaps. Returns (n, 6) blocks."""
    t0, t1 = max(acc[0, 0], gyro[0, 0]), min(acc[-1, 0], gyro[-1, 0])
    if t1 <= t0:
        return []
    grid = np.arange(t0, t1, 1e9 / fs_hz)
    samples = np.column_stack([np.interp(grid, s[:, 0], s[:, c]) for s in (acc, gyro) for c in (1, 2, 3)])
    # Grid points that fall in a gap of either sensor are not real data: split there.
    bad = np.zeros(len(grid), bool)
    for s in (acc, gyro):
        gap = np.flatnonzero(np.diff(s[:, 0]) > MAX_GAP_S * 1e9)
        for i in gap:
            bad |= (grid > s[i, 0]) & (grid < s[i + 1, 0])
    blocks = np.split(samples, np.flatnonzero(np.diff(bad.astype(int)) != 0) + 1)
    starts = np.split(bad, np.flatnonzero(np.diff(bad.astype(int)) != 0) + 1)
    return [b for b, s in zip(blocks, starts) if len(b) and not s[0]]


def load_wisdm(root: Path, activities: list[str] | None = None) -> Dataset:
    """Load `raw/watch/{accel,gyro}` below `root` (the unzipped wisdm-dataset folder, or its raw/watch)."""
    codes = activities or HAND_ORIENTED
    unknown = [c for c in codes if c not in ACTIVITIES]
    if unknown:
        raise HarError(f"unknown WISDM activity codes {','.join(unknown)}: valid codes are {''.join(ACTIVITIES)}")
    watch = next((p for p in (root / "raw" / "watch", root / "watch", root) if (p / "accel").is_dir()), None)
    if watch is None:
        raise HarError(f"no WISDM raw watch data in {root}: expected raw/watch/accel and raw/watch/gyro")
    recordings, malformed, missing_gyro = [], 0, 0
    for acc_path in sorted((watch / "accel").glob("data_*_accel_watch.txt")):
        gyro_path = watch / "gyro" / acc_path.name.replace("accel", "gyro")
        if not gyro_path.exists():
            missing_gyro += 1
            continue
        acc, bad_a = parse_wisdm_file(acc_path)
        gyro, bad_g = parse_wisdm_file(gyro_path)
        malformed += bad_a + bad_g
        for (subject, code), acc_rows in sorted(acc.items()):
            if code not in codes or (subject, code) not in gyro:
                continue
            for block in align_on_grid(acc_rows, gyro[(subject, code)]):
                recordings.append(Recording(block, WISDM_FS_HZ, ACTIVITIES[code], subject))
    if not recordings:
        raise HarError(f"no usable WISDM watch recordings for activities {','.join(codes)} in {root}")
    notes = [f"{missing_gyro} accel files had no gyro file"] if missing_gyro else []
    return Dataset("wisdm-2019-watch", recordings, [ACTIVITIES[c] for c in codes], malformed, notes)
