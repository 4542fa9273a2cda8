"""Build frozen dataclasses from plain dicts (TOML tables), checking keys and types.

Every error names the dotted path of the bad value, what was expected and the valid keys.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from unlearnbench.errors import InvalidValueError, UnknownChoiceError

T = TypeVar("T")


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def build(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """Instantiate dataclass ``cls`` from ``data``; ``where`` is the dotted path for errors."""
    if not isinstance(data, Mapping):
        raise InvalidValueError(f"{where}: expected a table, got {data!r}")
    hints = get_type_hints(cls)
    known = field_names(cls)
    for key in data:
        if key not in known:
            raise UnknownChoiceError(f"key in {where}" if where else "key", key, known)
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in data:
            path = f"{where}.{field.name}" if where else field.name
            values[field.name] = coerce(data[field.name], hints[field.name], path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise InvalidValueError(f"{where}: missing required key {field.name!r}")
    return cls(**values)


def to_dict(instance: object) -> dict[str, Any]:
    """A dataclass instance as plain JSON-ready values (tuples become lists)."""
    return _plain(dataclasses.asdict(instance))  # type: ignore[call-overload]


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against type ``tp`` (int -> float widening allowed) and convert lists."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(tp):
            if option is type(None):
                if value is None:
                    return None
                continue
            try:
                return coerce(value, option, where)
            except InvalidValueError as exc:
                errors.append(str(exc))
        raise InvalidValueError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise UnknownChoiceError(f"value for {where}", value, [str(c) for c in choices])
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise InvalidValueError(f"{where}: expected a list, got {value!r}")
        args = get_args(tp)
        item = args[0] if args else Any
        items = [coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin in (dict, Mapping, typing.Mapping):
        if not isinstance(value, Mapping):
            raise InvalidValueError(f"{where}: expected a table, got {value!r}")
        _, value_tp = get_args(tp) or (str, Any)
        return {k: coerce(v, value_tp, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, where)  # type: ignore[arg-type]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise InvalidValueError(f"{where}: expected {_type_name(tp)}, got {value!r}")
