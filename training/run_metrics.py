"""metrics.json of a run directory, typed: what `har train` reports (data, model, training, the float stage,
cross-validation) and the stages `har train --compress` adds (deploy/compress.py, deploy/integer/stage.py).
One JSON form (training/json_form.py), every field with its unit in docs/run-artifacts.md; `har train --json`
prints the same object."""

from __future__ import annotations

from dataclasses import dataclass, field

from training.json_form import OMIT_IF_NONE, JsonForm
from training.metrics import HeldOutMetrics


@dataclass(frozen=True, kw_only=True)
class DatasetSummary(JsonForm):
    name: str
    classes: list[str]
    fs_hz: float  # the model rate every source was resampled to
    window: int  # samples
    hop: int  # samples
    test_subjects: list[str]
    skipped_lines: int  # malformed source lines skipped while loading


@dataclass(frozen=True, kw_only=True)
class ModelSummary(JsonForm):
    neuron: str  # leaky or synaptic
    params: int  # trainable parameters


@dataclass(frozen=True, kw_only=True)
class TrainingSummary(JsonForm):
    epochs_run: int
    best_epoch: int  # 1-based; the kept checkpoint
    best_val_accuracy: float
    interrupted: bool  # Ctrl-C stopped training (the best checkpoint is kept)
    early_stopped: bool


@dataclass(frozen=True, kw_only=True)
class FoldResult(JsonForm):
    test_subjects: list[str]
    accuracy: float
    macro_f1: float
    best_epoch: int
    interrupted: bool


@dataclass(frozen=True, kw_only=True)
class CrossValidation(JsonForm):
    k: int
    folds_run: int  # fewer than k when interrupted
    accuracy_mean: float
    accuracy_std: float  # population standard deviation over the folds run
    macro_f1_mean: float
    macro_f1_std: float
    folds: list[FoldResult]


@dataclass(frozen=True, kw_only=True)
class PrunedMetrics(HeldOutMetrics):
    """The pruned and fine-tuned model on the test windows, and how sparse it is."""

    sparsity: float  # fraction of zero weights over the pruned matrices
    sparsity_per_layer: dict[str, float]
    target_sparsity: float
    finetune_epochs: int
    seconds: float


@dataclass(frozen=True, kw_only=True)
class Int8Quantization(JsonForm):
    input_scale: float  # x = scale (q - zero_point)
    input_zero_point: int
    output_scale: float
    output_zero_point: int


@dataclass(frozen=True, kw_only=True)
class Int8Metrics(JsonForm):
    """The full-integer int8 step model on the test windows: float, LiteRT and TFLM side by side."""

    accuracy_float: float  # torch, the weights the step was converted from
    accuracy_litert: float
    accuracy_tflm: float
    agreement_with_float: float  # fraction of windows where LiteRT int8 and float decide alike
    agreement_tflm_with_float: float
    agreement_litert_tflm: float
    windows: int
    tflite_bytes: int
    gzip_bytes: int
    fp32_tflite_bytes: int
    tflm_arena_bytes: int  # smallest arena in which tflite_micro allocates, invokes, resets and invokes again
    ops: list[str]
    calibration_windows: int
    quantization: Int8Quantization
    weights: str  # the run-directory file converted
    seconds: float


@dataclass(frozen=True, kw_only=True)
class IntegerMetrics(JsonForm):
    """The integer L2MU (docs/integer-engine.md): float, numpy integer reference and C engine side by side."""

    accuracy_float_before_finetune: float
    accuracy_float: float
    accuracy_integer_reference: float
    accuracy_engine: float | None  # None: the C engine could not be built here
    agreement_integer_with_float: float
    agreement_integer_with_float_before_finetune: float
    finetune: dict | None  # {epochs, best_epoch, best_val_accuracy, lr, from}; None: not fine-tuned
    engine_bit_exact_counts: bool | None
    windows: int
    weights: str  # the run-directory file quantised
    nonzero_weights: int
    fraction_bits: dict[str, int]  # per population
    beta_bits: int
    input_bits: int
    c_model: list[str]  # the generated C files in the run directory
    seconds: float


@dataclass(kw_only=True)
class Stages(JsonForm):
    float: HeldOutMetrics
    pruned: PrunedMetrics | None = field(default=None, metadata=OMIT_IF_NONE)
    int8: Int8Metrics | None = field(default=None, metadata=OMIT_IF_NONE)
    integer: IntegerMetrics | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(kw_only=True)
class RunMetrics(JsonForm):
    run_dir: str
    dataset: DatasetSummary
    model: ModelSummary
    training: TrainingSummary
    stages: Stages
    cv: CrossValidation | None = field(default=None, metadata=OMIT_IF_NONE)  # --cv K
