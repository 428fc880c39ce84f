"""A small WISDM 2019 raw watch folder in the exact raw format, generated from known signals.

3 subjects x 3 activities x ~60 lines per sensor, 50 ms steps with jitter, gyro starting later with fewer rows,
one duplicate timestamp, one trailing-space line, and MALFORMED lines that the loader must skip and count.
accel_x(t) = 1 + sin(2 pi 0.5 t) and gyro_x(t) = cos(2 pi 0.5 t) (t in seconds from the segment start), so the
aligned values can be checked against the functions themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SUBJECTS = ("1600", "1601", "1602")
ACTIVITIES = ("P", "O", "A")
T0_NS = 252207666810782
STEP_NS = 50_000_000
MALFORMED = [
    "1600,P,252207666810782,0.1,0.2;extra",  # trailing garbage
    "1600,P,notanumber,0.1,0.2,0.3;",  # bad timestamp
    "1600,N,252207666810782,0.1,0.2,0.3;",  # N is not an activity code
    "1600,P,252207666810782,0.1,0.2",  # missing field
    "garbage line",
]


def accel_x(t_s: np.ndarray) -> np.ndarray:
    return 1.0 + np.sin(2 * np.pi * 0.5 * t_s)


def gyro_x(t_s: np.ndarray) -> np.ndarray:
    return np.cos(2 * np.pi * 0.5 * t_s)


def _lines(subject: str, code: str, seg_start_ns: int, n: int, offset_ns: int, fn, rng) -> list[str]:
    t = seg_start_ns + offset_ns + np.arange(n) * STEP_NS + rng.integers(-2_000_000, 2_000_000, n)
    t_s = (t - seg_start_ns) / 1e9
    return [f"{subject},{code},{ti},{v:.7f},{0.5:.7f},{9.8:.7f};" for ti, v in zip(t, fn(t_s))]


def write_wisdm(root: Path) -> dict:
    """Write raw/watch/{accel,gyro}; return what was written (malformed count, segments)."""
    rng = np.random.default_rng(7)
    (root / "raw" / "watch" / "accel").mkdir(parents=True)
    (root / "raw" / "watch" / "gyro").mkdir(parents=True)
    (root / "activity_key.txt").write_text("\n".join(f"x = {c}" for c in ACTIVITIES) + "\n")
    malformed = 0
    for s_i, subject in enumerate(SUBJECTS):
        acc, gyro = [], []
        for a_i, code in enumerate(ACTIVITIES):
            start = T0_NS + (s_i * 10 + a_i) * 10**12  # segments far apart in device time
            acc += _lines(subject, code, start, 62, 0, accel_x, rng)
            gyro += _lines(subject, code, start, 58, 30_000_000, gyro_x, rng)  # later start, fewer rows
        acc.insert(10, acc[9])  # a duplicate timestamp
        acc[20] = acc[20] + "   "  # trailing spaces are fine
        acc.insert(30, "")  # blank lines are fine
        for i, bad in enumerate(MALFORMED):
            acc.insert(40 + 2 * i, bad.replace("1600", subject))
            malformed += 1
        (root / "raw" / "watch" / "accel" / f"data_{subject}_accel_watch.txt").write_text("\n".join(acc) + "\n")
        (root / "raw" / "watch" / "gyro" / f"data_{subject}_gyro_watch.txt").write_text("\n".join(gyro) + "\n")
    return {"malformed": malformed, "segments": len(SUBJECTS) * len(ACTIVITIES)}
