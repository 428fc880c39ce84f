"""One JSON form for the typed results that cross modules (docs/run-artifacts.md): a dataclass is a JSON object whose
keys are its field names, in field order; a nested dataclass is a nested object, a list or dict of them a list or
object of objects. `from_json` is the inverse of `to_json` and refuses unknown and missing keys."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from training.errors import BadValue

OMIT_IF_NONE = {"omit_if_none": True}  # field metadata: the key is left out of the JSON form when the value is None

T = TypeVar("T")


def to_json(value: Any) -> Any:
    """The JSON form of a dataclass (or of a list or dict of them); other values as they are."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)
                if not (getattr(value, f.name) is None and f.metadata.get("omit_if_none"))}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(cls: type[T], obj: Any, where: str = "") -> T:
    """The `cls` dataclass of a JSON form; `where` names the place in error messages."""
    return _convert(cls, obj, where or cls.__name__)


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]  # the JSON forms use `X | None` only
        return _convert(inner, value, where)
    if origin is list and args:
        if not isinstance(value, list):
            raise BadValue(f"{where} must be a list, got {type(value).__name__}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict and args:
        if not isinstance(value, dict):
            raise BadValue(f"{where} must be an object, got {type(value).__name__}")
        return {k: _convert(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, where)
    return value


def _dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise BadValue(f"{where} must be an object, got {type(value).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise BadValue(f"{where}: unknown keys {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, f in fields.items():
        if name in value:
            kwargs[name] = _convert(hints[name], value[name], f"{where}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise BadValue(f"{where}: missing key {name}")
    return cls(**kwargs)


class JsonForm:
    """Mixin for dataclasses: `to_json()` and `from_json()`."""

    def to_json(self) -> dict:
        return to_json(self)

    @classmethod
    def from_json(cls: type[T], obj: Any, where: str = "") -> T:
        return from_json(cls, obj, where)
