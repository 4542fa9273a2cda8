"""Protocols: declarative, versioned TOML files that fix a benchmark's data, model, training
recipe, forget sets, sparsities, method budgets and seeds.

The protocol hash is the sha256 of the canonical JSON of the file's content (its ``extends``
chain merged in, :mod:`unlearnbench.config.protocol_files`) after ``--set`` overrides, minus the
*selection* fields (which pruners, sparsities, unlearners, metrics, un-prune modes and seeds a
run covers): two runs that select different methods from one protocol
share its hash, and results with different hashes are never put in one table.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unlearnbench.config.overrides import ComponentCatalog, apply_override, parse_override_value
from unlearnbench.config.protocol_files import ProtocolIndex, resolve_file
from unlearnbench.config.sections import (
    PARAM_KINDS,
    SELECTION_FIELDS,
    TOP_LEVEL,
    DataSection,
    EvaluateSection,
    ForgetSpec,
    ModelSection,
    PoolsSection,
    PruneSection,
    TrainSection,
    UnlearnSection,
    UnpruneSection,
)
from unlearnbench.config.typed_config import build
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.hashing import sha256_json
from unlearnbench.paths import safe_name
from unlearnbench.training.recipe import TrainRecipe


@dataclass(frozen=True)
class Protocol:
    """A resolved protocol; ``raw`` is the content it was built from (after overrides)."""

    name: str
    version: int
    description: str
    data: DataSection
    model: ModelSection
    recipe_name: str
    recipe: TrainRecipe
    forget: tuple[ForgetSpec, ...]
    prune: PruneSection
    unlearn: UnlearnSection
    unprune: UnpruneSection
    evaluate: EvaluateSection
    seeds: tuple[int, ...]
    raw: Mapping[str, Any]
    source: str
    pools: PoolsSection = field(default_factory=PoolsSection)
    pool_recipe: TrainRecipe | None = None
    """The recipe pool models train with (None: ``recipe``)."""

    @property
    def hash(self) -> str:
        return protocol_hash(self.raw)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


def protocol_hash(raw: Mapping[str, Any]) -> str:
    """sha256 of the protocol content without its selection fields (emptied sections dropped)."""
    core = copy.deepcopy(dict(raw))
    for path in SELECTION_FIELDS:
        parent: Any = core
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
            if len(path) > 1 and not parent:
                core.pop(path[0], None)
    return sha256_json(core)


def _migrate_unpruner(raw: dict[str, Any], source: str) -> None:
    """Read the old single ``unprune.unpruner`` key as ``unprune.unpruners = [it]`` (in place)."""
    section = raw.get("unprune")
    if not isinstance(section, dict) or "unpruner" not in section:
        return
    if "unpruners" in section:
        raise InvalidValueError(
            f"protocol {source}: set unprune.unpruners (a list) or the old unprune.unpruner, not both"
        )
    old = section.pop("unpruner")
    section["unpruners"] = [old] if isinstance(old, str) else old


def read_protocol_file(path: Path, protocols: ProtocolIndex | None = None) -> dict[str, Any]:
    """A protocol file's content with its ``extends`` chain merged in (see :mod:`.protocol_files`);
    ``protocols`` looks up ``extends = "NAME"``."""
    return resolve_file(path, protocols)


def resolve(raw: Mapping[str, Any], source: str) -> Protocol:
    """Check ``raw`` against the protocol schema and build the :class:`Protocol`."""
    raw = copy.deepcopy(dict(raw))
    _migrate_unpruner(raw, source)
    for key in raw:
        if key not in TOP_LEVEL:
            raise UnknownChoiceError("top-level protocol key", key, TOP_LEVEL)
    for required in ("name", "version", "data", "model"):
        if required not in raw:
            raise InvalidValueError(f"protocol {source}: missing required key {required!r}")
    train = dict(raw.get("train", {}))
    recipe_name = train.pop("recipe", "default")
    recipes = raw.get("recipes", {})
    if recipe_name not in recipes:
        raise UnknownChoiceError("training recipe (train.recipe)", recipe_name, recipes)
    recipe = build(TrainRecipe, {**recipes[recipe_name], **train}, f"recipes.{recipe_name}+train")
    if recipe.epochs < 1:
        raise InvalidValueError(
            f"train.epochs must be >= 1 (the original model is trained), got {recipe.epochs}"
        )
    forget_list = raw.get("forget", [])
    forget = tuple(build(ForgetSpec, spec, f"forget[{i}]") for i, spec in enumerate(forget_list))
    if not forget:
        raise InvalidValueError(f"protocol {source}: needs at least one [[forget]] set")
    names = [safe_name("forget set name", spec.name) for spec in forget]
    safe_name("protocol name", raw["name"])
    if len(set(names)) != len(names):
        raise InvalidValueError(f"protocol {source}: forget set names repeat: {names}")
    version = raw["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidValueError(f"version: expected int, got {version!r}")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise InvalidValueError(f"seeds: expected a non-empty list of integers >= 0, got {seeds!r}")
    for path in SELECTION_FIELDS:
        section = raw.get(path[0], {}) if len(path) > 1 else raw
        chosen = section.get(path[-1], []) if isinstance(section, dict) else []
        twice = sorted({str(c) for c in chosen if chosen.count(c) > 1}) if isinstance(chosen, list) else []
        if twice:
            raise InvalidValueError(f"{'.'.join(path)} selects {', '.join(twice)} more than once")
    pools = build(PoolsSection, raw.get("pools", {}), "pools")
    pool_recipe = None
    if pools.recipe:
        if pools.recipe not in recipes:
            raise UnknownChoiceError("training recipe (pools.recipe)", pools.recipe, recipes)
        pool_recipe = build(TrainRecipe, recipes[pools.recipe], f"recipes.{pools.recipe}")
    return Protocol(
        name=str(raw["name"]),
        version=version,
        description=str(raw.get("description", "")),
        data=build(DataSection, raw["data"], "data"),
        model=build(ModelSection, raw["model"], "model"),
        recipe_name=recipe_name,
        recipe=recipe,
        forget=forget,
        prune=build(PruneSection, raw.get("prune", {}), "prune"),
        unlearn=build(UnlearnSection, raw.get("unlearn", {}), "unlearn"),
        unprune=build(UnpruneSection, raw.get("unprune", {}), "unprune"),
        evaluate=build(EvaluateSection, raw.get("evaluate", {}), "evaluate"),
        seeds=tuple(seeds),
        raw=raw,
        source=source,
        pools=pools,
        pool_recipe=pool_recipe,
    )


def load_protocol(
    path: Path,
    overrides: Sequence[tuple[str, Any]] = (),
    catalog: ComponentCatalog | None = None,
) -> Protocol:
    """Read a protocol file, apply ``(dotted key, value)`` overrides and resolve it."""
    raw = read_protocol_file(path, catalog if isinstance(catalog, ProtocolIndex) else None)
    for key, value in overrides:
        apply_override(raw, key, value, catalog)
    return resolve(raw, str(path))


__all__ = [
    "PARAM_KINDS",
    "SELECTION_FIELDS",
    "TOP_LEVEL",
    "DataSection",
    "EvaluateSection",
    "ForgetSpec",
    "ModelSection",
    "PoolsSection",
    "Protocol",
    "PruneSection",
    "TrainSection",
    "UnlearnSection",
    "UnpruneSection",
    "apply_override",
    "load_protocol",
    "parse_override_value",
    "protocol_hash",
    "read_protocol_file",
    "resolve",
]
