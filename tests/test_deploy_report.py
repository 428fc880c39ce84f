"""The `har deploy` report of real bundles (MCU with parity, Linux): report.json has one JSON form that the typed
DeployReport reads back unchanged; on a 100-column console every table row is one line, nothing is cut, and every
basis and the synaptic-op energy caveat are printed under their table, not in a cell."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console, Group
from rich.padding import Padding
from rich.table import Table

from deploy.energy import SYNOP_CAVEAT
from deploy.pipeline import DeployRequest, deploy
from deploy.report import DeployReport
from har_app.render import deploy_report
from training.errors import HarError
from training.run_dir import to_json


@pytest.fixture(scope="module", params=["stm32l4r5", "rpi4"])
def deployed(request, int8_run, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param) / "bundle"
    result = deploy(DeployRequest(device=request.param, run=int8_run, out=out, parity_windows=4),
                    Console(stderr=True, quiet=True))
    return result, json.loads((out / "report.json").read_text())


def test_report_json_is_the_typed_report_s_json_form(deployed):
    result, saved = deployed
    assert json.loads(to_json(result)) == saved
    assert DeployReport.from_json(saved).to_json() == saved
    assert (saved["parity"] is None) == (saved["device"]["bundle"] != "mcu")
    with pytest.raises(HarError, match="unknown keys extra"):
        DeployReport.from_json({**saved, "extra": 1})
    with pytest.raises(HarError, match=r"report\.fit: missing key basis"):
        DeployReport.from_json({**saved, "fit": {k: v for k, v in saved["fit"].items() if k != "basis"}}, "report")


def _tables(renderable) -> list[Table]:
    if isinstance(renderable, Table):
        return [renderable]
    if isinstance(renderable, Group):
        return [t for r in renderable.renderables for t in _tables(r)]
    if isinstance(renderable, Padding):
        return _tables(renderable.renderable)
    return []


def _screen(result: dict, width: int = 100) -> list[str]:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(deploy_report(result))
    return console.export_text().splitlines()


def test_every_table_row_is_one_line_at_100_columns(deployed):
    result, _ = deployed
    lines = _screen(result)
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == sum(t.row_count for t in _tables(deploy_report(result))) >= 12
    assert not any("…" in line for line in lines) and all(len(line) <= 100 for line in lines)
    lat = result["latency_us"]
    decision = next(row for row in rows if "latency per decision" in row)
    assert f"{lat['per_decision']:,.1f} us" in decision


def test_bases_and_the_caveat_are_under_the_tables(deployed):
    result, _ = deployed
    lines = _screen(result)
    text = " ".join(" ".join(lines).split())
    bases = [result["fit"]["basis"], result["arena"]["measured_with"], result["latency_us"]["basis"],
             result["energy_uj_per_decision"]["basis"], result["snn_synop_energy_uj_per_window"]["basis"]]
    for basis in bases:
        assert " ".join(basis.split()) in text, basis
    assert result["snn_synop_energy_uj_per_window"]["caveat"] == SYNOP_CAVEAT
    assert f"synaptic-op energy caveat: {SYNOP_CAVEAT}" in text
    synop_row = next(i for i, line in enumerate(lines) if line.startswith("│ SNN synaptic-op energy"))
    caveat = next(i for i, line in enumerate(lines) if "caveat: ignores memory" in line)
    assert caveat > synop_row and lines[synop_row + 1].startswith("└")  # the synaptic-op row is the table's last
    for row in (line for line in lines if line.startswith("│")):
        assert "Yan et al." not in row and not any(basis[:40] in row for basis in bases)
