"""Ours: the L2MU of one fold, trained, pruned and converted by `har train --compress int8` itself
(har_app.train_job.run_train_job with the fold's test and validation subjects), as three contenders: the float
model in torch, and the int8 streaming step on LiteRT and on the TensorFlow Lite Micro interpreter."""

from __future__ import annotations

import numpy as np
from rich.console import Console

from bench.contender import Contender, Workload
from bench.protocol import AUGMENT_DEG, SEED, WINDOW, Data, Fold, Settings
from deploy.opcount import step_ops
from training.errors import ExitCode, HarError
from training.run_dir import INT8_MODEL, WEIGHTS, Run, open_run


def train(fold: Fold, data: Data, settings: Settings, all_subjects: bool, console: Console) -> dict:
    """`har train --compress int8` on the fold's split; sets `fold.l2mu_run`. Returns the training result."""
    from har_app.train_job import run_train_job
    from training.pipeline import TrainRequest

    req = TrainRequest(data=data.spec, subjects=None if all_subjects else data.subjects,
                       test_subjects=fold.split.test, val_subjects=fold.split.val, epochs=settings.l2mu_epochs,
                       patience=settings.l2mu_patience, seed=SEED, augment_deg=AUGMENT_DEG,
                       compress="int8", finetune_epochs=settings.finetune_epochs,
                       calibration_windows=settings.calibration_windows, runs_dir=fold.workdir, name="l2mu")
    result = run_train_job(req, console)
    if result["training"]["interrupted"] or "int8" not in result["stages"]:
        raise KeyboardInterrupt  # run_train_job keeps what it finished on Ctrl-C; this fold is incomplete
    run = open_run(result["run_dir"])
    if run.config["split"] != fold.split.to_dict() or not np.allclose(run.normalization.mean, fold.norm.mean):
        raise HarError(f"fold {fold.index + 1}: the L2MU run's split or normalisation differs from the benchmark's",
                       ExitCode.FAILURE)
    fold.l2mu_run = run.path
    return result


def _synop_note(stage: dict) -> str:
    from deploy.energy import snn_synop_energy

    e = snn_synop_energy(stage["effective_macs_per_window"], stage["effective_acs_per_window"])
    return (f"NeuroBench-style synaptic-operation energy {e['value']:.3g} µJ per window (estimate: {e['basis']}; "
            "for neuromorphic hardware, not these devices)")


def _float_contender(run: Run, result: dict, step: dict) -> Contender:
    import torch

    from training.checkpoint import load_model
    from training.loop import predict_counts

    model = load_model(run)
    stage = result["stages"]["float"]

    def decide(z: np.ndarray) -> int:
        with torch.no_grad():
            return int(model(torch.from_numpy(z[None])).argmax(1)[0])

    return Contender("l2mu_float", "L2MU float", ours=True, runtime="torch", format="float32 safetensors",
                     decide=decide, predict=lambda zs: predict_counts(model, zs).argmax(1),
                     params=result["model"]["params"], model_bytes=(run.path / WEIGHTS).stat().st_size,
                     arena_bytes=None, macs=stage["effective_macs_per_window"],
                     acs=stage["effective_acs_per_window"], dense_macs=step["macs"] * WINDOW, workload=None,
                     epochs=result["training"]["epochs_run"],
                     notes=["the trained model before pruning; torch does not deploy to the device profiles (the "
                            "ONNX row is its deployable float form)", _synop_note(stage)])


def _int8_contender(run: Run, result: dict, step: dict, runtime: str, emulated: dict | None) -> Contender:
    from deploy.step_runtimes import LiteRTStep, TFLMStep, window_counts
    from deploy.tflite_model import inspect_step_model

    model = (run.path / INT8_MODEL).read_bytes()
    info = inspect_step_model(model)
    lane = LiteRTStep(model, num_threads=1) if runtime == "LiteRT" else TFLMStep(model)
    stages = result["stages"]
    work = stages.get("pruned", stages["float"])  # the int8 graph holds the pruned weights

    def decide(z: np.ndarray) -> int:
        return int(window_counts(lane, z[None])[0].argmax())  # window-many steps from the zero state

    key = "l2mu_int8_" + ("litert" if runtime == "LiteRT" else "tflm")
    sparsity = stages.get("pruned", {}).get("sparsity", 0.0)
    return Contender(key, "L2MU int8 step", ours=True, runtime=runtime, format="int8 .tflite", decide=decide,
                     predict=lambda zs: window_counts(lane, zs).argmax(1), params=result["model"]["params"],
                     model_bytes=len(model), arena_bytes=stages["int8"]["tflm_arena_bytes"],
                     macs=work["effective_macs_per_window"], acs=work["effective_acs_per_window"],
                     dense_macs=step["macs"] * WINDOW,
                     workload=Workload(step["macs"], step["elementwise"], info.main_operators, WINDOW),
                     epochs=result["training"]["epochs_run"], emulated=emulated,
                     notes=[f"{sparsity:.0%} of weights pruned (stored dense), {info.main_operators} operators per "
                            f"step, {WINDOW} steps per decision", _synop_note(work)])


def _emulated(run: Run, result: dict, test_x: np.ndarray) -> dict | None:
    """The int8 step on the emulated MCU (bench/device.py): WINDOW invokes per decision from the zero state."""
    from bench.device import WINDOWS, emulated_decision
    from deploy.step_runtimes import TFLMStep
    from deploy.tflite_model import inspect_step_model

    model = (run.path / INT8_MODEL).read_bytes()
    info = inspect_step_model(model)
    io = TFLMStep(model).io
    q = np.array([[io.quantize(x)[0] for x in z] for z in test_x[:WINDOWS]])
    return emulated_decision(model, info.ops, q, result["stages"]["int8"]["tflm_arena_bytes"], len(info.states))


def _native_contenders(run: Run, result: dict, step: dict, test_x: np.ndarray) -> list[Contender]:
    """The integer L2MU on the C engine (docs/integer-engine.md), host through ctypes, with its instructions per
    decision measured on the emulated Cortex-M4F (deploy/integer/firmware.py): per the windowed rule (2 lanes, a
    window from the zero state per decision) and on one lane (a decision every hop over the last window's output
    spikes, `har train --stream` runs' rule). Accuracy is on the test windows for both (the one-lane rule's accuracy
    on streams is in the stream table)."""
    from bench.device import WINDOWS, tflm_root
    from deploy.firmware.targets import CORTEX_M4
    from deploy.integer.codegen import model_sources
    from deploy.integer.host import NativeLibrary, build_library
    from deploy.integer.model import quantize_input
    from deploy.integer.stage import integer_weights_file, load_integer_model

    model = load_integer_model(run, integer_weights_file(run))
    sources = model_sources(model)
    library_file = build_library(sources)
    library = NativeLibrary(library_file)
    stage = result["stages"]["integer"]
    work = result["stages"].get("pruned", result["stages"]["float"])
    xq = quantize_input(test_x[:WINDOWS])

    def counts(zs: np.ndarray) -> np.ndarray:
        return library.run_windows(quantize_input(zs))[0]

    out = []
    for key, label, lanes, reset in (("l2mu_native", "L2MU integer engine", 2, True),
                                     ("l2mu_native_one_lane", "L2MU integer engine, one lane", 1, False)):
        emulated, notes = None, []
        if tflm_root() is not None:
            from deploy.integer.firmware import measure_native

            m = measure_native(model, sources, xq, WINDOW, run.hop, lanes, CORTEX_M4, tflm_root(), reset)
            emulated = {"target": m.target, "machine": m.machine, "windows": m.windows, "kernels": "integer C engine",
                        "instructions_per_decision": m.instructions_per_decision, "elf_text": m.elf["text"]}
            notes.append(f"{m.instructions_per_step['median']:,} instructions per step on {m.target}, "
                         f"{m.instructions_per_decision['median']:,} per decision; engine + model "
                         f"{m.elf['text']:,} B flash, {m.state_bytes + m.stack_bytes:,} B RAM (state + stack); "
                         f"bit-exact with the numpy reference: {m.bit_exact}")
        steps = 2 * run.hop if lanes == 2 else run.hop
        out.append(Contender(
            key, label, ours=True, runtime="C engine", format="engine + model flash (M4 text)",
            # what a decision costs the host: a window from the zero state, or on one lane the hop steps since
            # the last decision (the step's cost depends on spikes, not on where the state started)
            decide=(lambda z: int(counts(z[None])[0].argmax())) if reset else
            (lambda z: int(counts(z[None, -run.hop:])[0].argmax())), predict=lambda zs: counts(zs).argmax(1),
            params=result["model"]["params"],
            model_bytes=library_file.stat().st_size if emulated is None else emulated["elf_text"],
            arena_bytes=None, macs=work["effective_macs_per_window"], acs=work["effective_acs_per_window"],
            dense_macs=0, workload=Workload(0, work["synops_per_window"] / WINDOW, 0, steps),
            epochs=result["training"]["epochs_run"], emulated=emulated,
            notes=[f"event-driven integer step ({stage['nonzero_weights']:,} nonzero weights), {steps} steps per "
                   "decision; host latency through ctypes, one call per decision", *notes]))
    return out


def contenders(result: dict, test_x: np.ndarray) -> list[Contender]:
    """Float, int8 on LiteRT and int8 on TFLM; the int8 rows' device figures come from the emulated MCU run on
    the fold's normalised test windows `test_x` (one run: same model, same firmware)."""
    run = open_run(result["run_dir"])
    step = step_ops(run.config["model"])
    emulated = _emulated(run, result, test_x)
    return [_float_contender(run, result, step), _int8_contender(run, result, step, "LiteRT", emulated),
            _int8_contender(run, result, step, "TFLM", emulated), *_native_contenders(run, result, step, test_x)]
