"""`har train --compress prune|int8`: prune + fine-tune, convert the single step to fp32/int8 TFLite, verify
on LiteRT and TFLM in the same run, and write the artifacts into the run directory."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from deploy.held_out import HeldOut, held_out, runtime_spikes, torch_spikes
from training.atomic import atomic_path, write_bytes, write_text
from training.errors import ExitCode, HarError
from training.run_dir import (FP32_MODEL, INT8_C_ARRAY, INT8_C_HEADER, INT8_C_SOURCE, INT8_MODEL, PRUNED_WEIGHTS,
                              QUANTIZATION_REPORT, WEIGHTS, open_run)
from training.run_metrics import Int8Metrics, Int8Quantization, IntegerMetrics, PrunedMetrics
from training.splits import SubjectSplit
from training.windowing import Windows

CALIBRATION_WINDOWS = 128


def float_counts(run, weights_file: str, held: HeldOut) -> np.ndarray:
    """The float model's decision counts on the held-out decisions (deploy/held_out.py)."""
    from training.checkpoint import load_model

    return held.counts_batched(torch_spikes(load_model(run, weights_file)))


def _accuracy(counts: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(counts.argmax(1) == y))


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def prune_stage(run, windows: Windows, split: SubjectSplit, sparsity: float, epochs: int,
                console: Console) -> PrunedMetrics:
    from safetensors.numpy import load_file, save_file

    from deploy.prune import prune_and_finetune
    from training.checkpoint import load_model
    from training.config import L2MUConfig
    norm = run.normalization
    train, val, test = (windows.of_subjects(s) for s in (split.train, split.val, split.test))
    cfg = L2MUConfig.from_dict(run.config["model"])
    weights = load_file(str(run.path / WEIGHTS))
    t0 = time.time()
    with console.status("pruning and fine-tuning") as status:
        result = prune_and_finetune(cfg, weights, train.x, train.y, norm.apply(val.x), val.y, sparsity, norm.apply,
                                    run.config["train"]["augment_deg"], epochs, seed=run.config["train"]["seed"],
                                    on_epoch=lambda e: status.update(
                                        f"pruning and fine-tuning: epoch {e['epoch']}, val acc {e['val_accuracy']:.3f}"))
    for name, reached in result.sparsity.items():
        # below target means the schedule never fired (docs/toolchain.md); above it is fine: weights that never
        # received a gradient (e_m starts at zero) were already exactly zero. A matrix of n weights can only reach
        # multiples of 1/n, and the mask rounds the count down.
        if reached < sparsity - 1.0 / weights[f"{name}.weight"].size - 1e-9:
            raise HarError(f"pruning reached {reached:.3f} sparsity in {name}, below the target {sparsity}",
                           ExitCode.FAILURE)
    with atomic_path(run.path / PRUNED_WEIGHTS) as tmp:
        save_file(result.weights, str(tmp))
    metrics, _ = _evaluate(run, load_model(run, PRUNED_WEIGHTS), test, split)
    return PrunedMetrics(**vars(metrics), sparsity=result.overall, sparsity_per_layer=result.sparsity,
                         target_sparsity=sparsity, finetune_epochs=len(result.history),
                         seconds=round(time.time() - t0, 1))


def _evaluate(run, model, test: Windows, split: SubjectSplit):
    """The float metrics of a (pruned) model as `har train` reports them: on the test windows, or for a stream run
    at every hop of the test subjects' streams."""
    if not run.stream:
        from training.pipeline import evaluate

        return evaluate(model, Windows(run.normalization.apply(test.x), test.y, test.subjects), run.classes)
    from training.sources import load_dataset
    from training.streaming import build_streams, evaluate_stream

    data = run.config["data"]
    dataset = load_dataset(data["spec"], data.get("activities"), data.get("subjects"))
    streams = build_streams(dataset, run.fs_hz, split.test)
    return evaluate_stream(model, streams, run.normalization, run.classes, run.window, run.hop)


def int8_stage(run, weights_file: str, windows: Windows, split: SubjectSplit, held: HeldOut, console: Console,
               calibration_windows: int = CALIBRATION_WINDOWS) -> Int8Metrics:
    from safetensors.numpy import load_file

    from deploy.c_export import model_header, model_source
    from deploy.convert import convert_step
    from deploy.step_runtimes import LiteRTStep, TFLMStep
    from deploy.tf_twin import StepModule
    from deploy.tflite_model import inspect_step_model
    from deploy.tflm_arena_probe import measure_arena
    from deploy.tflm_ops import require_tflm_ops
    from training.config import L2MUConfig

    t0 = time.time()
    norm = run.normalization
    train = windows.of_subjects(split.train)
    rng = np.random.default_rng(run.config["train"]["seed"])
    pick = np.sort(rng.choice(len(train), min(calibration_windows, len(train)), replace=False))
    module = StepModule(L2MUConfig.from_dict(run.config["model"]), load_file(str(run.path / weights_file)))
    with console.status("converting the step graph to fp32 and int8 TFLite"):
        fp32 = convert_step(module)
        int8 = convert_step(module, norm.apply(train.x[pick]))
    info = inspect_step_model(int8)
    require_tflm_ops(info.ops)
    write_bytes(run.path / FP32_MODEL, fp32)
    write_bytes(run.path / INT8_MODEL, int8)
    with console.status(f"verifying on {held.decisions} {held.what}: float, LiteRT int8, TFLM int8; measuring the "
                        "arena"):
        floats = float_counts(run, weights_file, held)
        litert = held.counts_of(runtime_spikes(LiteRTStep(int8)))
        tflm = held.counts_of(runtime_spikes(TFLMStep(int8)))
        arena = measure_arena(int8)
    write_text(run.path / INT8_C_SOURCE, model_source(int8, INT8_C_ARRAY, INT8_C_HEADER))
    write_text(run.path / INT8_C_HEADER, model_header(INT8_C_ARRAY, run, info, arena))
    stage = Int8Metrics(
        accuracy_float=_accuracy(floats, held.y),
        accuracy_litert=_accuracy(litert, held.y),
        accuracy_tflm=_accuracy(tflm, held.y),
        agreement_with_float=_agreement(litert, floats),
        agreement_tflm_with_float=_agreement(tflm, floats),
        agreement_litert_tflm=_agreement(litert, tflm),
        windows=held.decisions,
        tflite_bytes=len(int8),
        gzip_bytes=len(gzip.compress(int8, 9)),
        fp32_tflite_bytes=len(fp32),
        tflm_arena_bytes=arena.min_arena_bytes,
        ops=list(info.ops),
        calibration_windows=len(pick),
        quantization=Int8Quantization(input_scale=info.input_quant.scale, input_zero_point=info.input_quant.zero_point,
                                      output_scale=info.output_quant.scale,
                                      output_zero_point=info.output_quant.zero_point),
        weights=weights_file,
        seconds=round(time.time() - t0, 1),
    )
    write_text(run.path / QUANTIZATION_REPORT, quantization_report(stage, held.what))
    return stage


def quantization_report(s: Int8Metrics, what: str) -> str:
    q = s.quantization
    return "\n".join([
        "# Quantisation report", "",
        "Full-integer int8 conversion of the single-step stateful L2MU graph (state in resource variables, "
        "float32 at rest, int8 arithmetic), builtin ops only.", "",
        f"- Weights: `{s.weights}`; calibration: {s.calibration_windows} training windows fed in time order, "
        "state zeroed at each window start.",
        f"- Input: int8, scale {q.input_scale:.6g}, zero point {q.input_zero_point}; output spikes: int8, "
        f"scale {q.output_scale:.6g}, zero point {q.output_zero_point}.",
        f"- Ops: {', '.join(s.ops)} (all TFLM builtins).",
        f"- Size: {s.tflite_bytes:,} B int8 ({s.gzip_bytes:,} B gzip), {s.fp32_tflite_bytes:,} B fp32; "
        f"TFLM arena {s.tflm_arena_bytes:,} B (smallest arena in which tflite_micro allocates, invokes, resets "
        "and invokes again).",
        "", f"| on {s.windows} {what} | accuracy | per-decision agreement with float |", "|---|---|---|",
        f"| float (torch, same weights) | {s.accuracy_float:.4f} | 1 |",
        f"| int8, LiteRT | {s.accuracy_litert:.4f} | {s.agreement_with_float:.4f} |",
        f"| int8, TFLM | {s.accuracy_tflm:.4f} | {s.agreement_tflm_with_float:.4f} |", "",
        f"LiteRT and TFLM agree on {s.agreement_litert_tflm:.4f} of decisions: their int8 FULLY_CONNECTED "
        "rounding differs by up to 1 LSB, and a 1-LSB membrane change can flip a spike.", "",
    ])


def compress_run(run_dir: Path, windows: Windows, split: SubjectSplit, req,
                 console: Console) -> dict[str, PrunedMetrics | Int8Metrics | IntegerMetrics]:
    """Run the compression `req` (a TrainRequest) asks for on a trained run; returns the stages to add to its
    metrics (training.run_metrics.Stages fields: pruned, int8, integer)."""
    run = open_run(run_dir)
    stages, weights_file = {}, WEIGHTS
    if req.compress in ("prune", "int8") and req.sparsity > 0:
        stages["pruned"] = prune_stage(run, windows, split, req.sparsity, req.finetune_epochs, console)
        weights_file = PRUNED_WEIGHTS
    if req.compress == "int8":
        held = held_out(run, windows, split)  # both stages score the same decisions
        stages["int8"] = int8_stage(run, weights_file, windows, split, held, console, req.calibration_windows)
        from deploy.integer.stage import integer_stage

        stages["integer"] = integer_stage(run, weights_file, windows, split, held, console)
    return stages
