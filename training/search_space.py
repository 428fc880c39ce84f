"""The `har tune` search space: read from TOML (default training/configs/search_space.toml), checked, and turned
into Optuna suggestions. The file format is described at the top of that file and in docs/tuning.md."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from training.config import DEFAULT_NEURON_PARAMS, POPULATIONS
from training.errors import HarError
from training.run_config import RunConfig, check_model, check_train

DEFAULT_SPACE = Path(__file__).parent / "configs" / "search_space.toml"
UNTUNED = Path(__file__).parent / "configs" / "untuned.toml"  # `har train`'s configuration before any search
TRAIN_PARAMS = ("lr", "batch_size", "augment_deg")
MODEL_PARAMS = ("neuron", "pop_per_channel", "encoder_size", "encoder_out", "memory_size", "order", "theta",
                "hidden_size", "alpha", "current_noise", "learn_neuron_params")
NEURON_PARAMS = tuple(f"{kind}.{pop}" for pop in POPULATIONS for kind in ("beta", "threshold"))
KNOWN = TRAIN_PARAMS + MODEL_PARAMS + NEURON_PARAMS


@dataclass(frozen=True)
class Param:
    """One setting: fixed (value), a range (low, high, step, log; integers when `integer`) or choices."""

    name: str
    value: object = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple | None = None

    @property
    def searched(self) -> bool:
        return self.low is not None or self.choices is not None

    def corners(self) -> list:
        """The values that bound this setting: every choice, both range ends, or the fixed value."""
        if self.choices is not None:
            return list(self.choices)
        return [self.low, self.high] if self.low is not None else [self.value]

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "name" and v is not None and v is not False}

    def contains(self, value) -> bool:
        """Whether a trial of this setting can take `value`."""
        if self.choices is not None:
            return value in self.choices
        if self.low is None:
            return value == self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        return self.step is None or math.isclose((value - self.low) / self.step, round((value - self.low) / self.step),
                                                 abs_tol=1e-9)


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]
    source: str

    def to_dict(self) -> dict:
        return {p.name: p.to_dict() for p in self.params}  # JSON-safe: stored in the study

    def suggest(self, trial) -> RunConfig:
        """The trial's configuration: Optuna samples every searched setting; fixed ones are copied."""
        values = {}
        for p in self.params:
            if p.choices is not None:
                values[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.low is None:
                values[p.name] = p.value
            elif p.integer:
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        return config_of(values)

    def searched_values(self, cfg: RunConfig) -> dict | None:
        """The searched settings of `cfg` as trial parameters, or None if `cfg` lies outside this space."""
        flat = {**cfg.train, **{k: v for k, v in cfg.model.items() if k != "neuron_params"}}
        for pop, (beta, threshold) in {**DEFAULT_NEURON_PARAMS, **cfg.model.get("neuron_params", {})}.items():
            flat[f"beta.{pop}"], flat[f"threshold.{pop}"] = beta, threshold
        if not all(p.name in flat and p.contains(flat[p.name]) for p in self.params):
            return None
        return {p.name: flat[p.name] for p in self.params if p.searched}

    def config_of_params(self, sampled: dict) -> RunConfig:
        """The configuration of a finished trial from its sampled values (fixed settings filled in)."""
        return config_of({p.name: sampled.get(p.name, p.value) for p in self.params})


def config_of(values: dict) -> RunConfig:
    """Split flat setting names into L2MUConfig overrides and training settings."""
    model = {k: v for k, v in values.items() if k in MODEL_PARAMS}
    train = {k: v for k, v in values.items() if k in TRAIN_PARAMS}
    pops = {k: v for k, v in values.items() if k in NEURON_PARAMS}
    if pops:
        params = {pop: list(DEFAULT_NEURON_PARAMS[pop]) for pop in POPULATIONS}
        for key, v in pops.items():
            kind, pop = key.split(".")
            params[pop][0 if kind == "beta" else 1] = v
        model["neuron_params"] = {pop: tuple(v) for pop, v in params.items()}
    return RunConfig(model, train)


def _param(name: str, spec, where: str) -> Param:
    if not isinstance(spec, dict):
        return Param(name, value=spec)
    keys = set(spec)
    if "choices" in spec:
        if keys != {"choices"}:
            raise HarError(f"{where}: {name}: choices cannot be combined with {', '.join(sorted(keys - {'choices'}))}")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise HarError(f"{where}: {name}: choices must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise HarError(f"{where}: {name}: choices repeat a value")
        return Param(name, choices=tuple(choices))
    if not {"low", "high"} <= keys or keys - {"low", "high", "step", "log"}:
        raise HarError(f"{where}: {name}: a range is {{ low = A, high = B }} with optional step or log, "
                       f"got keys {', '.join(sorted(keys)) or 'none'}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in (low, high) + (() if step is None else (step,))):
        raise HarError(f"{where}: {name}: low, high and step must be finite numbers")
    if low > high:
        raise HarError(f"{where}: {name}: low {low} is above high {high}")
    if step is not None and (step <= 0 or log):
        raise HarError(f"{where}: {name}: step must be positive and cannot be combined with log")
    if log and low <= 0:
        raise HarError(f"{where}: {name}: a log range needs low > 0, got {low}")
    integer = all(isinstance(v, int) for v in (low, high) + (() if step is None else (step,)))
    return Param(name, low=low, high=high, step=step, log=bool(log), integer=integer)


def check_space(params: tuple[Param, ...], where: str) -> None:
    """Every bound of every setting must give a valid model and training configuration."""
    if not any(p.searched for p in params):
        raise HarError(f"{where}: the search space is empty (no range or choice under [space])")
    fixed = {p.name: p.corners()[0] for p in params}
    for p in params:
        for value in p.corners():
            cfg = config_of({**fixed, p.name: value})
            check_model(cfg.model, f"{where}: {p.name} = {value!r}")
            check_train(cfg.train, f"{where}: {p.name} = {value!r}")


def load_space(path: Path | None = None) -> SearchSpace:
    """The search space of `path` (default: the shipped one), checked; HarError (exit 2) if malformed."""
    path = Path(path) if path is not None else DEFAULT_SPACE
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HarError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise HarError(f"{path}: not a text file") from None
    if set(doc) - {"space"}:
        raise HarError(f"{path}: unknown sections {', '.join(sorted(set(doc) - {'space'}))} (expected [space])")
    table = doc.get("space", {})
    unknown = sorted(set(table) - set(KNOWN))
    if unknown:
        raise HarError(f"{path}: unknown settings {', '.join(unknown)} (known: {', '.join(KNOWN)})")
    params = tuple(_param(name, spec, str(path)) for name, spec in table.items())
    check_space(params, str(path))
    return SearchSpace(params, str(path))
