"""Model and training settings as a TOML file: what `har train --config FILE` reads and `har tune` writes.

    [model]                       L2MUConfig fields (n_classes and channels come from the data)
    [model.neuron_params]         POP = [beta, threshold], for any of the populations
    [train]                       epochs, batch_size, lr, patience, seed, augment_deg
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from training.atomic import write_text
from training.config import DEFAULT_NEURON_PARAMS, L2MUConfig
from training.errors import BadValue, HarError
from training.validate import TRAIN_OPTIONS, require

TRAIN_KEYS = ("epochs", "batch_size", "lr", "patience", "seed", "augment_deg")
TRAIN_RULES = {attr: rule for attr, _, rule in TRAIN_OPTIONS if attr in TRAIN_KEYS}
DATA_DEFINED = ("n_classes", "channels")


@dataclass(frozen=True)
class RunConfig:
    model: dict = field(default_factory=dict)  # L2MUConfig overrides; neuron_params {pop: (beta, threshold)}
    train: dict = field(default_factory=dict)


def check_model(model: dict, where: str) -> None:
    """Raise HarError naming `where` unless `model` is a valid set of L2MUConfig overrides."""
    bad = [k for k in DATA_DEFINED if k in model]
    if bad:
        raise HarError(f"{where}: {', '.join(bad)} come from the data, not from a config")
    params = {**DEFAULT_NEURON_PARAMS, **model.get("neuron_params", {})}
    try:
        L2MUConfig(n_classes=2, **{**model, "neuron_params": params})
    except (TypeError, ValueError) as exc:
        raise HarError(f"{where}: {exc}") from None


def check_train(train: dict, where: str) -> None:
    """Raise HarError naming `where` unless every [train] setting is known and passes `har train`'s own rule for
    it (training/validate.py TRAIN_OPTIONS: NaN and inf are never numbers)."""
    for key, value in train.items():
        if key not in TRAIN_RULES:
            raise HarError(f"{where}: unknown training setting {key!r} (known: {', '.join(TRAIN_RULES)})")
        try:
            require(value, TRAIN_RULES[key], key)
        except BadValue as exc:
            raise HarError(f"{where}: {exc}") from None


def load_run_config(path: Path) -> RunConfig:
    """Read and check a config TOML; one-line HarError (exit 2) on anything malformed."""
    try:
        doc = tomllib.loads(Path(path).read_text())
    except tomllib.TOMLDecodeError as exc:
        raise HarError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise HarError(f"{path}: not a text file") from None
    unknown = set(doc) - {"model", "train"}
    if unknown:
        raise HarError(f"{path}: unknown sections {', '.join(sorted(unknown))} (expected [model], [train])")
    model, train = dict(doc.get("model", {})), dict(doc.get("train", {}))
    if "neuron_params" in model:
        pops = model["neuron_params"]
        if not isinstance(pops, dict) or not all(isinstance(v, list) and len(v) == 2 for v in pops.values()):
            raise HarError(f"{path}: [model.neuron_params] entries must be POP = [beta, threshold]")
        unknown_pops = set(pops) - set(DEFAULT_NEURON_PARAMS)
        if unknown_pops:
            raise HarError(f"{path}: unknown populations {', '.join(sorted(unknown_pops))}")
        model["neuron_params"] = {pop: tuple(v) for pop, v in pops.items()}
    check_model(model, str(path))
    check_train(train, str(path))
    return RunConfig(model, train)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        return repr(round(v, 12))  # 0.35, not the 0.35000000000000003 of a stepped float
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string


def write_run_config(path: Path, cfg: RunConfig, comment: str) -> None:
    """Write `cfg` as a TOML that load_run_config reads back, after `comment` lines; atomically."""
    lines = [f"# {line}" for line in comment.splitlines()] + ["", "[model]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in cfg.model.items() if k != "neuron_params"]
    if cfg.model.get("neuron_params"):
        lines += ["", "[model.neuron_params]"]
        lines += [f"{pop} = {_toml_value(v)}" for pop, v in cfg.model["neuron_params"].items()]
    lines += ["", "[train]"] + [f"{k} = {_toml_value(v)}" for k, v in cfg.train.items()]
    write_text(path, "\n".join(lines) + "\n")


def apply_run_config(req, cfg: RunConfig, keep: set[str]):
    """`req` (a TrainRequest) with the settings of `cfg`, except those named in `keep` (given on the command
    line, which win over the file)."""
    import dataclasses

    model = {**req.model, **{k: v for k, v in cfg.model.items() if k not in keep}}
    return dataclasses.replace(req, model=model, **{k: v for k, v in cfg.train.items() if k not in keep})
