"""Rich renderings of `har devices` and `har deploy` results (data on stdout; the CLI prints what these return)."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table

from deploy.profiles import DeviceProfile


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
    """One line per row: long bases and caveats go into the caption under the table."""
    t = Table(title=title, title_justify="left", show_header=False, caption_justify="left")
    t.add_column("item", no_wrap=True)
    t.add_column("value", justify="right", no_wrap=True)
    if notes:
        t.add_column("note", no_wrap=True, overflow="ellipsis")
    return t


def _memory_block(result: dict) -> Table:
    fit, model, arena = result["fit"], result["model"], result["arena"]
    measured = fit.get("basis", "").startswith("measured")
    t = _table(f"memory ({result['device']['name']}: {'fits' if fit['fits'] else 'DOES NOT FIT'})")
    t.add_row("params #", f"{model['params']:,}", "trained weights and biases")
    t.add_row("macc / step", f"{model['int8_macs_per_step']:,}", "int8 MACs of the weight matrices, dense")
    t.add_row("weights (ro)", _size(model["tflite_bytes"]), "model_int8.tflite")
    t.add_row("activations (rw)", _size(arena["arena_bytes"]), f"arena per lane: {arena['min_arena_bytes']:,} B + margin")
    t.add_row("state", _size(model["state_bytes"]), f"{model['state_variables']} resource variables, in the arena")
    t.add_row("lanes", str(fit["lanes"]), "overlapping windows, one arena each")
    t.add_row("ram (total)", f"{_size(fit['ram_bytes'])} / {_size(fit['ram_available'])}",
              "ELF data + bss + stack" if measured else f"lanes x arena + {_size(fit['stack_bytes'])} stack")
    t.add_row("flash (total)", f"{_size(fit['flash_bytes'])} / {_size(fit['flash_available'])}",
              "ELF text + data" if measured else f"model + {_size(fit['code_bytes'])} code allowance")
    t.caption = f"fit: {fit.get('basis', 'estimate')}\narena: {arena['measured_with']}"
    return t


def _timing_block(result: dict) -> Table:
    lat, energy, synop = result["latency_us"], result["energy_uj_per_decision"], result["snn_synop_energy_uj_per_window"]
    t = _table("latency and energy", notes=False)
    kind = "estimate" if lat["estimate"] else "measured"
    t.add_row(f"latency per sample ({kind})", f"{lat['per_sample']:,.1f} us")
    t.add_row(f"latency per decision ({kind})", f"{lat['per_decision']:,.1f} us")
    t.add_row("energy per decision (estimate)", f"{energy['value']:,.3g} uJ")
    notes = [f"latency: {lat['basis']}"]
    if lat.get("vs_last_measurement"):
        notes.append(lat["vs_last_measurement"]["note"])
    notes.append(f"energy: {energy['basis']}")
    if synop["value"] is not None:
        t.add_row("SNN synaptic-op energy per window (estimate)", f"{synop['value']:,.3g} uJ")
        notes.append(f"synaptic ops: {synop['basis']}; caveat: {synop['caveat']}")
    else:
        t.add_row("SNN synaptic-op energy per window", "n/a")
        notes.append(f"synaptic ops: {synop['basis']}")
    t.caption = "\n".join(notes)
    return t


def _firmware_block(m: dict) -> Table:
    t = _table(f"firmware on {m['target']} (QEMU {m['machine']}, {m['windows']} held-out windows)")
    step, decision, elf = m["instructions_per_step"], m["instructions_per_decision"], m["elf"]
    t.add_row("instructions per step", f"{step['median']:,}", f"median; max {step['max']:,}")
    t.add_row("instructions per decision", f"{decision['median']:,}", f"median; max {decision['max']:,}")
    t.add_row("ELF text / data / bss", f"{elf['text']:,} / {elf['data']:,} / {elf['bss']:,} B", "arm-none-eabi-size")
    t.add_row("arena needed on target", f"{m['arena_bytes']:,} B", f"used after the run {m['arena_used_bytes']:,} B; "
              f"bundle reserves {m['arena_reserved_bytes']:,} B")
    t.add_row("bit-exact with tflite_micro", "yes" if m["bit_exact"] else "NO",
              f"step outputs {m['step_outputs_exact']:.0%}, decisions {m['window_counts_exact']:.0%}")
    t.add_row("golden self-test", "passed" if m["golden_self_test"] else "FAILED", "main.cc as generated")
    t.add_row("compiler warnings", str(m["compiler_warnings"]), "TFLM warning set")
    t.caption = ("instructions counted by a QEMU TCG plugin around each MicroInterpreter::Invoke(); a decision = "
                 "one window of HAR_WINDOW invokes; cycles are not measured (docs/firmware.md)")
    return t


def _parity_block(parity: dict) -> Table:
    t = Table(title=f"TFLM vs LiteRT on {parity['windows']} held-out windows ({parity['steps']} steps)",
              title_justify="left", show_header=False)
    t.add_column("item")
    t.add_column("value", justify="right")
    t.add_row("decision agreement", f"{parity['decision_agreement']:.1%}")
    t.add_row("window spike counts identical", f"{parity['window_counts_exact']:.1%}")
    t.add_row("step outputs bit-identical", f"{parity['step_outputs_exact']:.1%}")
    t.add_row("step spikes identical", f"{parity['step_spikes_exact']:.1%}")
    t.add_row("max output difference", f"{parity['max_output_diff_lsb']} LSB")
    if parity["max_margin_where_decisions_differ"] is not None:
        t.add_row("decisions differ only where LiteRT's lead was",
                  f"<= {parity['max_margin_where_decisions_differ']} spikes")
    return t


def deploy_report(result: dict) -> Group:
    parts = [f"[bold]bundle[/] {result['bundle']}  ({result['device']['title']}, {len(result['files'])} files)",
             _memory_block(result), _timing_block(result)]
    if result.get("measured"):
        parts.append(_firmware_block(result["measured"]))
    if result.get("parity"):
        parts.append(_parity_block(result["parity"]))
    return Group(*parts)
