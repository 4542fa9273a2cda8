"""The run graph's types, free of torch: components as the planner sees them, rows, nodes, and
the graph (topological order, dependents)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from unlearnbench.config.typed_config import to_dict
from unlearnbench.run.sources import source_sha256

__all__ = ["ComponentInfo", "Graph", "Node", "PlanInputs", "Row", "RowPlan", "source_sha256"]


@dataclass(frozen=True)
class ComponentInfo:
    """What the planner knows of a configured component (read from its class, no torch)."""

    kind: str
    name: str
    version: int
    params: Mapping[str, Any]
    distribution: str | None = None
    dist_version: str | None = None
    needs: tuple[str, ...] = ()
    reference: str | None = None
    gap: bool = False
    structured: bool = False
    source: str | None = None
    """sha256 of the component's module and the project modules it imports (:func:`source_sha256`)."""

    def ident(self) -> dict[str, Any]:
        """What identifies the component in cache keys: name, version, params, source hash."""
        found = {"name": self.name, "version": self.version, "params": dict(self.params)}
        return found if self.source is None else {**found, "source": self.source}

    @property
    def label(self) -> str:
        """``dist==version:name@version`` (``-`` for an unknown distribution)."""
        dist = f"{self.distribution}=={self.dist_version}" if self.distribution else "-"
        return f"{dist}:{self.name}@{self.version}"

    @classmethod
    def of(cls, component: Any, distribution: tuple[str | None, str | None] = (None, None)) -> ComponentInfo:
        """The info of a configured component instance."""
        return cls(
            kind=component.kind,
            name=component.name,
            version=component.version,
            params=to_dict(component.params),
            distribution=distribution[0],
            dist_version=distribution[1],
            needs=tuple(getattr(component, "needs", ())),
            reference=getattr(component, "reference", None),
            gap=bool(getattr(component, "gap", False)),
            structured=bool(getattr(component, "structured", False)),
            source=source_sha256(type(component)),
        )


@dataclass(frozen=True)
class PlanInputs:
    """What planning needs from the loaded data: its identity and the forget sets' hashes/sizes."""

    data_id: Mapping[str, Any]
    forget_sha256: Mapping[str, str]
    forget_size: Mapping[str, int]
    components: Mapping[tuple[str, str], ComponentInfo]
    compute: Mapping[str, Any] = field(default_factory=dict)
    """The computation settings that change numbers (precision, CPU threads, deterministic
    mode): part of every node's key, so artifacts computed under other settings never mix."""
    externals: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Externally produced models by row label (``external:<name>``): ``sha256``, ``file``,
    ``factory`` (None: the protocol's model), ``factory_source`` and the ``forget`` sets, pruners,
    sparsities and seeds whose rows they join (see :mod:`unlearnbench.run.external`)."""
    original: Mapping[str, Any] | None = None
    """A pretrained original (``sha256``, ``file``, ``source``) replacing the trained one."""
    forget_selection: tuple[str, ...] = ()
    """The forget sets whose rows are planned (empty: all); selecting does not change the hash."""

    def component(self, kind: str, name: str) -> ComponentInfo:
        return self.components[(kind, name)]


@dataclass(frozen=True)
class Row:
    """One leaderboard row; ``unpruner`` names the un-pruner of an un-prune row (else None).
    ``seed`` is the train seed; ``unlearn_seed`` the unlearning repetition's seed (None: the train
    seed, repetition 0; see :mod:`unlearnbench.seeds`)."""

    seed: int
    pruner: str
    sparsity: float
    forget: str
    unlearner: str
    unprune: bool
    unpruner: str | None = None
    unlearn_seed: int | None = None

    @property
    def unlearning_seed(self) -> int:
        return self.seed if self.unlearn_seed is None else self.unlearn_seed


@dataclass(frozen=True)
class Node:
    """One stage output. ``parents`` are ``(role, key)`` pairs; the ``seed`` .. ``unpruner``
    fields say what the stage computes (None where they do not apply)."""

    stage: str
    component: str
    version: int
    params: Mapping[str, Any]
    key: str
    parents: tuple[tuple[str, str], ...]
    cost: int = 0
    seed: int | None = None
    pruner: str | None = None
    sparsity: float | None = None
    forget: str | None = None
    unlearner: str | None = None
    unpruner: str | None = None
    unlearn_seed: int | None = None
    """The seed of the unlearner's (un-pruner's) randomness on an unlearn/unprune node."""
    eval_seeds: tuple[int, ...] = ()
    """The evaluation seeds an evaluate node computes (its seeded metrics once per seed)."""
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __hash__(self) -> int:
        return hash(self.key)

    def parent(self, role: str) -> str | None:
        return next((key for r, key in self.parents if r == role), None)


@dataclass(frozen=True)
class RowPlan:
    """A row's evaluate node, the node of its evaluated model and the keys whose runtimes it
    reports; the row gives one record per evaluation seed in ``eval_seeds``."""

    row: Row
    evaluate: str
    model: str
    runtimes: tuple[tuple[str, str], ...]
    reference: str | None
    eval_seeds: tuple[int, ...] = (0,)
    external: Mapping[str, Any] | None = None
    """The external model a row evaluates (see :attr:`PlanInputs.externals`), else None."""


@dataclass(frozen=True)
class Graph:
    nodes: Mapping[str, Node]
    rows: tuple[RowPlan, ...]

    def order(self) -> list[Node]:
        """Every node after its parents, in the order of the rows (depth first)."""
        seen: dict[str, Node] = {}

        def visit(key: str) -> Iterator[Node]:
            if key in seen:
                return
            node = self.nodes[key]
            for _, parent in node.parents:
                yield from visit(parent)
            seen[key] = node
            yield node

        return [n for plan in self.rows for n in visit(plan.evaluate)]

    def ancestors(self, key: str) -> set[str]:
        """``key`` and every node upstream of it."""
        found, todo = {key}, [key]
        while todo:
            for _, parent in self.nodes[todo.pop()].parents:
                if parent not in found:
                    found.add(parent)
                    todo.append(parent)
        return found

    def dependents(self, key: str) -> set[str]:
        """Every node downstream of ``key``."""
        children: dict[str, set[str]] = {}
        for node in self.nodes.values():
            for _, parent in node.parents:
                children.setdefault(parent, set()).add(node.key)
        found: set[str] = set()
        todo = [key]
        while todo:
            for child in children.get(todo.pop(), ()):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found
