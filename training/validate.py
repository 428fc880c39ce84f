"""The one validation layer for values a user controls: CLI numbers, run directories (config.json,
normalization.json), device profiles and the paths har writes to.

A `Rule` is a type and a check with the words for what it requires; `require` applies one and raises `BadValue`
naming the field and the value (`--lr must be a positive number, got nan`). No numpy, torch or TensorFlow here:
`har devices` uses it and must start instantly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from training.errors import BadValue, HarError


@dataclass(frozen=True)
class Rule:
    kind: type  # int, float (finite), str, bool or list; bool is never accepted as a number
    check: Callable[[Any], bool]
    requirement: str  # completes "<field> must be ...", e.g. "a positive integer"


def is_kind(value: object, kind: type) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float)) and math.isfinite(value)
    return isinstance(value, kind)


def require(value: Any, rule: Rule, name: str) -> Any:
    """`value` if it has the rule's type and passes its check (ints as float for a float rule), else BadValue."""
    if not is_kind(value, rule.kind) or not rule.check(value):
        raise BadValue(f"{name} must be {rule.requirement}, got {value!r}")
    return float(value) if rule.kind is float else value


def one_of(choices: Iterable[str]) -> Rule:
    choices = tuple(choices)
    return Rule(str, lambda v: v in choices, f"one of {', '.join(choices)}")


def number_in(low: float, high: float, requirement: str, high_open: bool = False) -> Rule:
    return Rule(float, lambda v: low <= v < high if high_open else low <= v <= high, requirement)


POSITIVE_INT = Rule(int, lambda v: v > 0, "a positive integer")
NON_NEGATIVE_INT = Rule(int, lambda v: v >= 0, "a non-negative integer")
POSITIVE = Rule(float, lambda v: v > 0, "a positive number")
NON_NEGATIVE = Rule(float, lambda v: v >= 0, "a non-negative number")
NON_EMPTY_STR = Rule(str, bool, "a non-empty string")
SEED = Rule(int, lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)")  # numpy's seed range
CLASS_NAMES = Rule(list, lambda v: len(v) >= 2 and len(set(v)) == len(v) and all(isinstance(c, str) and c for c in v),
                   "a list of at least two distinct class names")
SUBJECTS = Rule(list, lambda v: bool(v) and all(isinstance(s, str) for s in v), "a non-empty list of subject ids")
CHANNEL_MEANS = Rule(list, lambda v: len(v) == 6 and all(is_kind(x, float) for x in v), "6 finite numbers")
CHANNEL_STDS = Rule(list, lambda v: len(v) == 6 and all(is_kind(x, float) and x > 0 for x in v),
                    "6 finite positive numbers")

# har train: (TrainRequest field, option, rule). The model sizes are L2MUConfig's own checks.
MODEL_RATE = number_in(1.0, 1000.0, "in [1, 1000] Hz")
TRAIN_OPTIONS: tuple[tuple[str, str, Rule], ...] = (
    ("fs_hz", "--rate", MODEL_RATE),
    ("window", "--window", POSITIVE_INT),
    ("hop", "--hop", POSITIVE_INT),
    ("cv", "--cv", Rule(int, lambda v: v == 0 or v >= 2, "0 (one held-out split) or K >= 2")),
    ("epochs", "--epochs", POSITIVE_INT),
    ("batch_size", "--batch-size", POSITIVE_INT),
    ("lr", "--lr", POSITIVE),
    ("patience", "--patience", POSITIVE_INT),
    ("seed", "--seed", SEED),
    ("augment_deg", "augment_deg", number_in(0.0, 180.0, "an angle in [0, 180] degrees")),
    ("sparsity", "--sparsity", number_in(0.0, 1.0, "in [0, 1)", high_open=True)),
    ("finetune_epochs", "--finetune-epochs", POSITIVE_INT),
    ("calibration_windows", "--calibration-windows", POSITIVE_INT),
    ("name", "--name", NON_EMPTY_STR),
)

# config.json of a run directory: (section, key, rule) for what downstream commands read; the model section is
# checked by building its L2MUConfig.
RUN_CONFIG: tuple[tuple[str, str, Rule], ...] = (
    ("data", "spec", NON_EMPTY_STR),
    ("data", "classes", CLASS_NAMES),
    ("data", "fs_hz", MODEL_RATE),
    ("data", "window", POSITIVE_INT),
    ("data", "hop", POSITIVE_INT),
    ("split", "test", SUBJECTS),
    ("train", "seed", SEED),
)


def check_options(obj: object, options: tuple[tuple[str, str, Rule], ...]) -> None:
    """Every (attribute, option name, rule) of `obj`, e.g. a TrainRequest against TRAIN_OPTIONS."""
    for attr, option, rule in options:
        require(getattr(obj, attr), rule, option)


def check_run_config(config: object, origin: str) -> dict:
    """A run's config.json: the fields downstream commands read, with their types and ranges."""
    from training.config import L2MUConfig

    if not isinstance(config, dict):
        raise BadValue(f"{origin}: must hold a JSON object, got {type(config).__name__}")
    for section, key, rule in RUN_CONFIG:
        body = config.get(section)
        if not isinstance(body, dict) or key not in body:
            raise BadValue(f"{origin}: missing field {section}.{key}")
        require(body[key], rule, f"{origin}: {section}.{key}")
    if not isinstance(config.get("model"), dict):
        raise BadValue(f"{origin}: missing field model")
    try:
        model = L2MUConfig.from_dict(config["model"])
    except (TypeError, ValueError) as exc:
        raise BadValue(f"{origin}: model: {exc}") from None
    if model.n_classes != len(config["data"]["classes"]):
        raise BadValue(f"{origin}: model.n_classes is {model.n_classes} but data.classes names "
                       f"{len(config['data']['classes'])} classes")
    return config


def check_normalization(doc: object, origin: str) -> tuple[list[float], list[float]]:
    """A run's normalization.json: (mean, std), 6 channels each, finite, std > 0."""
    if not isinstance(doc, dict) or "mean" not in doc or "std" not in doc:
        raise BadValue(f"{origin}: must be a JSON object with mean and std")
    return (require(doc["mean"], CHANNEL_MEANS, f"{origin}: mean"),
            require(doc["std"], CHANNEL_STDS, f"{origin}: std"))


def check_parent_folder(path: Path, option: str) -> None:
    """The nearest existing ancestor of `path` must be a folder (the missing ones are created on write)."""
    for ancestor in Path(path).absolute().parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise HarError(f"{option} {path}: {ancestor} is a file, not a folder")
            return


def check_folder(path: Path, option: str) -> None:
    """A folder har creates entries in (`--runs-dir`): absent (created on write) or an existing folder."""
    if Path(path).exists() and not Path(path).is_dir():
        raise HarError(f"{option} {path} is a file, not a folder")
    check_parent_folder(path, option)


def check_new_file(path: Path, option: str) -> None:
    """A file har creates (`--record`): absent or an empty regular file; never anything with data in it."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise HarError(f"{option} {path} exists and is not a regular file: give a new file name")
    if path.exists() and path.stat().st_size > 0:
        raise HarError(f"{option} {path} already exists and is not empty: give a new file name "
                       "(har never overwrites data)")
    check_parent_folder(path, option)
