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
    reset_needed: set on the first frame after a gap in the stream: model state must reset here;
    reset_reason: why ("reconnect", or "resync": the device clock stepped and the stream re-anchored on it);
    host_s: host (time.monotonic) arrival time of the packet that carried it, where the source has one.
    """

    t_s: np.ndarray
    acc: np.ndarray | None = None
    gyro: np.ndarray | None = None
    seq: int | None = None
    label: str | None = None
    reset_needed: bool = False
    reset_reason: str = "reconnect"
    host_s: float | None = None


@dataclass
class SourceStats:
    """Counters a source keeps while streaming; the live summary reports them (docs/ble-streams.md).

    Every packet received ends in exactly one place:
    packets = accepted_packets + malformed_packets + rejected_time + duplicates + late_packets + pending_packets.
    Samples of accepted packets that fail validation are dropped one by one (out_of_range, non_finite samples)."""

    packets: int = 0  # notifications received
    accepted_packets: int = 0  # released to the stream (reordered ones included)
    malformed_packets: int = 0  # short or undecodable packets, skipped
    rejected_time: int = 0  # a time or sequence number that fits nowhere: dropped alone
    duplicates: int = 0  # the same packet again: dropped
    late_packets: int = 0  # arrived after its hole was declared lost: dropped (and no longer counted lost)
    pending_packets: int = 0  # held right now: for a missing predecessor, or to confirm a new clock
    reordered: int = 0  # accepted packets that arrived after a successor (put back in place; part of accepted)
    lost_packets: int = 0  # never received: sequence or time holes, minus packets rejected inside them
    resyncs: int = 0  # the stream re-anchored on a new device clock (a gap is declared, the lanes reset)
    out_of_range_samples: int = 0  # beyond the sensor's full scale (one sensor's x, y, z), dropped
    non_finite_samples: int = 0  # NaN/inf from the device, dropped
    reconnects: int = 0
    gaps_s: list[float] = field(default_factory=list)  # stream time lost to each disconnect or resync

    def rejected(self) -> dict[str, int]:
        """Packets received and dropped, by reason."""
        return {"malformed": self.malformed_packets, "rejected_time": self.rejected_time,
                "duplicates": self.duplicates, "late": self.late_packets}


class ImuSource(Protocol):
    """An async iterator of frames. `reset_needed` is set after a gap (reconnect): the model state must reset.

    It travels on the first frame after the gap (`ImuFrame.reset_needed`), so it arrives in order with the data."""

    stats: SourceStats
    expected_rate_hz: float

    def frames(self) -> AsyncIterator[ImuFrame]: ...
