"""The one deployment contract of a run, built once from its run directory and written into every bundle as
`har-contract.json`. Its values are defined here and nowhere else: the spike threshold, the lane count, the resampler,
and (from the run) window, hop, rate, normalisation, classes and (from its int8 model) the quantisation. The C header,
the Kotlin config and the Pi runner's settings are generated from it (docs/deployment-contract.md).
"""

from __future__ import annotations

from pathlib import Path

from deploy import stream_resampler
from deploy.har_contract import (
    DECISION_RULE,
    MANIFEST,
    RESAMPLER_METHOD,
    RESET_RULE,
    STREAM_RESET_RULE,
    Channel,
    ContractError,
    DeploymentContract,
    Quantization,
    Resampler,
    load_contract,
)
from deploy.tflite_model import StepModelInfo, inspect_step_model
from training.atomic import write_text
from training.errors import ExitCode, HarError
from training.recordings import CHANNELS, UNITS
from training.run_dir import INT8_MODEL, Run

# The network's output is a Heaviside spike, exactly 0 or 1 in float; int8 dequantises it to about 0 or 1, so the
# midpoint tells them apart (docs/deployment-contract.md, "spike rule").
SPIKE_THRESHOLD = 0.5
FLOAT_IO = Quantization("float32", 0.0, 0)  # the float torch model: no quantisation

RESAMPLER = Resampler(RESAMPLER_METHOD, stream_resampler.KERNEL_PERIODS, stream_resampler.KAISER_BETA,
                      stream_resampler.HOLE_PERIODS, stream_resampler.MAX_GAP_S)

__all__ = ["MANIFEST", "SPIKE_THRESHOLD", "build_contract", "read_bundle_contract", "require_bundle_can_run",
           "write_contract"]


def _quant(q) -> Quantization:
    return Quantization(q.dtype, float(q.scale), int(q.zero_point))


def build_contract(run: Run, model: bytes | None = None, info: StepModelInfo | None = None) -> DeploymentContract:
    """The contract of a run and its step model (default: the run's model_int8.tflite; without one, float I/O)."""
    if info is None:
        path = run.path / INT8_MODEL
        if model is None and path.is_file():
            model = path.read_bytes()
        info = inspect_step_model(model) if model is not None else None
    if info is not None and info.input_shape[-1] != len(CHANNELS):
        raise HarError(f"the step model takes {info.input_shape[-1]} channels; the contract has {len(CHANNELS)}",
                       ExitCode.FAILURE)
    if info is not None and info.output_shape[-1] != len(run.classes):
        raise HarError(f"the step model has {info.output_shape[-1]} outputs; the run has {len(run.classes)} classes",
                       ExitCode.FAILURE)
    return DeploymentContract(
        run=run.path.name,
        channels=tuple(Channel(c, u) for c, u in zip(CHANNELS, UNITS)),
        model_rate_hz=float(run.fs_hz),
        resampler=RESAMPLER,
        mean=tuple(float(v) for v in run.normalization.mean),
        std=tuple(float(v) for v in run.normalization.std),
        window=run.window,
        hop=run.hop,
        lanes=run.lanes,
        input_quantization=_quant(info.input_quant) if info else FLOAT_IO,
        output_quantization=_quant(info.output_quant) if info else FLOAT_IO,
        spike_threshold=SPIKE_THRESHOLD,
        decision_rule=DECISION_RULE,
        reset_rule=STREAM_RESET_RULE if run.stream else RESET_RULE,
        classes=tuple(run.classes),
    )


# the reset rules every bundle template runs (Linux runner, Kotlin classifier, TFLM firmware; the native engine too)
BUNDLE_RESET_RULES = (RESET_RULE, STREAM_RESET_RULE)


def require_bundle_can_run(contract: DeploymentContract, bundle: str) -> None:
    """The bundle templates run both of the contract's reset rules; a contract with any other rule is refused."""
    if contract.reset_rule not in BUNDLE_RESET_RULES:
        raise HarError(f"{bundle} bundles run the reset rules {', '.join(map(repr, BUNDLE_RESET_RULES))}, but run "
                       f"{contract.run} needs {contract.reset_rule!r}", ExitCode.DOMAIN)


def write_contract(folder: Path, contract: DeploymentContract) -> str:
    """Write the manifest into a bundle folder; returns its file name."""
    write_text(Path(folder) / MANIFEST, contract.to_json())
    return MANIFEST


def read_bundle_contract(folder: Path) -> DeploymentContract:
    """The validated manifest of a bundle; HarError (exit 2) with one line naming the field if it is not valid."""
    try:
        return load_contract(Path(folder) / MANIFEST)
    except ContractError as exc:
        raise HarError(str(exc), ExitCode.USAGE) from None
