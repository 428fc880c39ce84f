"""One stream's packets put back in order, and its clock found again after a bad or stepped time (docs/ble-streams.md).

Each decoded packet has a place on the device clock: the times of its first and last sample (and, for har-imu, a
sequence number). Against the last packet released (the anchor) a new packet is
  next     its first sample follows the anchor's last by one period: released at once;
  ahead    after a hole the loss of whole packets explains: held for the missing ones to arrive (while at most
           REORDER_DEPTH packets wait, and for REORDER_HOLD_S of host time once the next packet confirms it), then
           released and the hole counted as lost; one overtaken by more than REORDER_DEPTH later arrivals is
           rejected, and one rejected that came in a hole takes one out of that hole's loss;
  behind   at or before the anchor: a duplicate of a packet released or held is counted and dropped; one that fits a
           hole already declared lost is late (counted, dropped, and no longer counted lost);
  nowhere  implausible (time and sequence disagree, or a hole longer than MAX_HOLE_S): a candidate.
Candidates that follow one another form a chain. RESYNC_CHAIN of them mean the device clock stepped: the stream
re-anchors on them (a resync), placing the new clock right after the old one (by the host's arrival times) and
flagging the first frame so the lanes reset. A candidate that chains with nothing, or a chain broken by a packet
that fits the anchor again, is rejected (rejected_time). After MAX_REJECTIONS packets in a row were not accepted the
stream re-anchors on the newest chain, whatever it is. Before the first packet is trusted, the first packets of a
stream form chains (up to START_CHAINS at once, so one bad packet early on starts a chain of its own instead of
breaking the good one); the first chain of START_CHAIN starts the stream and the packets of the others are placed
against it like any packet.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from har_app.sources.base import SourceStats

REORDER_DEPTH = 4  # packets held ahead of a hole before the hole is declared lost
REORDER_HOLD_S = 0.5  # host seconds a packet waits at most for a missing predecessor
RESYNC_CHAIN = 3  # packets agreeing on another clock re-anchor the stream
START_CHAIN = 2  # packets agreeing with each other before the first of a stream is trusted
START_CHAINS = 4  # chains kept at once while a stream has no anchor yet
MAX_REJECTIONS = 8  # packets in a row not accepted: re-anchor on the newest ones
RECENT = 64  # released packets and lost holes remembered, to recognise duplicates and late packets
TOLERANCE_PERIODS = 0.5  # a gap within +-(0.5 + 5 % of the packet's samples) periods counts as no gap
TOLERANCE_FRACTION = 0.05
MAX_HOLE_S = 5.0  # device time a hole may span and still be a loss; longer, it is a clock step


class Fit(Enum):
    NEXT = "next"
    AHEAD = "ahead"
    BEHIND = "behind"
    NOWHERE = "nowhere"


@dataclass(frozen=True)
class Placement:
    fit: Fit
    missing: int = 0  # packets missing before it (AHEAD)


@dataclass
class Packet:
    """A decoded packet on the stream's clock: seconds, the stream's resync offset included."""

    first_s: float
    last_s: float
    n: int
    host_s: float  # host arrival time
    key: tuple  # what a retransmission repeats exactly
    body: Any  # the decoded samples, for the decoder
    seq: int | None = None
    arrival: int = 0  # its place in the order the stream's packets arrived in (set by the Resequencer)

    def shift(self, delta_s: float) -> None:
        self.first_s += delta_s
        self.last_s += delta_s


@dataclass(frozen=True)
class Release:
    packet: Packet
    previous: Packet | None  # the anchor before it
    how: str  # "start", "next", "hole" (packets were lost before it) or "resync" (a new clock)


Relate = Callable[[Packet, Packet], Placement]


def tolerance(n: int) -> float:
    """Allowed gap error in sample periods: 0.5 + 0.05 n."""
    return TOLERANCE_PERIODS + TOLERANCE_FRACTION * n


def gap_samples(a: Packet, b: Packet, rate_hz: float) -> float:
    """Samples missing between a's last sample and b's first: (t_b,first - t_a,last) fs - 1."""
    return (b.first_s - a.last_s) * rate_hz - 1.0


class Resequencer:
    """The packets of one stream, released in order (see the module docstring); counts into `stats`."""

    def __init__(self, rate_hz: float, relate: Relate, stats: SourceStats) -> None:
        self.period_s, self.relate, self.stats = 1.0 / rate_hz, relate, stats
        self.anchor: Packet | None = None
        self.held: list[Packet] = []  # ahead of a hole, in time order
        self.chains: list[list[Packet]] = []  # candidates agreeing with each other (one at a time once anchored)
        self.offset_s = 0.0  # added to device times: continues the stream across resyncs
        self._recent: deque[tuple] = deque(maxlen=RECENT)
        self._holes: deque[tuple[float, float]] = deque(maxlen=RECENT)  # (after_s, before_s) declared lost
        self._rejected_since = 0  # rejected since the anchor: taken out of the next hole's loss
        self._refused = 0  # packets in a row not accepted
        self._arrivals = 0
        self._hole_lost = 0  # counted lost in the hole before the anchor (0 when it followed its predecessor)

    @property
    def pending(self) -> int:
        return len(self.held) + sum(len(c) for c in self.chains)

    def push(self, packet: Packet) -> list[Release]:
        packet.shift(self.offset_s)
        packet.arrival, self._arrivals = self._arrivals, self._arrivals + 1
        return self._place(packet)

    def tick(self, host_s: float) -> list[Release]:
        """Release what has waited REORDER_HOLD_S for a predecessor that did not come."""
        return self._drain(host_s) if self.anchor is not None else []

    def flush(self) -> list[Release]:
        """The stream ended: release everything held; an unconfirmed other clock is rejected."""
        out = self._reanchor(max(self.chains, key=len)) if self.anchor is None and self.chains else []
        out += self._release_held()
        self._reject_chains()
        return out

    def shift_clock(self, delta_s: float) -> list[Release]:
        """A sibling stream on the same device clock re-anchored: move this one's clock too, and place again the
        candidates that were waiting for the new clock."""
        self.offset_s += delta_s
        waiting = sorted((p for c in self.chains for p in c), key=lambda p: p.arrival)
        self.chains = []
        self._refused -= len(waiting)
        out = []
        for packet in waiting:
            packet.shift(delta_s)
            out += self._place(packet)
        return out

    # --- placing ---------------------------------------------------------------------------------------------

    def _place(self, p: Packet) -> list[Release]:
        if p.key in self._recent or any(q.key == p.key for q in self.held + [q for c in self.chains for q in c]):
            self.stats.duplicates += 1
            return []
        if self.anchor is None:
            return self._candidate(p)
        placement = self.relate(self.anchor, p)
        if placement.fit in (Fit.NEXT, Fit.AHEAD):
            self._reject_chains()
            if self.held and p.first_s < self.held[-1].first_s:
                self.stats.reordered += 1  # it arrived after a packet that follows it
            out = []
            if placement.fit is Fit.NEXT:
                out = self._release(p, "next")
            else:
                bisect.insort(self.held, p, key=lambda q: q.first_s)
            return out + self._drain(p.host_s)
        if placement.fit is Fit.BEHIND and self._in_lost_hole(p):
            self.stats.late_packets += 1
            self.stats.lost_packets = max(0, self.stats.lost_packets - 1)
            return []
        return self._candidate(p)

    def _candidate(self, p: Packet) -> list[Release]:
        self._refused += 1
        chain = self._chain_for(p)
        if chain is None:
            if self.anchor is not None:
                self._reject_chains()  # once anchored, only the newest chain may be a new clock
            elif len(self.chains) == START_CHAINS:
                self._reject(self.chains.pop(0))
            chain = [p]
            self.chains.append(chain)
        if len(chain) >= (START_CHAIN if self.anchor is None else RESYNC_CHAIN) or self._refused >= MAX_REJECTIONS:
            return self._reanchor(chain)
        return []

    def _chain_for(self, p: Packet) -> list[Packet] | None:
        """The chain p joins (it is put in it), the one whose sample grid it lands nearest (the oldest of equals):
        after a chain's last packet (next, or ahead by a hole), or just before its first with no hole between (it
        arrived after its successor; not across a hole, as a packet that precedes a chain by a hole is no more
        likely the stream's than the chain is)."""
        options = []  # (misfit, chain, append)
        for chain in self.chains:
            after = self.relate(chain[-1], p)
            if after.fit in (Fit.NEXT, Fit.AHEAD):
                options.append((self._misfit(chain[-1], p), chain, True))
            before = self.relate(p, chain[0])
            if before.fit is Fit.NEXT:
                options.append((self._misfit(p, chain[0]), chain, False))
        if not options:
            return None
        _, chain, append = min(options, key=lambda o: o[0])
        chain.insert(len(chain) if append else 0, p)
        return chain

    def _misfit(self, a: Packet, b: Packet) -> float:
        """How far b's first sample is from a's sample grid, in periods: |gap - round(gap)| (device clocks put
        every sample on one grid; a corrupted time rarely lands on it)."""
        gap = gap_samples(a, b, 1.0 / self.period_s)
        return abs(gap - round(gap))

    def _reject(self, packets: list[Packet]) -> None:
        self.stats.rejected_time += len(packets)
        self._rejected_since += len(packets)

    def _reject_chains(self) -> None:
        for chain in self.chains:
            self._reject(chain)
        self.chains = []

    def _reanchor(self, chain: list[Packet]) -> list[Release]:
        """Trust a chain: the first packets of the stream, or a new device clock (a resync). The packets of the
        other chains (only at the start) are placed against it like any packet, in the order they arrived."""
        out = self._release_held()  # held packets belong to the old clock, before the step
        others = sorted((p for c in self.chains if c is not chain for p in c), key=lambda p: p.arrival)
        self.chains = []
        first, old = chain[0], self.anchor
        if old is None:
            how, gap_s, delta_s = "start", 0.0, 0.0
        else:
            # the new clock continues the old one; the host's arrival times tell how much time passed in between
            gap_s = max(0.0, first.host_s - old.host_s - first.n * self.period_s)
            delta_s = old.last_s + self.period_s + gap_s - first.first_s
            how = "resync"
            self.stats.resyncs += 1
            self.stats.gaps_s.append(gap_s)
        self.offset_s += delta_s
        for packet in chain:
            packet.shift(delta_s)
        out += self._release(first, how)
        for packet in sorted(others + chain[1:], key=lambda p: p.arrival):  # one after a hole waits for the missing
            out += self._place(packet)
        return out

    def _release(self, p: Packet, how: str, missing: int = 0) -> list[Release]:
        previous, self.anchor = self.anchor, p
        self._hole_lost = max(0, missing - self._rejected_since) if how == "hole" else 0
        self.stats.lost_packets += self._hole_lost
        if how == "hole" and previous is not None:
            self._holes.append((previous.last_s, p.first_s))
        self._rejected_since = self._refused = 0
        self._recent.append(p.key)
        self.stats.accepted_packets += 1
        return [Release(p, previous, how)]

    def _drain(self, host_s: float, everything: bool = False) -> list[Release]:
        """Release held packets that now follow the anchor, or have waited long enough (all of them when
        `everything`); drop overtaken ones."""
        out = []
        while self.held:
            p = self.held[0]
            placement = self.relate(self.anchor, p)
            if placement.fit is Fit.NEXT and not self._overtaken(p):
                out += self._release(self.held.pop(0), "next")
            elif placement.fit is Fit.AHEAD:
                waited = host_s - p.host_s >= REORDER_HOLD_S and self._confirmed(p)
                if not (everything or waited or len(self.held) > REORDER_DEPTH):
                    break
                out += self._release(self.held.pop(0), "hole", placement.missing)
            else:  # overtaken by the packets around it: it fits nowhere after all
                self._reject([self.held.pop(0)])
                if self._hole_lost and p.arrival < self.anchor.arrival:  # it came in the hole: the packet missing there
                    self._hole_lost -= 1
                    self.stats.lost_packets -= 1
        return out

    def _overtaken(self, p: Packet) -> bool:
        """More packets that arrived after p were released before it than a reordering explains (REORDER_DEPTH): its
        time is corrupted and only now lands next to the stream, within the jitter it allows."""
        return self.anchor.arrival - p.arrival > REORDER_DEPTH

    def _confirmed(self, p: Packet) -> bool:
        """A held packet is trusted on time alone only when the next one held follows it: a lone packet far ahead
        is more likely a corrupted time than the end of a hole (it waits to be overtaken, or for REORDER_DEPTH)."""
        return len(self.held) >= 2 and self.held[0] is p and self.relate(p, self.held[1]).fit is Fit.NEXT

    def _release_held(self) -> list[Release]:
        return self._drain(float("inf"), everything=True) if self.anchor is not None else []

    def _in_lost_hole(self, p: Packet) -> bool:
        slack = 0.5 * self.period_s
        return any(after + slack <= p.first_s and p.last_s <= before - slack for after, before in self._holes)


def relate_by_time(rate_hz: float) -> Relate:
    """For streams with sample times only (PMD): the gap between the packets decides."""

    def relate(a: Packet, b: Packet) -> Placement:
        gap, tol = gap_samples(a, b, rate_hz), tolerance(b.n)
        if gap < -tol:
            return Placement(Fit.BEHIND)
        if gap <= max(tol, 2.0, b.n / 2):  # what timestamp jitter can explain, but not a lost packet
            return Placement(Fit.NEXT)
        if gap / rate_hz > MAX_HOLE_S:
            return Placement(Fit.NOWHERE)
        return Placement(Fit.AHEAD, max(1, round(gap / b.n)))

    return relate


def relate_by_seq_and_time(rate_hz: float, seq_modulus: int, max_packet_samples: int) -> Relate:
    """For streams with a sequence number (har-imu): sequence step d and time gap must tell the same story:
    d = 1 and no gap; or d >= 2 and a gap of between d - 1 and (d - 1) x max_packet_samples samples."""

    def relate(a: Packet, b: Packet) -> Placement:
        d = (b.seq - a.seq) % seq_modulus
        d = d - seq_modulus if d >= seq_modulus // 2 else d
        gap, tol = gap_samples(a, b, rate_hz), tolerance(b.n)
        if d == 1 and abs(gap) <= tol:
            return Placement(Fit.NEXT)
        if d >= 2 and tol < gap and d - 1 - tol <= gap <= (d - 1) * max_packet_samples + tol \
                and gap / rate_hz <= MAX_HOLE_S:
            return Placement(Fit.AHEAD, d - 1)
        if d <= 0 and gap < -tol:
            return Placement(Fit.BEHIND)
        return Placement(Fit.NOWHERE)

    return relate
