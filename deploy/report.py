"""report.json of a `har deploy` bundle (TFLM, Linux and Android bundles), typed: the device, the model, the
arena, the fit, parity, latency and energy, each estimate with its basis. One JSON form (training/json_form.py),
every field with its unit in docs/run-artifacts.md; `har deploy --json` prints the same object."""

from __future__ import annotations

from dataclasses import dataclass, field

from deploy.firmware.verify import FirmwareMeasurement
from deploy.tflite_model import Quant
from training.json_form import OMIT_IF_NONE, JsonForm


@dataclass(frozen=True, kw_only=True)
class DeviceSummary(JsonForm):
    name: str
    title: str
    core: str
    clock_mhz: float
    runtime: str  # tflm or litert
    bundle: str  # mcu, linux or android
    profile: str  # the profile TOML it was read from


@dataclass(frozen=True, kw_only=True)
class BundleModel(JsonForm):
    tflite_bytes: int
    ops: list[str]
    operators_per_step: int  # operators run per invocation of the step subgraph
    input_quantization: Quant
    output_quantization: Quant
    state_variables: int
    state_bytes: int
    params: int
    int8_macs_per_step: int  # dense, from the weight matrices' shapes
    elementwise_per_step: int


@dataclass(frozen=True, kw_only=True)
class ArenaSummary(JsonForm):
    min_arena_bytes: int  # the arena one lane needs, measured as `measured_with` says
    recorded_bytes: int | None  # TFLM's RecordingMicroAllocator total at that size
    arena_bytes: int  # what the bundle reserves per lane: minimum + margin
    margin: str
    measured_with: str


@dataclass(frozen=True, kw_only=True)
class FitCheck(JsonForm):
    """deploy/fit.py check_fit: RAM and flash needed against the profile's."""

    flash_bytes: int
    flash_available: int
    ram_bytes: int
    ram_available: int
    fits: bool
    model_bytes: int
    code_bytes: int
    basis: str
    arena_bytes: int  # per lane
    lanes: int
    state_bytes: int
    stack_bytes: int


@dataclass(frozen=True, kw_only=True)
class ParityCheck(JsonForm):
    """deploy/parity.py compare_tflm_litert: TFLM and LiteRT step by step on held-out windows (MCU bundles)."""

    windows: int
    steps: int
    decision_agreement: float  # fractions of the windows or steps
    window_counts_exact: float
    step_outputs_exact: float
    step_spikes_exact: float
    max_output_diff_lsb: int
    max_margin_where_decisions_differ: int | None  # spikes; None when every decision agrees
    arena_bytes: int


@dataclass(frozen=True, kw_only=True)
class Latency(JsonForm):
    """Microseconds; an estimate from op counts or measured instructions, or measured on the board."""

    per_sample: float  # one step (one model invocation)
    per_decision: float  # one decision: a window of steps
    estimate: bool
    basis: str
    p99_per_sample: float | None = field(default=None, metadata=OMIT_IF_NONE)  # measured only
    p99_per_decision: float | None = field(default=None, metadata=OMIT_IF_NONE)
    max_per_decision: float | None = field(default=None, metadata=OMIT_IF_NONE)  # from measured instructions
    vs_last_measurement: dict | None = field(default=None, metadata=OMIT_IF_NONE)  # MCU op-count estimate only


@dataclass(frozen=True, kw_only=True)
class Estimate(JsonForm):
    """An energy in microjoules, always an estimate; None when the run lacks what it is computed from."""

    value: float | None
    estimate: bool
    basis: str
    caveat: str | None = field(default=None, metadata=OMIT_IF_NONE)


@dataclass(frozen=True, kw_only=True)
class DeployReport(JsonForm):
    bundle: str  # the bundle folder
    files: list[str]  # every entry of the bundle, report.json included
    device: DeviceSummary
    run: str  # the run directory
    model: BundleModel
    arena: ArenaSummary
    measured: FirmwareMeasurement | None  # `--verify` (docs/firmware.md)
    fit: FitCheck
    parity: ParityCheck | None  # MCU bundles
    benchmark: dict | None  # the bundle runner's --benchmark JSON, where it ran (Linux bundles on host or --host)
    latency_us: Latency
    energy_uj_per_decision: Estimate
    snn_synop_energy_uj_per_window: Estimate

