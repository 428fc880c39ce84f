"""A live session's ending on a failing source, and what the live view shows."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from deploy.profiles import load_profile
from har_app.live.backends import open_lanes
from har_app.live.runtime import LaneRunner
from training.run_dir import lanes_needed
from har_app.live.session import LiveSession
from har_app.live.view import LiveView, summary_table
from har_app.sources.record import Recorder
from har_app.sources.replay import ReplaySource
from training.errors import HarError
from training.run_dir import open_run
from training.sources import load_dataset
from training.sources.csv_recordings import load_csv_dir


class LostAfter:
    """A source that streams a replay, then fails the way a BLE source does when reconnecting gives up."""

    def __init__(self, inner: ReplaySource, frames: int) -> None:
        self.inner, self.n = inner, frames
        self.stats, self.expected_rate_hz, self.name = inner.stats, inner.expected_rate_hz, "flaky"

    async def frames(self):
        count = 0
        async for frame in self.inner.frames():
            if count == self.n:
                raise HarError("BLE device 'watch': connection lost; 3 reconnect attempts failed", 3)
            count += 1
            yield frame


def session_on(run, source, **kwargs) -> tuple[LiveSession, list]:
    events = []
    runner = LaneRunner(open_lanes(run, "torch", lanes_needed(run.window, run.hop)), run.window, run.hop,
                        run.normalization.apply)
    return LiveSession(run, source, runner, "torch", load_profile("host"), on_event=events.append, **kwargs), events


@pytest.fixture(scope="module")
def replay_data(tiny_run):
    run = open_run(tiny_run)
    rec = load_dataset("seglearn", run.classes).only_subjects(run.config["split"]["test"]).recordings[0]
    return rec.samples[:500], rec.label


async def test_a_failing_source_still_gives_the_summary_and_the_recording(tiny_run, tmp_path, replay_data):
    run = open_run(tiny_run)
    x, label = replay_data
    source = LostAfter(ReplaySource(np.arange(len(x)) / 50, x, [label] * len(x), speed=0.0), frames=60)
    session, events = session_on(run, source, recorder=Recorder(tmp_path / "kept.csv"))
    with pytest.raises(HarError, match="connection lost") as exc:
        await session.run_until_done()
    assert exc.value.exit_code == 3
    summary = events[-1]
    assert summary["event"] == "summary" and "connection lost" in summary["error"]
    assert summary["samples_received"] == 300 and summary["decisions"] >= 1 and summary["recording_written"]
    (rec,) = load_csv_dir(tmp_path).recordings
    assert len(rec.samples) == 300 and rec.label == label


async def test_the_view_shows_activity_latency_stream_health_and_energy(tiny_run, replay_data):
    run = open_run(tiny_run)
    x, label = replay_data
    session, events = session_on(run, ReplaySource(np.arange(len(x)) / 50, x, [label] * len(x), speed=0.0))
    console = Console(record=True, width=140, force_terminal=False)
    view = LiveView(console, run.classes, "har live test", "host", speed=2.0)
    session.on_update = view.update
    summary = await session.run_until_done()
    console.print(view.render(summary, received_hz=99.0, expected_hz=100.0))
    console.print(summary_table(summary, "summary"))
    text = console.export_text()
    last = [e for e in events if e["event"] == "decision"][-1]
    assert last["class"] in text and f"{last['confidence']:.2f}" in text
    assert f"{summary['latency_us']['p50']:.1f}" in text and "99.0 / 100.0" in text
    assert "host active power" in text and "µJ (estimate" in text
    assert "host CPU per decision" in text and str(summary["decisions"]) in text


async def test_a_time_gap_in_a_replay_restarts_the_lanes(tiny_run, replay_data):
    run = open_run(tiny_run)
    x, label = replay_data
    t = np.arange(len(x)) / 50
    t[250:] += 3.0  # 3 s missing from the recording
    session, events = session_on(run, ReplaySource(t, x, [label] * len(x), speed=0.0))
    summary = await session.run_until_done()
    (reset,) = [e for e in events if e["event"] == "reset"]
    assert reset["reason"] == "gap" and reset["t_s"] == pytest.approx(t[250])
    assert summary["gaps"] == 1 and summary["lane_resets"] == 2
    assert summary["samples_expected"] - summary["samples_received"] == 150  # the 3 s at 50 Hz never received
    after = [e["t_s"] for e in events if e["event"] == "decision" and e["t_s"] > t[250]]
    assert after[0] == pytest.approx(t[250] + (run.window - 1) / run.fs_hz)
