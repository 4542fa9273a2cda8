"""Protocols: declarative, versioned TOML files that fix a benchmark's data, model, training
recipe, forget sets, sparsities, method budgets and seeds.

The protocol hash is the sha256 of the canonical JSON of the file's content after ``--set``
overrides, minus the *selection* fields (which pruners, sparsities, unlearners, metrics,
un-prune modes and seeds a run covers): two runs that select different methods from one protocol
share its hash, and results with different hashes are never put in one table.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from typing import Protocol as Protocol_

from unlearnbench.config.typed_config import build, field_names
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.hashing import sha256_json
from unlearnbench.training.engine import TrainRecipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SELECTION_FIELDS = (
    ("prune", "pruners"),
    ("prune", "sparsities"),
    ("unlearn", "unlearners"),
    ("unprune", "modes"),
    ("evaluate", "metrics"),
    ("seeds",),
)
PARAM_KINDS = {
    "data": "dataset",
    "model": "model",
    "prune": "pruner",
    "unlearn": "unlearner",
    "unprune": "unpruner",
    "evaluate": "metric",
}


@dataclass(frozen=True)
class DataSection:
    """Which dataset, its plugin parameters, the validation hold-out and the smoke-run limit.

    ``holdout_fraction`` of every class of the training split is held out as validation data
    (the reference holds out 10%); the rest is the training pool the original model sees and the
    forget set is drawn from. ``limit`` keeps at most that many examples per split (0: all).
    """

    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    holdout_fraction: float = 0.0
    split_seed: int = 0
    limit: int = 0


@dataclass(frozen=True)
class ModelSection:
    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ForgetSpec:
    """A forget set drawn from the training pool.

    ``random``: ``count`` examples, or ``fraction`` of the pool; ``class``: every example of
    ``classes``; ``per-class``: ``count`` or ``fraction`` of each class in ``classes``.
    """

    name: str
    kind: Literal["random", "class", "per-class"]
    fraction: float = 0.0
    count: int = 0
    classes: tuple[int, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class PruneSection:
    pruners: tuple[str, ...] = ("omp",)
    sparsities: tuple[float, ...] = (0.95,)
    scope: str = "conv"
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnlearnSection:
    unlearners: tuple[str, ...] = ("retrain", "ft", "ga")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnpruneSection:
    unpruner: str = "reprune"
    modes: tuple[bool, ...] = (False, True)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class EvaluateSection:
    metrics: tuple[str, ...] = ("ua", "mia-efficacy", "ra", "ta", "rte")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PoolsSection:
    """Model pools for the population metrics (eps-score, u-lira, klom).

    ``size`` models per retrain / unlearned pool and ``shadow_size`` shadow models (0: ``size``),
    seeded ``seed_base``, ``seed_base + 1``, ...; each shadow model trains on a random
    ``shadow_fraction`` of the training pool plus the test set. ``recipe`` names an entry of
    ``[recipes]`` (empty: the protocol's training recipe).
    """

    size: int = 8
    shadow_size: int = 0
    seed_base: int = 1000
    shadow_fraction: float = 0.5
    recipe: str = ""

    def __post_init__(self) -> None:
        if self.size < 2 or self.shadow_size < 0 or self.shadow_size == 1:
            raise InvalidValueError(
                f"pools.size must be >= 2 and pools.shadow_size 0 or >= 2,"
                f" got {self.size}, {self.shadow_size}"
            )
        if not 0.0 < self.shadow_fraction < 1.0:
            raise InvalidValueError(f"pools.shadow_fraction must be in (0, 1), got {self.shadow_fraction}")


@dataclass(frozen=True)
class TrainSection:
    """``recipe`` names an entry of the protocol's ``[recipes]``; other keys override its fields."""

    recipe: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)


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
    pools: PoolsSection = PoolsSection()
    pool_recipe: TrainRecipe | None = None
    """The recipe pool models train with (None: ``recipe``)."""

    @property
    def hash(self) -> str:
        return protocol_hash(self.raw)

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


TOP_LEVEL = (
    "name",
    "version",
    "description",
    "data",
    "model",
    "train",
    "recipes",
    "forget",
    "prune",
    "unlearn",
    "unprune",
    "evaluate",
    "pools",
    "seeds",
)


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


def read_protocol_file(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidValueError(f"cannot read protocol file {path}: {exc}") from exc


def parse_override_value(text: str) -> Any:
    """A ``--set`` value as a TOML literal (``3``, ``0.1``, ``true``, ``[1, 2]``), else a string."""
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
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
    "unprune": field_names(UnpruneSection),
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
    if head in ("name", "version", "description", "seeds"):
        if rest:
            raise InvalidValueError(f"--set key {key!r}: {head} has no sub-keys")
        return
    if not rest:
        raise InvalidValueError(f"--set key {key!r}: name a field, e.g. {head}.<field>")
    if head == "train":
        _expect("--set key under train", rest[0], ["recipe", *field_names(TrainRecipe)])
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


def apply_override(raw: dict[str, Any], key: str, value: Any, catalog: ComponentCatalog | None) -> None:
    """Set dotted ``key`` in ``raw`` (forget sets are addressed by name) after checking it."""
    check_override_key(raw, key, catalog)
    parts = key.split(".")
    if parts[0] == "forget":
        node = next(spec for spec in raw["forget"] if spec.get("name") == parts[1])
        parts = parts[2:]
    else:
        node = raw
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def resolve(raw: Mapping[str, Any], source: str) -> Protocol:
    """Check ``raw`` against the protocol schema and build the :class:`Protocol`."""
    raw = copy.deepcopy(dict(raw))
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
    forget_list = raw.get("forget", [])
    forget = tuple(build(ForgetSpec, spec, f"forget[{i}]") for i, spec in enumerate(forget_list))
    if not forget:
        raise InvalidValueError(f"protocol {source}: needs at least one [[forget]] set")
    names = [spec.name for spec in forget]
    if len(set(names)) != len(names):
        raise InvalidValueError(f"protocol {source}: forget set names repeat: {names}")
    version = raw["version"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidValueError(f"version: expected int, got {version!r}")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise InvalidValueError(f"seeds: expected a non-empty list of integers, got {seeds!r}")
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
    raw = read_protocol_file(path)
    for key, value in overrides:
        apply_override(raw, key, value, catalog)
    return resolve(raw, str(path))
