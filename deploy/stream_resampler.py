"""The resampler of live inference, in one numpy-only module: `har live` (har_app/live/merge.py) evaluates it sample by
sample as frames arrive, and the Linux bundle carries this file verbatim (as `har_resampler.py`) so its runner
resamples a recording the same way without `har` installed. It must import nothing but numpy.

The kernel is the one `scipy.signal.resample_poly` uses, which training uses (training/windowing.py): a sinc cut off
at half the slower rate, Kaiser-windowed (beta 5), 10 slower-rate periods each side; here it is evaluated at the real
time offsets of the samples and normalised by its sum, so a regular stream reproduces the polyphase result away from
the ends (docs/deployment-contract.md, "Resampler"). Holes longer than HOLE_PERIODS input periods are bridged
linearly; a hole longer than the gap limit ends a segment (every model state resets there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KERNEL_PERIODS = 10  # half-width in periods of the slower rate (resample_poly: half_len = 10 * max(up, down))
KAISER_BETA = 5.0  # resample_poly's default window ('kaiser', 5.0)
HOLE_PERIODS = 1.5  # an input interval longer than this many nominal periods is a hole: interpolate linearly
MAX_GAP_S = 1.0  # a hole longer than this ends the segment
TIME_EPS_S = 1e-9  # grid and sample times this close count as equal


def resampling_kernel(tau: np.ndarray, fs_slow: float) -> np.ndarray:
    """Weights for input samples tau seconds from the output time (not normalised)."""
    r = np.clip(np.abs(tau) * fs_slow / KERNEL_PERIODS, 0.0, 1.0)
    # h(tau) = sinc(fs_slow tau) I0(beta sqrt(1 - (tau / T)^2)) / I0(beta),  T = KERNEL_PERIODS / fs_slow
    return np.sinc(fs_slow * tau) * np.i0(KAISER_BETA * np.sqrt(1.0 - r * r)) / np.i0(KAISER_BETA)


def value_at(t_in: np.ndarray, x_in: np.ndarray, t: float, fs_slow: float, hole_s: float) -> tuple[np.ndarray, int]:
    """The resampled value at time t from samples x_in (n, k) at sorted times t_in, and the index of the sample
    whose label it takes (the nearest one)."""
    right = int(np.searchsorted(t_in, t))
    left = right - 1
    if 0 <= left and right < len(t_in) and t_in[right] - t_in[left] > hole_s:
        a = (t - t_in[left]) / (t_in[right] - t_in[left])
        return (1 - a) * x_in[left] + a * x_in[right], (left if a < 0.5 else right)  # x = (1 - a) x_l + a x_r
    half = KERNEL_PERIODS / fs_slow
    lo, hi = np.searchsorted(t_in, [t - half, t + half], side="right")
    tau = t - t_in[lo:hi]
    w = resampling_kernel(tau, fs_slow)
    return w @ x_in[lo:hi] / w.sum(), lo + int(np.argmin(np.abs(tau)))  # y(t) = sum_k h(t - t_k) x_k / sum_k h(t - t_k)


def monotonic_timeline(t: np.ndarray) -> np.ndarray:
    """Where time steps back or stands still (recordings appended in one file), continue one median period on."""
    dt = np.diff(t)
    forward = dt[dt > 0]
    period = float(np.median(forward)) if len(forward) else 1.0
    return t[0] + np.concatenate([[0.0], np.cumsum(np.where(dt > 0, dt, period))])


def nominal_rate_hz(t: np.ndarray) -> float:
    """The stream's rate: 1 / median sample interval (what a live source announces)."""
    return round(1.0 / float(np.median(np.diff(t))), 6)


@dataclass
class Segment:
    """One stretch of a recording between gaps, on the model-rate grid t_n = t0 + n / fs_out."""

    t: np.ndarray  # (m,) grid times
    x: np.ndarray  # (m, k) resampled values
    source_index: np.ndarray  # (m,) index of the input sample each grid sample takes its label from


def resample_recording(t: np.ndarray, x: np.ndarray, fs_out: float, max_gap_s: float = MAX_GAP_S,
                       sensor_axes: int = 3) -> list[Segment]:
    """A whole recording (times t (n,), values x (n, k), one time stamp for all channels) resampled to fs_out, as
    `har live` resamples it frame by frame: one segment per stretch without a hole longer than max_gap_s, each on its
    own grid from its first sample to its last; each sensor (`sensor_axes` columns) on its own, as live holds one
    buffer per sensor, labels from the first sensor's nearest sample."""
    t = monotonic_timeline(np.asarray(t, np.float64))
    x = np.asarray(x, np.float64)
    fs_in = nominal_rate_hz(t)
    fs_slow, hole_s = min(fs_in, fs_out), HOLE_PERIODS / fs_in
    cuts = [0, *(np.flatnonzero(np.diff(t) > max_gap_s) + 1), len(t)]
    segments = []
    for a, b in zip(cuts, cuts[1:]):
        ts, xs = t[a:b], x[a:b]
        grid = ts[0] + np.arange(int(np.floor((ts[-1] - ts[0] + TIME_EPS_S) * fs_out)) + 1) / fs_out
        grid = grid[grid <= ts[-1] + TIME_EPS_S]
        blocks = [np.ascontiguousarray(xs[:, c : c + sensor_axes]) for c in range(0, xs.shape[1], sensor_axes)]
        sensors = [[value_at(ts, block, float(g), fs_slow, hole_s) for g in grid] for block in blocks]
        values = np.concatenate([np.array([v for v, _ in s]).reshape(len(grid), -1) for s in sensors], axis=1)
        segments.append(Segment(grid, values, np.array([a + i for _, i in sensors[0]], np.int64)))
    return segments
