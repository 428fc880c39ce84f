"""The deployment contract's schema and rules, portable: what the manifest `har-contract.json` holds, how it is read
and checked, and the rules every runtime applies (spike, decision). deploy/contract.py builds the contract from a run
directory; the Linux bundle carries this file verbatim (as `har_contract.py`) so its runner reads the manifest with
the same code and without `har` installed. It must import nothing but the standard library and numpy.

Schema (version 1) and the meaning of every field: docs/deployment-contract.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SCHEMA = "har-contract"
SCHEMA_VERSION = 1
MANIFEST = "har-contract.json"
DECISION_RULE = "argmax-spike-count"  # class = argmax_c n_c (lowest index on ties); confidence = max_c n_c / sum_c n_c
RESET_RULE = "zero-state-per-window"  # window k starts at sample k * hop on lane k mod L from the zero state
# a stream run (`har train --stream`): one lane, zero state only at a stream start, a gap or a reconnect; the decision
# every hop is over the output spikes of the last `window` steps
STREAM_RESET_RULE = "zero-state-per-stream"
RESAMPLER_METHOD = "kaiser-sinc"  # deploy/stream_resampler.py


class ContractError(ValueError):
    """A manifest that does not follow the schema; the message is one line naming the field."""


@dataclass(frozen=True)
class Channel:
    name: str
    unit: str


@dataclass(frozen=True)
class Resampler:
    method: str
    half_width_periods: int  # kernel half-width in periods of the slower rate
    kaiser_beta: float
    hole_periods: float  # input intervals longer than this many periods are bridged linearly
    max_gap_s: float  # a hole longer than this ends the segment: every lane resets


@dataclass(frozen=True)
class Quantization:
    dtype: str  # int8, or float32 for a float model (scale 0)
    scale: float  # x = scale (q - zero_point)
    zero_point: int


@dataclass(frozen=True)
class DeploymentContract:
    """Everything a runtime needs to behave as training does."""

    run: str  # the run directory's name
    channels: tuple[Channel, ...]  # input order and SI units
    model_rate_hz: float
    resampler: Resampler
    mean: tuple[float, ...]  # z = (x - mean) / std per channel
    std: tuple[float, ...]
    window: int  # samples per decision, from the zero state
    hop: int  # samples between decisions
    lanes: int  # L = ceil(window / hop) windows in flight, one state copy each
    input_quantization: Quantization  # q = round(z / scale) + zero_point, clamped to int8
    output_quantization: Quantization
    spike_threshold: float  # an output is a spike when scale (q - zero_point) > spike_threshold
    decision_rule: str
    reset_rule: str
    classes: tuple[str, ...]  # output order

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, "run": d["run"], "channels": d["channels"],
                "model_rate_hz": d["model_rate_hz"], "resampler": d["resampler"],
                "normalization": {"mean": d["mean"], "std": d["std"]}, "window": d["window"], "hop": d["hop"],
                "lanes": d["lanes"], "input_quantization": d["input_quantization"],
                "output_quantization": d["output_quantization"], "spike_rule": {"threshold": d["spike_threshold"]},
                "decision_rule": d["decision_rule"], "reset_rule": d["reset_rule"], "classes": d["classes"]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """z = (x - mean) / std of one raw SI sample (k,), float32."""
        return ((np.asarray(x, np.float32) - np.array(self.mean, np.float32)) / np.array(self.std, np.float32))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """One raw SI sample (k,) -> the model's input (k,)."""
        return quantize_input(self.normalize(x), self.input_quantization)

    def spikes(self, raw: np.ndarray) -> np.ndarray:
        """Output spikes (0/1) of one step from the model's raw output (C,)."""
        return output_spikes(raw, self.output_quantization, self.spike_threshold)


def quantize_input(z: np.ndarray, q: Quantization) -> np.ndarray:
    """A normalised sample z -> the model's input: q = round(z / s) + z0 (half to even), clamped to int8."""
    if q.dtype == "float32":
        return np.asarray(z, np.float32)
    return np.clip(np.round(np.asarray(z, np.float32) / q.scale + q.zero_point), -128, 127).astype(np.int8)


def output_spikes(raw: np.ndarray, q: Quantization, threshold: float) -> np.ndarray:
    """Output spikes (0/1, float32) from the model's raw output: spike when s (q - z0) > threshold."""
    v = np.asarray(raw).astype(np.float32)
    if q.dtype != "float32":
        v = (v - q.zero_point) * q.scale  # x = s (q - z0)
    return (v > threshold).astype(np.float32)


def decide(counts: np.ndarray) -> tuple[int, float]:
    """class = argmax_c n_c (lowest index on ties); confidence = max_c n_c / sum_c n_c, 0 with no spikes."""
    total = float(np.sum(counts))
    best = int(np.argmax(counts))
    return best, float(counts[best]) / total if total > 0 else 0.0


def _field(d: dict, name: str, kind, where: str = ""):
    path = f"{where}{name}"
    if not isinstance(d, dict) or name not in d:
        raise ContractError(f"missing field {path!r}")
    v = d[name]
    ok = {int: lambda: isinstance(v, int) and not isinstance(v, bool),
          float: lambda: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
          str: lambda: isinstance(v, str) and v != "",
          list: lambda: isinstance(v, list) and len(v) > 0,
          dict: lambda: isinstance(v, dict)}[kind]()
    if not ok:
        raise ContractError(f"field {path!r} must be a {'non-empty ' if kind in (str, list) else ''}"
                            f"{kind.__name__}, got {json.dumps(v)[:60]}")
    return float(v) if kind is float else v


def _require(ok: bool, name: str, why: str) -> None:
    if not ok:
        raise ContractError(f"field {name!r} {why}")


def _quantization(d: dict, name: str) -> Quantization:
    q = _field(d, name, dict)
    dtype = _field(q, "dtype", str, f"{name}.")
    _require(dtype in ("int8", "float32"), f"{name}.dtype", f"must be int8 or float32, got {dtype!r}")
    scale, zero = _field(q, "scale", float, f"{name}."), _field(q, "zero_point", int, f"{name}.")
    _require(dtype == "float32" or scale > 0, f"{name}.scale", "must be > 0 for int8")
    _require(-128 <= zero <= 127, f"{name}.zero_point", "must be in -128..127")
    return Quantization(dtype, scale, zero)


def contract_from_dict(d: dict) -> DeploymentContract:
    """The contract of a parsed manifest; a ContractError naming the first field that breaks the schema."""
    if not isinstance(d, dict):
        raise ContractError("the manifest must be a JSON object")
    _require(d.get("schema") == SCHEMA, "schema", f"must be {SCHEMA!r}, got {d.get('schema')!r}")
    version = _field(d, "version", int)
    _require(version == SCHEMA_VERSION, "version", f"is {version}; this reader understands version {SCHEMA_VERSION}")
    channels = tuple(Channel(_field(c, "name", str, f"channels[{i}]."), _field(c, "unit", str, f"channels[{i}]."))
                     for i, c in enumerate(_field(d, "channels", list)))
    r = _field(d, "resampler", dict)
    resampler = Resampler(_field(r, "method", str, "resampler."), _field(r, "half_width_periods", int, "resampler."),
                          _field(r, "kaiser_beta", float, "resampler."), _field(r, "hole_periods", float, "resampler."),
                          _field(r, "max_gap_s", float, "resampler."))
    _require(resampler.method == RESAMPLER_METHOD, "resampler.method", f"must be {RESAMPLER_METHOD!r}")
    norm = _field(d, "normalization", dict)
    mean = tuple(float(v) for v in _field(norm, "mean", list, "normalization."))
    std = tuple(float(v) for v in _field(norm, "std", list, "normalization."))
    _require(len(mean) == len(channels), "normalization.mean", f"must have one value per channel ({len(channels)})")
    _require(len(std) == len(channels) and all(v > 0 for v in std), "normalization.std",
             f"must have one positive value per channel ({len(channels)})")
    rate = _field(d, "model_rate_hz", float)
    _require(rate > 0, "model_rate_hz", "must be > 0")
    window, hop, lanes = _field(d, "window", int), _field(d, "hop", int), _field(d, "lanes", int)
    _require(window > 0, "window", "must be > 0")
    _require(hop > 0, "hop", "must be > 0")
    spike = _field(d, "spike_rule", dict)
    decision, reset = _field(d, "decision_rule", str), _field(d, "reset_rule", str)
    _require(decision == DECISION_RULE, "decision_rule", f"must be {DECISION_RULE!r}, got {decision!r}")
    _require(reset in (RESET_RULE, STREAM_RESET_RULE), "reset_rule",
             f"must be {RESET_RULE!r} or {STREAM_RESET_RULE!r}, got {reset!r}")
    want = 1 if reset == STREAM_RESET_RULE else -(-window // hop)
    _require(lanes == want, "lanes", f"must be {want} ({'one stream' if want == 1 else 'ceil(window / hop)'}), "
                                     f"got {lanes}")
    classes = tuple(_field(d, "classes", list))
    _require(all(isinstance(c, str) and c for c in classes), "classes", "must be non-empty strings")
    return DeploymentContract(_field(d, "run", str), channels, rate, resampler, mean, std, window, hop, lanes,
                              _quantization(d, "input_quantization"), _quantization(d, "output_quantization"),
                              _field(spike, "threshold", float, "spike_rule."), decision, reset, classes)


def load_contract(path: Path) -> DeploymentContract:
    """Read and validate a manifest; ContractError (one line, naming the file and the field) if it is not valid."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ContractError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError as exc:
        raise ContractError(f"{path}: not JSON ({exc})") from None
    try:
        return contract_from_dict(d)
    except ContractError as exc:
        raise ContractError(f"{path}: {exc}") from None
