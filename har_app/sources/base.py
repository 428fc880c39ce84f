"""The one async interface every stream source implements: it yields timestamped IMU frames in SI units."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass
class ImuFrame:
    """A block of samples from one sensor stream (or both, when they share timestamps).

    t_s: (n,) sample times in seconds on the source's clock (monotonic within a connection);
    acc: (n, 3) m/s^2 or None; gyro: (n, 3) rad/s or None (a frame carries at least one);
    seq: packet sequence number where the protocol has one; label: ground truth where a replay carries it.
    reset_needed: set on the first frame after a gap in the stream (a reconnect): model state must reset here.
    """

    t_s: np.ndarray
    acc: np.ndarray | None = None
    gyro: np.ndarray | None = None
    seq: int | None = None
    label: str | None = None
    reset_needed: bool = False


@dataclass
class SourceStats:
    """Counters a source keeps while streaming; the live summary reports them."""

    packets: int = 0
    lost_packets: int = 0  # sequence-number gaps
    malformed_packets: int = 0  # short or undecodable packets, skipped
    reconnects: int = 0
    gaps_s: list[float] = field(default_factory=list)  # stream time lost to each disconnect


class ImuSource(Protocol):
    """An async iterator of frames. `reset_needed` is set after a gap (reconnect): the model state must reset.

    It travels on the first frame after the gap (`ImuFrame.reset_needed`), so it arrives in order with the data."""

    stats: SourceStats
    expected_rate_hz: float

    def frames(self) -> AsyncIterator[ImuFrame]: ...
