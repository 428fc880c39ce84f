"""The "integer" stage of `har train --compress int8`: quantise the run's (pruned) weights into the integer L2MU,
write the generated C model, and report float, integer-reference and C-engine results side by side."""

from __future__ import annotations

import time

import numpy as np
from rich.console import Console

from deploy.held_out import HeldOut
from deploy.integer.codegen import model_sources
from deploy.integer.model import BETA_BITS, INPUT_BITS, IntegerL2MU, quantize_input
from training.atomic import write_text
from training.errors import HarError
from training.run_dir import INTEGER_C_HEADER, INTEGER_C_SOURCE, INTEGER_WEIGHTS, PRUNED_WEIGHTS, WEIGHTS
from training.run_metrics import IntegerMetrics
from training.splits import SubjectSplit
from training.windowing import Windows

FINETUNE_EPOCHS = 3
FINETUNE_LR = 5e-4


def load_integer_model(run, weights_file: str) -> IntegerL2MU:
    from safetensors.numpy import load_file

    from deploy.integer.quantize import quantize_l2mu
    from training.config import L2MUConfig

    return quantize_l2mu(L2MUConfig.from_dict(run.config["model"]), load_file(str(run.path / weights_file)))


def integer_weights_file(run) -> str:
    """The weights the integer stage quantised (metrics.json stages.integer.weights), else the pruned weights,
    else the float weights."""
    fallback = PRUNED_WEIGHTS if (run.path / PRUNED_WEIGHTS).is_file() else WEIGHTS
    return run.metrics.get("stages", {}).get("integer", {}).get("weights", fallback)


def finetune_stage(run, weights_file: str, windows: Windows, split: SubjectSplit, epochs: int,
                   console: Console) -> dict:
    """Integer-aware fine-tuning of `weights_file` into INTEGER_WEIGHTS (deploy/integer/finetune.py)."""
    from deploy.integer.finetune import integer_finetune
    from training.checkpoint import load_model, save_weights

    model, cfg = load_model(run, weights_file), run.config["train"]
    train, val = windows.of_subjects(split.train), windows.of_subjects(split.val)
    with console.status(f"integer-aware fine-tuning ({epochs} epochs)"):
        history = integer_finetune(model, train, val, run.normalization, epochs, FINETUNE_LR, cfg["batch_size"],
                                   cfg["seed"], cfg.get("augment_deg", 0.0))
    save_weights(model, run.path / INTEGER_WEIGHTS)
    return {"epochs": len(history.epochs), "best_epoch": history.best_epoch,
            "best_val_accuracy": history.best_val_accuracy, "lr": FINETUNE_LR, "from": weights_file}


def integer_stage(run, weights_file: str, windows: Windows, split: SubjectSplit, held: HeldOut, console: Console,
                  finetune_epochs: int = FINETUNE_EPOCHS) -> IntegerMetrics:
    """Fine-tune (unless finetune_epochs is 0) on `windows`, quantise, and compare on the held-out decisions."""
    from deploy.compress import float_counts
    from deploy.held_out import runtime_spikes
    from deploy.integer.host import NativeLibrary, NativeStep, build_library
    from deploy.integer.reference import run_reference

    t0 = time.time()
    y_test = held.y
    before = float_counts(run, weights_file, held)
    finetune = None
    if finetune_epochs > 0:
        finetune = finetune_stage(run, weights_file, windows, split, finetune_epochs, console)
        weights_file = INTEGER_WEIGHTS
    floats = float_counts(run, weights_file, held) if finetune else before
    model = load_integer_model(run, weights_file)
    sources = model_sources(model)
    for name, text in sources.files().items():
        write_text(run.path / name, text)
    with console.status(f"integer L2MU: numpy reference and C engine on {held.decisions} {held.what}"):
        ref = held.counts_batched(lambda z: run_reference(model, quantize_input(z), record=True).spikes["out"])
        try:
            engine = held.counts_of(runtime_spikes(NativeStep(NativeLibrary(build_library(sources)))))
        except HarError as exc:
            console.print(f"[yellow]native engine not built: {exc}[/]")
            engine = None
    acc = lambda c: float(np.mean(c.argmax(1) == y_test))  # noqa: E731
    return IntegerMetrics(
        accuracy_float_before_finetune=acc(before),
        accuracy_float=acc(floats),
        accuracy_integer_reference=acc(ref),
        accuracy_engine=None if engine is None else acc(engine),
        agreement_integer_with_float=float(np.mean(ref.argmax(1) == floats.argmax(1))),
        agreement_integer_with_float_before_finetune=float(np.mean(ref.argmax(1) == before.argmax(1))),
        finetune=finetune,
        engine_bit_exact_counts=None if engine is None else bool(np.array_equal(engine, ref)),
        windows=held.decisions,
        weights=weights_file,
        nonzero_weights=model.nonzero_weights(),
        fraction_bits={p.name: p.frac_bits for p in model.populations},
        beta_bits=BETA_BITS, input_bits=INPUT_BITS,
        c_model=[INTEGER_C_HEADER, INTEGER_C_SOURCE],
        seconds=round(time.time() - t0, 1),
    )
