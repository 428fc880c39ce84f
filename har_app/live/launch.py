"""`har live` as a library call: open the run, the source and the backend, run the session, show and summarise."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from har_app.live.backends import choose_backend, open_lanes
from har_app.live.runtime import LaneRunner
from har_app.live.stream_runner import StreamRunner
from deploy.profiles import load_profile
from har_app.live.session import LiveSession
from har_app.live.view import LiveView, summary_table
from har_app.sources.base import ImuSource
from har_app.sources.record import Recorder
from training.errors import HarError
from training.run_dir import Run, latest_run, open_run
from training.validate import check_new_file


@dataclass
class LiveRequest:
    run: Path | None = None  # default: the latest run in runs_dir
    runs_dir: Path = Path("runs")
    ble: str | None = None
    ble_profile: str | None = None
    replay: str | None = None  # a CSV file or "bundled"
    speed: float | None = None  # replay pace (default 1: real time)
    record: Path | None = None
    label: str | None = None  # label of recorded rows where the source carries none
    subject: str = "live"
    backend: str | None = None  # default: litert when the run has model_int8.tflite, else torch
    device: str = "host"
    json: bool = False


def open_source(req: LiveRequest, run: Run) -> ImuSource:
    if (req.ble is None) == (req.replay is None):
        raise HarError("give exactly one source: --ble WATCH_ID or --replay FILE|bundled")
    if req.replay is not None:
        from har_app.sources.replay import open_replay

        if req.ble_profile is not None:
            raise HarError("--protocol applies to --ble only")
        return open_replay(req.replay, run, 1.0 if req.speed is None else req.speed)
    if req.speed is not None:
        raise HarError("--speed applies to --replay only: a watch streams in real time")
    from har_app.sources.ble import BleSource

    return BleSource(req.ble, profile=req.ble_profile)


def print_event(event: dict) -> None:
    sys.stdout.write(json.dumps(event, default=float) + "\n")
    sys.stdout.flush()


def run_live(req: LiveRequest, out: Console, err: Console) -> dict:
    """Run one session to its end (or Ctrl-C); returns the summary event."""
    if req.record is not None:
        check_new_file(req.record, "--record")  # before anything starts; Recorder checks again when it opens
    run = open_run(req.run if req.run is not None else latest_run(req.runs_dir))
    profile = load_profile(req.device)
    source = open_source(req, run)
    backend = choose_backend(run, req.backend, lambda msg: err.print(f"[yellow]{msg}[/]", highlight=False))
    runner = (StreamRunner if run.stream else LaneRunner)(open_lanes(run, backend, run.lanes), run.window, run.hop,
                                                          run.normalization.apply)
    speed = getattr(source, "speed", 1.0)  # a replay's pace; live sources run at 1
    title = f"har live: {run.path.name} on {req.ble or source.name} ({backend})"
    view = LiveView(err, run.classes, title, profile.name, speed)
    recorder = Recorder(req.record, req.label, req.subject) if req.record else None
    session = LiveSession(run, source, runner, backend, profile,
                          on_event=print_event if req.json else (lambda e: None), recorder=recorder,
                          on_update=view.update if err.is_terminal else None)
    session.on_event({"event": "start", "run": str(run.path), "source": req.ble or source.name, "backend": backend,
                      "device": profile.name, "classes": run.classes, "fs_hz": run.fs_hz, "window": run.window,
                      "hop": run.hop, "lanes": run.lanes})
    err.print(f"{title}: {run.window} samples per window at {run.fs_hz:g} Hz, a decision every {run.hop} samples; "
              "Ctrl-C stops", highlight=False)
    with view if err.is_terminal else contextlib.nullcontext():
        summary = asyncio.run(session.run_until_done())
    if not req.json:
        out.print(summary_table(summary, f"har live: {run.path.name}, {backend}, device {profile.name}"))
    if recorder is not None:
        err.print(f"recorded {recorder.rows} samples to {recorder.path}" if summary["recording_written"]
                  else f"nothing received: {req.record} not written", highlight=False)
    return summary
