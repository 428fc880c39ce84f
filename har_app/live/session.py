"""One live session: source -> (recorder) -> merge and resample -> lanes -> decisions, events and a summary.

The session stops at the end of the stream or on Ctrl-C / SIGTERM; either way the recording is written and the
summary covers everything received.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from deploy.energy import estimate_energy_per_decision, estimate_latency
from deploy.opcount import step_ops
from deploy.profiles import DeviceProfile
from har_app.live.merge import MergeCounts, ModelSample, StreamMerger
from har_app.live.runtime import Decision, LaneRunner
from har_app.sources.base import ImuSource
from har_app.sources.record import Recorder
from training.run_dir import Run

Event = dict
HOST_PROFILE = "host"  # the device profile of the machine har runs on: its latency is measured, not estimated
RATE_WINDOW_S = 5.0  # received samples/s is measured over this much recent wall time


@dataclass
class Tally:
    decisions: int = 0
    labelled: int = 0
    correct: int = 0
    first_t: float | None = None  # source time span of what was received
    last_t: float | None = None


class LiveSession:
    """Runs one source through the model; `on_event` receives JSON-ready events (decisions, resets, summary)."""

    def __init__(self, run: Run, source: ImuSource, runner: LaneRunner, backend: str, profile: DeviceProfile,
                 on_event: Callable[[Event], None], recorder: Recorder | None = None,
                 on_update: Callable[[LiveSession, Decision | None], None] | None = None) -> None:
        self.run, self.source, self.runner, self.backend, self.profile = run, source, runner, backend, profile
        self.on_event, self.recorder, self.on_update = on_event, recorder, on_update or (lambda s, d: None)
        self.merger: StreamMerger | None = None  # made at the first frame, when the source knows its rate
        self.tally = Tally()
        self.received_times: deque[tuple[float, int]] = deque()  # (wall time, samples) for the received rate
        self.interrupted = False
        self.recording_written = False
        self._reset_reason = "gap"  # why the next segment starts: a gap in the stream, or the source reconnected
        self._cpu0 = self._wall0 = 0.0

    async def run_until_done(self) -> dict:
        """Consume the source until it ends or SIGINT/SIGTERM arrives; return the summary event."""
        loop = asyncio.get_running_loop()
        self._cpu0, self._wall0 = time.process_time(), time.perf_counter()
        task = asyncio.create_task(self._consume())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await asyncio.wait([task])
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
        self.interrupted = task.cancelled()
        failure = None if self.interrupted else task.exception()
        self.recording_written = self.recorder.close() if self.recorder else False
        summary = self.summary()
        if failure is not None:
            summary["error"] = str(failure)
        self.on_event(summary)
        if failure is not None:
            raise failure  # after the recording and the summary: what was received is kept
        return summary

    async def _consume(self) -> None:
        async with contextlib.aclosing(self.source.frames()) as frames:
            async for frame in frames:
                if self.merger is None:
                    self.merger = StreamMerger(fs_out=self.run.fs_hz, fs_in=self.source.expected_rate_hz)
                    if self.recorder:
                        self.recorder.start(self.source.expected_rate_hz)
                if frame.reset_needed:  # the source reconnected or re-anchored its clock: every state restarts here
                    self._handle(self.merger.restart())
                    self._reset_reason = frame.reset_reason
                    if self.recorder:
                        self.recorder.restart()
                if self.recorder:
                    self.recorder.add(frame)
                n = len(frame.t_s)
                if n:
                    self.tally.first_t = float(frame.t_s[0]) if self.tally.first_t is None else self.tally.first_t
                    self.tally.last_t = max(float(frame.t_s[-1]), self.tally.last_t or -float("inf"))
                    self.received_times.append((time.perf_counter(), n))
                self._handle(self.merger.push(frame))
        if self.merger is not None:
            self._handle(self.merger.flush())

    def _handle(self, samples: list[ModelSample]) -> None:
        decision = None
        for sample in samples:
            if sample.new_segment and self.runner.resets:
                self.on_event({"event": "reset", "t_s": round(sample.t_s, 6), "reason": self._reset_reason})
                self._reset_reason = "gap"
            d = self.runner.push(sample)
            if d is not None:
                decision = d
                self._decided(d)
        self.on_update(self, decision)

    def _decided(self, d: Decision) -> None:
        self.tally.decisions += 1
        if d.label is not None:
            self.tally.labelled += 1
            self.tally.correct += int(d.label == self.run.classes[d.class_index])
        self.on_event({"event": "decision", "t_s": round(d.t_s, 6), "class": self.run.classes[d.class_index],
                       "confidence": round(d.confidence, 4), "label": d.label,
                       "spike_counts": [int(c) for c in d.counts]})

    def received_rate_hz(self) -> float:
        """Samples per second of wall time over the last RATE_WINDOW_S seconds."""
        now = time.perf_counter()
        while self.received_times and now - self.received_times[0][0] > RATE_WINDOW_S:
            self.received_times.popleft()
        span = min(RATE_WINDOW_S, now - self._wall0)
        return sum(n for _, n in self.received_times) / span if span > 0 else 0.0

    def summary(self) -> Event:
        """Everything measured so far, as the summary event (also what the live view shows)."""
        wall = time.perf_counter() - self._wall0
        cpu = time.process_time() - self._cpu0
        tally, stats, times = self.tally, self.source.stats, self.runner.times
        counts = self.merger.counts if self.merger is not None else MergeCounts()
        received = max(counts.samples.values(), default=0)
        span = (tally.last_t - tally.first_t) if tally.first_t is not None else 0.0
        expected = int(round(span * self.source.expected_rate_hz)) + 1 if tally.first_t is not None else 0

        def per_decision(v: float) -> float | None:
            return v / tally.decisions if tally.decisions else None

        latency = times.percentiles_us()
        return {
            "event": "summary",
            "decisions": tally.decisions,
            "correct_fraction": tally.correct / tally.labelled if tally.labelled else None,
            "latency_us": latency,
            "energy_uj_per_decision": energy_per_decision(self.profile, self.run, self.backend, latency["p50"]),
            "lost_packets": stats.lost_packets,
            "malformed_packets": stats.malformed_packets,
            "packets_accepted": stats.accepted_packets,
            "packets_rejected": stats.rejected(),  # packets = accepted + each of these + pending
            "packets_pending": stats.pending_packets,
            "reordered_packets": stats.reordered,
            "resyncs": stats.resyncs,
            "samples_rejected": {"out_of_range": stats.out_of_range_samples, "non_finite": stats.non_finite_samples},
            "labelled_decisions": tally.labelled,
            "backend": self.backend,
            "device": self.profile.name,
            "steps": times.count,
            "model_us_per_decision": per_decision(times.total_ns / 1e3),
            "host_cpu_us_per_decision": per_decision(cpu * 1e6),
            "host_cpu_fraction": cpu / wall if wall > 0 else None,
            "wall_s": wall,
            "stream_s": span,
            "samples_received": received,
            "samples_received_by_sensor": dict(counts.samples),
            "samples_expected": expected,
            "expected_rate_hz": self.source.expected_rate_hz,
            "late_samples": counts.late,
            "dropped_samples": counts.late + counts.non_finite,
            "model_samples": counts.emitted,
            "gaps": counts.gaps,
            "reconnects": stats.reconnects,
            "lane_resets": self.runner.resets,
            "packets": stats.packets,
            "recording_written": self.recording_written,
            "interrupted": self.interrupted,
        }


def energy_per_decision(profile: DeviceProfile, run: Run, backend: str, step_us: float | None) -> dict:
    """Energy of one decision (`window` steps; `hop` steps for a stream run's one lane) on the profile's device.
    On this machine ("host") the latency is the measured median step;
    elsewhere it is estimated from the step's op counts. The power is always
    the profile's figure, so the energy is an estimate either way."""
    steps = run.hop if run.stream else run.window  # one lane steps hop samples per decision; L lanes window
    if profile.name == HOST_PROFILE and step_us is not None:
        energy = estimate_energy_per_decision(profile, step_us * steps, measured=True)
        energy["basis"] += f"; median {backend} step on this machine x {steps} steps"
        return energy
    latency = estimate_latency(profile, step_ops(run.config["model"]), steps)
    return estimate_energy_per_decision(profile, latency["per_decision"], measured=False)
