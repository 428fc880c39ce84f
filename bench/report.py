"""Rendering a benchmark result: BENCHMARKS.md (tables, wins and losses, method), the JSON file and a PNG of
accuracy against estimated energy per decision."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.summary import COLUMNS, OURS, PROFILES, outcome
from deploy.energy import SYNOP_CAVEAT
from training.atomic import atomic_path, write_text
from training.run_dir import to_json


def _num(v: float | None, digits: int = 3) -> str:
    """Three significant digits, thousands separators, '—' for no value."""
    if v is None:
        return "—"
    if v == 0:
        return "0"
    rounded = float(f"{v:.{digits}g}")
    return f"{rounded:,.0f}" if abs(rounded) >= 10 ** (digits - 1) else f"{rounded:,.{digits}g}"


def _int(v: float | None) -> str:
    return "—" if v is None else f"{round(v):,}"


def _pm(mean: float, std: float) -> str:
    return f"{mean:.3f} ± {std:.3f}"


def _name(m: dict) -> str:
    return f"**{m['label']}** (ours)" if m["ours"] else m["label"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def accuracy_table(models: list[dict]) -> list[str]:
    return _table(
        ["Model", "Runtime", "Accuracy", "Macro-F1", "Params", "Model bytes", "TFLM arena bytes",
         "MACs / decision", "ACs / decision", "MACs executed / decision"],
        [[_name(m), m["runtime"], _pm(m["accuracy"], m["accuracy_std"]), _pm(m["macro_f1"], m["macro_f1_std"]),
          _int(m["params"]), f"{_int(m['model_bytes'])} ({m['format']})", _int(m["arena_bytes"]), _num(m["macs"]),
          _num(m["acs"]), _num(m["dense_macs"])] for m in models])


def latency_table(models: list[dict]) -> list[str]:
    header = ["Model", "Runtime", "Host latency median (µs)", "Host p99 (µs)"]
    for name in PROFILES:
        header += [f"{name} latency (µs, estimate)", f"{name} energy (µJ, estimate)"]
    rows = []
    for m in models:
        row = [_name(m), m["runtime"], _num(m["latency_median_us"]), _num(m["latency_p99_us"])]
        for name in PROFILES:
            d = m["devices"].get(name)
            row += [_num(d["latency_us"]), _num(d["energy_uj"])] if d else ["—", "—"]
        rows.append(row)
    return _table(header, rows)


COUNTS = ("params", "model_bytes", "arena_bytes")  # shown exactly, everything else to 3 significant digits
POINTS = ("accuracy", "macro_f1")  # differences also given in percentage points
MARKS = {"win": "✔", "loss": "✘", "par": "="}


def _value(column: str, v: float) -> str:
    return _int(v) if column in COUNTS else _num(v)


def _verdict(r: dict) -> str:
    if r["outcome"] == "par":
        return "on par"
    word = "better" if r["outcome"] == "win" else "worse"
    gap = f" ({100 * (r['ours'] - r['peer']):+.1f} points)" if r["column"] in POINTS else ""
    return f"L2MU {word} ×{r['factor']:.2f}{gap}" if r["factor"] != float("inf") else f"L2MU {word}"


def stream_table(streams: list[dict]) -> list[str]:
    return _table(["Contender", "Accuracy, every decision", "Accuracy, inside recordings", "Steps / decision",
                   "History (samples)"],
                  [[s["label"], _pm(s["accuracy_every_decision"], s["accuracy_every_decision_std"]),
                    _pm(s["accuracy_inside_recordings"], s["accuracy_inside_recordings_std"]),
                    _int(s["steps_per_decision"]), _int(s["history_samples"]) if s["history_samples"] else "state"]
                   for s in streams])


def ratio_table(ratios: list[dict], ours: str = "L2MU int8 step (LiteRT)") -> list[str]:
    return _table(["Column", ours, "Best peer", "Peer value", "Ours / peer", "Verdict"],
                  [[r["title"], _value(r["column"], r["ours"]), f"{r['best_peer']}, {r['best_peer_runtime']}",
                    _value(r["column"], r["peer"]), _num(r["ratio"]), _verdict(r)] for r in ratios])


def wins_and_losses(ratios: list[dict]) -> list[str]:
    def line(r: dict) -> str:
        return (f"- {r['title']}: {_value(r['column'], r['ours'])} against {_value(r['column'], r['peer'])} for "
                f"{r['best_peer']}: {_verdict(r)}")

    out = []
    for kind, heading in (("win", "Where the L2MU int8 step wins"), ("loss", "Where it loses"),
                             ("par", "Where it is on par")):
        rows = [line(r) for r in ratios if r["outcome"] == kind]
        if rows or kind != "par":
            out += [f"**{heading}** (against the best peer of each column):", "", *(rows or ["- nowhere"]), ""]
    return out


def peer_matrix(result: dict) -> list[str]:
    """Ours / each peer on every column: ✔ where the L2MU int8 step is better, ✘ where worse, = on par."""
    peers = [m for m in result["models"] if not m["ours"]]
    rows = []
    for column, title, higher in COLUMNS:
        ours = next(m for m in result["models"] if m["key"] == OURS).get(column)
        if ours is None:
            continue
        cells = []
        for p in peers:
            v = p.get(column)
            if v is None or (v == 0 and "macs" in column):
                cells.append("—")
                continue
            ratio = ours / v
            cells.append(f"{_num(ratio)} {MARKS[outcome(ratio, higher)]}")
        rows.append([title, *cells])
    return _table(["Column", *[f"{p['label']}, {p['runtime']}" for p in peers]], rows)


def _epochs(m: dict) -> list[str]:
    if not m["epochs_per_fold"]:
        return []
    return [f"epochs run per fold (early stopping) {', '.join(map(str, m['epochs_per_fold']))}"]


def _executed(m: dict) -> list[str]:
    """The basis of a device column measured in executed instructions (bench/device.py)."""
    return [f"{name}: {d['basis']}" for name, d in m["devices"].items() if d.get("from_instructions")]


def _dispatch(m: dict) -> list[str]:
    if not m["devices"] or not any(d["dispatch_fraction"] for d in m["devices"].values()):
        return []
    shares = ", ".join(f"{m['devices'][name]['dispatch_fraction']:.0%} ({name})" for name in PROFILES)
    return [f"share of its estimated device cycles spent dispatching graph operators: {shares}"]


def markdown(result: dict, png: str, latency_png: str) -> str:
    d, p, h, o, models = result["data"], result["protocol"], result["host"], result["outputs"], result["models"]
    ran = time.strftime("%Y-%m-%d", time.localtime())
    lines = [
        "# Benchmarks: L2MU against what you would otherwise ship", "",
        f"{'Interrupted ' + result['mode'] if result['interrupted'] else result['mode'].capitalize()} run of "
        f"`python bench/compare.py{' --quick' if result['mode'] == 'quick' else ''}` on {ran}: "
        f"{result['seconds'] / 60:.1f} min on {h['cpu']} ({h['cores']} cores shared with other work; load average "
        f"{h['load_average_at_start'][0]:.1f} at start, {h['load_average_at_end'][0]:.1f} at end). "
        f"{result['description']}.", "",
        f"**Protocol, identical for every model:** {d['name']} (`--data {d['spec']}`), {len(d['subjects'])} subjects, "
        f"{d['windows']:,} windows of {p['window']} samples at {p['fs_hz']:g} Hz (hop {p['hop']}), classes "
        f"{', '.join(d['classes'])}; {p['folds_run']} {p['split']} (seed {p['seed']}); {p['normalisation']}; random "
        f"wrist rotation up to {p['augmentation_deg']:g}° while training; Adam with cosine decay and early stopping "
        "on the validation subject for every neural model. Measured in this run: accuracy, macro-F1, sizes, TFLM "
        "arena, host latency. Estimated (labelled): device latency and energy.", "",
        "## Accuracy, size and operations", "",
        *accuracy_table(models), "",
        "Accuracy and macro-F1: mean ± std over folds, on every test window, computed from the runtime named in the "
        "row. Params: trained values (forest: tree nodes). Model bytes: the deployable file (forest: estimated "
        "compact C arrays). TFLM arena: the smallest tensor arena in which the real TFLM kernels (tflite_micro) "
        "allocate and run the model (`deploy.tflm_arena_probe`); — where TFLM cannot run it. MACs / ACs: for the "
        "L2MU the effective (NeuroBench) MACs on real-valued inputs and accumulates on spikes, from each fold's "
        "`metrics.json` (int8 rows: the pruned model); for peers the MACs of their layer shapes. MACs executed: "
        "what dense int8 kernels compute (TFLM and LiteRT have no sparse kernels), the basis of the estimates.", "",
        "## Latency and energy per decision", "",
        "A decision classifies one window of 40 samples; one is made every hop (20 samples = 1 s). For the L2MU "
        "step a decision is 40 invocations of the step graph from the zero state (2 staggered lanes × 20 steps).", "",
        *latency_table(models), "",
        f"Host latency: measured in this run on {h['cpu']}, one thread per runtime, from a normalised window to a "
        "class (quantisation included), median and p99 over every timed decision of all folds. The contenders took "
        "turns window by window in a rotating order, so load from other work hit them alike and the ratios hold. "
        "Device columns are **estimates**, not measurements: the same method for every model, "
        "`deploy.energy.estimate_latency` (cycles = MACs × cycles/MAC + elementwise × cycles/op + graph operators × "
        "dispatch cycles, at the profile's clock) and E = t × active power, with the constants and sources in "
        "`device_profiles/stm32l4r5.toml` and `rpi4.toml`. The forest has no interpreter (0 operators); the "
        "float ONNX model is costed with the int8 constants (a lower bound for float kernels). Except, for every "
        "TFLM model (the L2MU int8 step, the int8 LSTM and 1D-CNN): their stm32l4r5 columns come from **executed "
        "instructions** — each model built with the firmware harness for the Cortex-M4F (CMSIS-NN), run under QEMU "
        "mps2-an386 on test windows, every Invoke() counted (`bench/device.py`, docs/firmware.md) — times the "
        "profile's cycles per instruction (still an estimate: cycles and power are not measured); the notes say "
        "which rows. The C engine rows (the integer L2MU, docs/integer-engine.md) likewise: engine + model built for "
        "the Cortex-M4F with arm-none-eabi-gcc, run under QEMU on test windows, every step counted "
        "(`deploy/integer/firmware.py`).", "",
        f"![accuracy against estimated energy per decision]({png})", "",
        "## L2MU int8 step against the best peer, column by column", "",
        "Ours: the L2MU int8 streaming step on LiteRT. Best peer: the best value among the four peers on that "
        "column (the forest is left out of the MAC columns: it only compares). Ratio = ours / peer.", "",
        *ratio_table(result["ratios"]), "",
        *wins_and_losses(result["ratios"]),
        "Against each peer (ours / peer; ✔ where the L2MU int8 step is better, ✘ worse, = on par):", "",
        *peer_matrix(result), "",
        "## L2MU integer engine on one lane against the best peer", "",
        "The same comparison for the event-driven integer engine stepping one lane (a decision every hop over the "
        "last window's output spikes, the rule of `har train --stream` runs; its accuracy here is on the test "
        "windows, which it decides exactly as the windowed engine; on streams see below). Its stm32l4r5 columns "
        "come from instructions executed under QEMU.", "",
        *ratio_table(result["ratios_engine"], "L2MU integer engine, one lane"), "",
        "## Streams: one lane, a decision every hop", "",
        *stream_table(result["streams"]), "",
        "Each fold's test subjects' recordings joined into one stream per subject (activities interleaved, so every "
        "recording start is a true activity change); every contender decides at the same samples, every hop from "
        "the first full window on (bench/streams.py). Inside recordings: the decisions whose window does not "
        "straddle a change, the set a test window belongs to. Streaming L2MU: the fold's L2MU after the stream "
        "fine-tune of `har train --stream` (kept only where it beat the windowed weights on the validation "
        "streams), one state per stream never reset; steps per decision = model steps between decisions. The vote "
        "gives the forest the span a streaming model's ring buffer and memory see. Float models (torch, "
        "scikit-learn).", "",
        "Decision latency after an activity change (`bench/decision_latency.py`, figures in docs/streaming.md): "
        "true activity and every contender's decision at every sample of one held-out stream.", "",
        f"![decisions over one stream]({latency_png})", "",
        "## Notes per model", "",
        "Numbers inside the notes are of the last fold.", "",
        *[f"- {m['label']} ({m['runtime']}): {'; '.join(_epochs(m) + m['notes'] + _dispatch(m) + _executed(m))}."
          for m in models],
        "",
        "The L2MU's effective MACs and ACs (and the synaptic-operation energy in its notes) would matter on "
        f"neuromorphic hardware; such an estimate {SYNOP_CAVEAT}.", "",
        "## Folds", "",
        *_table(["Fold", "Test subjects", "Validation", "Test windows", "Seconds (L2MU / peers / measuring)"],
                [[str(f["fold"]), ",".join(f["split"]["test"]), ",".join(f["split"]["val"]), str(f["test_windows"]),
                  f"{f['seconds']['l2mu']:.0f} / "
                  f"{sum(v for k, v in f['seconds'].items() if k not in ('l2mu', 'measure', 'streams', 'total')):.0f} / "
                  f"{f['seconds']['measure']:.0f}"] for f in result["folds"]]), "",
        f"Machine-readable: `{Path(o['json']).name}` (every fold, every basis). The models of every fold (L2MU "
        f"run directories, .tflite, .onnx) stay in `{os.path.relpath(o['artifacts'], Path(o['markdown']).parent)}/`.",
        "",
    ]
    return "\n".join(lines)


def plot(result: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PROFILES), figsize=(6.5 * len(PROFILES), 4.8), sharey=True)
    for ax, name in zip(axes, PROFILES):
        shown: set[tuple[str, float]] = set()  # one point per model: the device estimate ignores the host runtime
        for m in result["models"]:
            if name not in m["devices"] or (m["label"], m["devices"][name]["energy_uj"]) in shown:
                continue
            x = m["devices"][name]["energy_uj"]
            shown.add((m["label"], x))
            ours = m["ours"]
            style = {"marker": "*" if ours else "o", "markersize": 14 if ours else 6,
                     "color": "tab:red" if ours else "tab:blue"}
            ax.errorbar(x, m["accuracy"], yerr=m["accuracy_std"], capsize=3, linestyle="none", **style)
            ax.annotate(m["label"], (x, m["accuracy"]), textcoords="offset points", xytext=(6, 4), fontsize=7)
        ax.set_xscale("log")
        xs = [x for _, x in shown]
        ax.set_xlim(min(xs) / 3, max(xs) * 20)  # room for the labels
        ax.set_xlabel(f"energy per decision on {name} (µJ, estimate from op counts)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("accuracy (mean ± std over folds)")
    fig.suptitle(f"{result['data']['name']}: accuracy against estimated energy per decision "
                 f"({result['protocol']['folds_run']} subject-grouped folds; ★ = L2MU)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def write_report(result: dict, out) -> None:
    """BENCHMARKS.json, the PNG and BENCHMARKS.md (which links the PNG by a relative path)."""
    write_text(out.json, to_json(result))
    plot(result, out.png)
    latency_png = Path(__file__).resolve().parent / "decision_latency.png"  # written by bench/decision_latency.py
    write_text(out.markdown, markdown(result, os.path.relpath(out.png, out.markdown.parent),
                                      os.path.relpath(latency_png, out.markdown.parent)))


def summary_text(result: dict) -> str:
    """What the command prints on stdout without --json: the three tables."""
    models = result["models"]
    return "\n".join([*accuracy_table(models), "", *latency_table(models), "", *ratio_table(result["ratios"]), "",
                      *stream_table(result["streams"]), ""])
