"""Rich renderings of the results of `har train`, `har devices` and `har deploy` (stdout). A table row is one line:
cells hold short values and notes, every long basis and caveat is printed under its table, wrapped to the console."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from deploy.firmware.verify import FirmwareMeasurement
from deploy.profiles import DeviceProfile
from deploy.report import DeployReport, ParityCheck
from training.run_dir import INT8_MODEL
from training.run_metrics import RunMetrics


def train_report(result: dict) -> Table:
    metrics = RunMetrics.from_json(result, "the training result")
    ds, model = metrics.dataset, metrics.model
    t = Table(title=f"L2MU ({model.neuron}, {model.params:,} params) on {ds.name}, "
                    f"test subjects {','.join(ds.test_subjects)}", title_justify="left")
    t.add_column("stage")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for stage, m in result["stages"].items():
        for key, value in m.items():
            if isinstance(value, (dict, list)):
                continue
            t.add_row(stage, key, f"{value:.4g}" if isinstance(value, float) else str(value))
        for cls, f1 in m.get("per_class_f1", {}).items():
            t.add_row(stage, f"F1 {cls}", f"{f1:.3f}")
        stage = ""
    if metrics.cv is not None:
        cv = metrics.cv
        t.add_row("cv", f"accuracy ({cv.folds_run}/{cv.k} folds)", f"{cv.accuracy_mean:.4f} ± {cv.accuracy_std:.4f}")
        t.add_row("cv", "macro F1", f"{cv.macro_f1_mean:.4f} ± {cv.macro_f1_std:.4f}")
    t.caption = f"run directory: {metrics.run_dir}"
    return t


def _size(n: float) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:,.2f} {unit}"
    return f"{n:,.0f} B"


def devices_table(profiles: list[DeviceProfile]) -> Table:
    table = Table(title="device profiles", title_justify="left")
    for column in ("name", "board", "core", "clock", "RAM", "flash", "runtime", "supply", "active", "bundle"):
        table.add_column(column, justify="right" if column in ("clock", "RAM", "flash", "supply", "active") else "left",
                         no_wrap=column == "name")
    for p in profiles:
        core = f"{p.core} x{p.cores}" if p.cores > 1 else p.core
        table.add_row(p.name, p.title, core, f"{p.clock_mhz:g} MHz", _size(p.ram_bytes), _size(p.flash_bytes),
                      p.runtime, f"{p.supply_voltage_v:g} V", f"{p.active_mw:g} mW", p.bundle)
    return table


def _table(title: str, notes: bool = True) -> Table:
    """No cell wraps: a row is one line (the cells are short; bases and caveats go under the table)."""
    t = Table(title=title, title_justify="left", show_header=False)
    t.add_column("item", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    if notes:
        t.add_column("note", no_wrap=True)
    return t


def _with_notes(table: Table, notes: list[str]) -> Group:
    """The table, then one paragraph per note, indented and word-wrapped to the console width."""
    return Group(table, *(Padding(Text(note, style="dim"), (0, 0, 0, 2)) for note in notes), Text(""))


def _memory_block(r: DeployReport) -> Group:
    fit, model, arena = r.fit, r.model, r.arena
    measured = fit.basis.startswith("measured")
    t = _table(f"memory ({r.device.name}: {'fits' if fit.fits else 'DOES NOT FIT'})")
    t.add_row("params #", f"{model.params:,}", "trained weights and biases")
    t.add_row("macc / step", f"{model.int8_macs_per_step:,}", "dense int8 MACs of the weights")
    t.add_row("weights (ro)", _size(model.tflite_bytes), INT8_MODEL)
    t.add_row("activations (rw)", _size(arena.arena_bytes), f"per lane: {arena.min_arena_bytes:,} B + margin")
    t.add_row("state", _size(model.state_bytes), f"{model.state_variables} resource variables (in arena)")
    t.add_row("lanes", str(fit.lanes), "one arena per overlapping window")
    t.add_row("ram (total)", f"{_size(fit.ram_bytes)} / {_size(fit.ram_available)}",
              "ELF data + bss + stack" if measured else f"lanes x arena + {_size(fit.stack_bytes)} stack")
    t.add_row("flash (total)", f"{_size(fit.flash_bytes)} / {_size(fit.flash_available)}",
              "ELF text + data" if measured else f"model + {_size(fit.code_bytes)} for code")
    return _with_notes(t, [f"fit: {fit.basis}", f"arena: {arena.measured_with} (margin {arena.margin})"])


def _timing_block(r: DeployReport) -> Group:
    lat, energy, synop = r.latency_us, r.energy_uj_per_decision, r.snn_synop_energy_uj_per_window
    t = _table("latency and energy", notes=False)
    kind = "estimate" if lat.estimate else "measured"
    t.add_row(f"latency per sample ({kind})", f"{lat.per_sample:,.1f} us")
    t.add_row(f"latency per decision ({kind})", f"{lat.per_decision:,.1f} us")
    t.add_row("energy per decision (estimate)", f"{energy.value:,.3g} uJ")
    notes = [f"latency: {lat.basis}"]
    if lat.vs_last_measurement:
        notes.append(f"latency: {lat.vs_last_measurement['note']}")
    notes.append(f"energy: {energy.basis}")
    if synop.value is not None:
        t.add_row("SNN synaptic-op energy per window (estimate)", f"{synop.value:,.3g} uJ")
    else:
        t.add_row("SNN synaptic-op energy per window", "n/a")
    notes.append(f"synaptic-op energy: {synop.basis}")
    if synop.caveat:
        notes.append(f"synaptic-op energy caveat: {synop.caveat}")
    return _with_notes(t, notes)


def _firmware_block(m: FirmwareMeasurement) -> Group:
    t = _table(f"firmware on {m.target} (QEMU {m.machine}, {m.windows} held-out windows)")
    step, decision, elf = m.instructions_per_step, m.instructions_per_decision, m.elf
    t.add_row("instructions per step", f"{step['median']:,}", f"median; max {step['max']:,}")
    t.add_row("instructions per decision", f"{decision['median']:,}", f"median; max {decision['max']:,}")
    t.add_row("ELF text / data / bss", f"{elf.text:,} / {elf.data:,} / {elf.bss:,} B", "arm-none-eabi-size")
    t.add_row("arena needed on target", f"{m.arena_bytes:,} B", "smallest arena that works there")
    t.add_row("arena reserved by the bundle", f"{m.arena_reserved_bytes:,} B",
              f"used after the run: {m.arena_used_bytes:,} B")
    t.add_row("bit-exact with tflite_micro", "yes" if m.bit_exact else "NO",
              f"step outputs {m.step_outputs_exact:.0%}, decisions {m.window_counts_exact:.0%}")
    t.add_row("golden self-test", "passed" if m.golden_self_test else "FAILED", "main.cc as generated")
    t.add_row("compiler warnings", str(m.compiler_warnings), "TFLM warning set")
    return _with_notes(t, ["instructions: counted by a QEMU TCG plugin around each MicroInterpreter::Invoke(); a "
                           "decision = one window of HAR_WINDOW invokes; cycles are not measured (docs/firmware.md)"])


def _parity_block(p: ParityCheck) -> Group:
    t = _table(f"TFLM vs LiteRT on {p.windows} held-out windows ({p.steps} steps)", notes=False)
    t.add_row("decision agreement", f"{p.decision_agreement:.1%}")
    t.add_row("window spike counts identical", f"{p.window_counts_exact:.1%}")
    t.add_row("step outputs bit-identical", f"{p.step_outputs_exact:.1%}")
    t.add_row("step spikes identical", f"{p.step_spikes_exact:.1%}")
    t.add_row("max output difference", f"{p.max_output_diff_lsb} LSB")
    notes = []
    if p.max_margin_where_decisions_differ is not None:
        t.add_row("LiteRT's lead where decisions differ", f"<= {p.max_margin_where_decisions_differ} spikes")
        notes.append("decisions differ only where LiteRT's winning class led the runner-up by at most that many spikes")
    return _with_notes(t, notes)


def deploy_report(result: dict) -> Group:
    r = DeployReport.from_json(result, "the deploy report")
    parts: list[RenderableType] = [
        Text.assemble(("bundle", "bold"), f" {r.bundle}  ({r.device.title}, {len(r.files)} files)"),
        _memory_block(r), _timing_block(r)]
    if r.measured is not None:
        parts.append(_firmware_block(r.measured))
    if r.parity is not None:
        parts.append(_parity_block(r.parity))
    return Group(*parts)
