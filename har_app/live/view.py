"""What a live session shows: a rich Live panel on stderr while it runs and a summary table on stdout at the end."""

from __future__ import annotations

import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table

from har_app.live.runtime import Decision

REFRESH_S = 0.25


def _num(value: float | None, fmt: str = ".1f", unit: str = "") -> str:
    return "n/a" if value is None else f"{value:{fmt}}{unit}"


def rejected_text(status: dict) -> str:
    """Packets dropped besides the malformed ones, e.g. `time 1, duplicates 2, late 0`."""
    r = status["packets_rejected"]
    return f"time {r['rejected_time']}, duplicates {r['duplicates']}, late {r['late']}"


def energy_text(energy: dict) -> str:
    value = energy.get("value")
    if value is None:
        return f"n/a ({energy.get('basis', 'no estimate')})"
    label = "estimate" if energy.get("estimate", True) else "measured"
    return f"{value:.3g} µJ ({label}: {energy.get('basis', '')})"


class LiveView:
    """The live panel: current activity and confidence, latency, stream health, energy beside measured CPU time."""

    def __init__(self, console: Console, classes: list[str], title: str, device: str, speed: float = 1.0):
        self.classes, self.title, self.device, self.speed = classes, title, device, speed
        self.live = Live(console=console, refresh_per_second=1 / REFRESH_S, transient=False)
        self.decision: Decision | None = None
        self._shown = 0.0

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, session, decision: Decision | None) -> None:
        """Called after every frame; redraws at most every REFRESH_S seconds (and on each decision)."""
        self.decision = decision or self.decision
        now = time.perf_counter()
        if decision is None and now - self._shown < REFRESH_S:
            return
        self._shown = now
        expected = session.source.expected_rate_hz * self.speed if self.speed else None
        self.live.update(self.render(session.summary(), session.received_rate_hz(), expected))

    def render(self, status: dict, received_hz: float, expected_hz: float | None) -> Panel:
        """expected_hz: the rate samples should arrive at in wall-clock time (None: replay as fast as possible)."""
        d = self.decision
        head = Table.grid(padding=(0, 2))
        if d is None:
            head.add_row("activity", "[dim]waiting for the first window[/]")
        else:
            truth = f"  (label {d.label})" if d.label is not None else ""
            head.add_row("activity", f"[bold]{self.classes[d.class_index]}[/]{truth}")
            head.add_row("confidence", Group(ProgressBar(total=1.0, completed=d.confidence, width=30)),
                         f"{d.confidence:.2f}")
        grid = Table.grid(padding=(0, 2))
        lat = status["latency_us"]
        expected = "as fast as possible" if expected_hz is None else f"{expected_hz:.1f}"
        grid.add_row("step latency p50 / p99", f"{_num(lat['p50'])} / {_num(lat['p99'])} µs ({status['backend']})")
        grid.add_row("samples/s received / expected", f"{received_hz:.1f} / {expected}")
        grid.add_row("dropped / late samples", f"{status['dropped_samples']} / {status['late_samples']}")
        grid.add_row("lost / malformed packets", f"{status['lost_packets']} / {status['malformed_packets']}")
        grid.add_row("rejected packets / resyncs", f"{rejected_text(status)} / {status['resyncs']}")
        grid.add_row(f"energy per decision ({self.device})", energy_text(status["energy_uj_per_decision"]))
        grid.add_row("host CPU per decision (measured)", _num(status["host_cpu_us_per_decision"], ".0f", " µs"))
        grid.add_row("decisions", f"{status['decisions']}  correct {_num(status['correct_fraction'], '.3f')}")
        return Panel(Group(head, grid), title=self.title, title_align="left")


def summary_table(summary: dict, classes_title: str) -> Table:
    """The end-of-session table (stdout)."""
    t = Table(title=classes_title, title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    lat = summary["latency_us"]
    rows = [
        ("decisions", str(summary["decisions"])),
        ("correct fraction", _num(summary["correct_fraction"], ".3f")),
        ("backend", summary["backend"]),
        ("step latency p50 / p99", f"{_num(lat['p50'])} / {_num(lat['p99'])} µs"),
        ("model time per decision", _num(summary["model_us_per_decision"], ".0f", " µs")),
        ("host CPU per decision (measured)", _num(summary["host_cpu_us_per_decision"], ".0f", " µs")),
        ("host CPU use", _num(None if summary["host_cpu_fraction"] is None else 100 * summary["host_cpu_fraction"],
                              ".1f", " %")),
        ("energy per decision", energy_text(summary["energy_uj_per_decision"])),
        ("samples received / expected", f"{summary['samples_received']} / {summary['samples_expected']}"),
        ("dropped / late samples", f"{summary['dropped_samples']} / {summary['late_samples']}"),
        ("lost / malformed packets", f"{summary['lost_packets']} / {summary['malformed_packets']}"),
        ("rejected packets / resyncs", f"{rejected_text(summary)} / {summary['resyncs']}"),
        ("gaps / reconnects", f"{summary['gaps']} / {summary['reconnects']}"),
        ("stream / wall time", f"{summary['stream_s']:.1f} s / {summary['wall_s']:.1f} s"),
    ]
    for name, value in rows:
        t.add_row(name, value)
    if summary["interrupted"]:
        t.caption = "stopped by the user"
    return t
