"""``--set`` overrides: dotted keys checked against the protocol schema and the components'
parameters, and TOML literal values. Every unknown key is refused with the valid choices."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any
from typing import Protocol as Protocol_

from unlearnbench.config.sections import (
    PARAM_KINDS,
    TOP_LEVEL,
    DataSection,
    EvaluateSection,
    ForgetSpec,
    ModelSection,
    PoolsSection,
    PruneSection,
    UnlearnSection,
    UnpruneSection,
)
from unlearnbench.config.typed_config import field_names
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.training.recipe import TrainRecipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def parse_override_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``3``, ``0.1``, ``true``, ``[1, 2]``), else a string;
    a bracketed list of bare words (``[ft, ga]``) is a list of those values."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        inner = text.strip()
        if inner.startswith("[") and inner.endswith("]"):
            items = [item.strip() for item in inner[1:-1].split(",")]
            return [parse_override_value(item) for item in items if item]
        return text


class ComponentCatalog(Protocol_):
    """What ``--set`` checking needs from the registry: component names and their parameters."""

    def names(self, kind: str) -> list[str]: ...

    def param_names(self, kind: str, name: str) -> list[str]: ...


SECTION_FIELDS: dict[str, list[str]] = {
    "data": field_names(DataSection),
    "model": field_names(ModelSection),
    "prune": field_names(PruneSection),
    "unlearn": field_names(UnlearnSection),
    "unprune": [*field_names(UnpruneSection), "unpruner"],
    "evaluate": field_names(EvaluateSection),
    "pools": field_names(PoolsSection),
}


def _expect(what: str, value: str, valid: Sequence[str]) -> None:
    if value not in valid:
        raise UnknownChoiceError(what, value, valid)


def check_override_key(raw: Mapping[str, Any], key: str, catalog: ComponentCatalog | None) -> None:
    """Raise unless dotted ``key`` names a field a protocol (or a component's Params) has."""
    parts = key.split(".")
    _expect("--set section", parts[0], TOP_LEVEL)
    head, rest = parts[0], parts[1:]
    if head in ("name", "version"):
        raise InvalidValueError(
            f"--set key {key!r}: the protocol's {head} is fixed by its file (a changed protocol is a new "
            "version of the file, not a relabelled run); valid keys: data, model, train, recipes, forget, "
            "prune, unlearn, unprune, evaluate, seeds"
        )
    if head in ("description", "seeds"):
        if rest:
            raise InvalidValueError(f"--set key {key!r}: {head} has no sub-keys")
        return
    if not rest:
        raise InvalidValueError(f"--set key {key!r}: name a field, e.g. {head}.<field>")
    if head == "train":
        _expect("--set key under train", rest[0], ["recipe", *field_names(TrainRecipe)])
        if len(rest) > 1:
            raise InvalidValueError(
                f"--set key {key!r}: train.{rest[0]} takes a value, not sub-keys (set a recipe field as "
                "train.<field> or recipes.<recipe>.<field>; valid fields: "
                f"{', '.join(field_names(TrainRecipe))})"
            )
    elif head == "recipes":
        _expect("training recipe", rest[0], list(raw.get("recipes", {})))
        _expect(f"--set key under recipes.{rest[0]}", rest[-1], field_names(TrainRecipe))
    elif head == "forget":
        _expect("forget set", rest[0], [spec.get("name", "") for spec in raw.get("forget", [])])
        _expect(f"--set key under forget.{rest[0]}", rest[-1], field_names(ForgetSpec))
    elif head in PARAM_KINDS and rest[0] == "params" and len(rest) > 1 and catalog is not None:
        kind = PARAM_KINDS[head]
        if head in ("data", "model"):
            owner = raw.get(head, {}).get("dataset" if head == "data" else "name", "")
            _expect(f"parameter of {kind} {owner}", rest[1], catalog.param_names(kind, owner))
        else:
            _expect(kind, rest[1], catalog.names(kind))
            if len(rest) < 3:
                raise InvalidValueError(f"--set key {key!r}: name a parameter of {kind} {rest[1]}")
            _expect(f"parameter of {kind} {rest[1]}", rest[2], catalog.param_names(kind, rest[1]))
    else:
        _expect(f"--set key under {head}", rest[0], SECTION_FIELDS[head])
        if len(rest) > 1 and rest[0] != "params":
            raise InvalidValueError(f"--set key {key!r}: {head}.{rest[0]} takes a value, not sub-keys")


def apply_override(raw: dict[str, Any], key: str, value: Any, catalog: ComponentCatalog | None) -> None:
    """Set dotted ``key`` in ``raw`` (forget sets are addressed by name) after checking it."""
    check_override_key(raw, key, catalog)
    if key == "unprune.unpruner":  # the old single key selects one un-pruner
        key, value = "unprune.unpruners", [value] if isinstance(value, str) else value
        raw.get("unprune", {}).pop("unpruner", None)
    parts = key.split(".")
    if parts[0] == "forget":
        node = next(spec for spec in raw["forget"] if spec.get("name") == parts[1])
        parts = parts[2:]
    else:
        node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
