"""Protocol files outside any plugin, and protocol inheritance (``extends``).

A protocol file may start from another protocol: ``extends = "NAME"`` (a registered protocol) or
``extends = "path.toml"`` (relative to the file that says it). The child's content is merged onto
the parent's: tables merge key by key, recursively; every other value (a string, a number, an
array, an array of tables such as ``[[forget]]``) replaces the parent's. ``extends`` itself is
not part of the result, so the protocol hash is over the resolved content only: a file that
extends ``digits-quickstart`` and changes nothing has ``digits-quickstart``'s hash.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from unlearnbench.errors import InvalidValueError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

EXTENDS = "extends"


@runtime_checkable
class ProtocolIndex(Protocol):
    """What resolving ``extends = "NAME"`` needs from the registry: its protocols by name."""

    def protocol_names(self) -> list[str]: ...

    def protocol_path(self, name: str) -> Path: ...


def looks_like_path(value: str) -> bool:
    """Whether a protocol argument is meant as a file: it ends in ``.toml`` or has a folder."""
    return value.endswith(".toml") or "/" in value or "\\" in value


def locate_protocol(index: ProtocolIndex, value: str) -> Path:
    """The file of protocol ``value``: a registered name, else a path to a protocol file.

    A registered name wins over a file of the same name unless ``value`` looks like a path.
    """
    if not looks_like_path(value) and value in index.protocol_names():
        return index.protocol_path(value)
    path = Path(value)
    if path.is_file():
        return path
    if looks_like_path(value):
        where = "is not a file" if path.exists() else "does not exist"
        raise InvalidValueError(f"protocol file {value} {where}")
    names = ", ".join(index.protocol_names()) or "(none)"
    raise InvalidValueError(
        f"unknown protocol {value!r}: not a registered protocol ({names}) nor a protocol file (PATH.toml)"
    )


def deep_merge(base: Mapping[str, Any], child: Mapping[str, Any]) -> dict[str, Any]:
    """``child`` merged onto ``base``: tables merge recursively, any other value replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in child.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_toml(path: Path) -> dict[str, Any]:
    """One protocol file as parsed TOML, or one clear error."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise InvalidValueError(f"protocol file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidValueError(f"protocol file {path} is a directory") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidValueError(f"cannot read protocol file {path}: {exc}") from exc


def _parent_path(value: Any, path: Path, index: ProtocolIndex | None) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InvalidValueError(
            f"protocol file {path}: extends must be a protocol name or a path to a .toml file, got {value!r}"
        )
    if not looks_like_path(value) and index is not None and value in index.protocol_names():
        return index.protocol_path(value)
    candidate = path.parent / value
    if candidate.is_file():
        return candidate
    if looks_like_path(value):
        raise InvalidValueError(f"protocol file {path}: extends {value!r}, but {candidate} does not exist")
    if index is None:
        raise InvalidValueError(
            f"protocol file {path}: extends {value!r}, a protocol name, but no registry was given"
        )
    names = ", ".join(index.protocol_names()) or "(none)"
    raise InvalidValueError(
        f"protocol file {path}: extends unknown protocol {value!r}; valid choices: {names} "
        "(or a path to a .toml file, relative to this one)"
    )


def resolve_file(path: Path, index: ProtocolIndex | None = None) -> dict[str, Any]:
    """The content of protocol file ``path`` with its ``extends`` chain merged in (no ``extends``
    key left); ``index`` looks up ``extends = "NAME"``. A cycle is one clear error."""
    chain: list[Path] = []
    layers: list[dict[str, Any]] = []
    current: Path | None = Path(path)
    while current is not None:
        resolved = current.resolve()
        if resolved in chain:
            shown = " -> ".join(str(p) for p in [*chain, resolved])
            raise InvalidValueError(f"protocol file {path}: extends cycle {shown}")
        chain.append(resolved)
        raw = read_toml(current)
        parent = raw.pop(EXTENDS, None)
        layers.append(raw)
        current = None if parent is None else _parent_path(parent, current, index)
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        merged = deep_merge(merged, layer)
    return merged
