"""The sections of a protocol file, as frozen dataclasses, and the names of its keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from unlearnbench.errors import InvalidValueError

SELECTION_FIELDS = (
    ("prune", "pruners"),
    ("prune", "sparsities"),
    ("unlearn", "unlearners"),
    ("unprune", "unpruners"),
    ("unprune", "unpruner"),
    ("unprune", "modes"),
    ("evaluate", "metrics"),
    ("seeds",),
    ("unlearn", "repeats"),
    ("evaluate", "repeats"),
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
    ``eval_split`` is the split test metrics read: ``test``, or ``val`` (the hold-out; what
    ``unlearnbench tune`` uses so that tuning never sees the test set).
    """

    dataset: str
    params: dict[str, Any] = field(default_factory=dict)
    holdout_fraction: float = 0.0
    split_seed: int = 0
    limit: int = 0
    eval_split: Literal["test", "val"] = "test"

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_fraction < 1.0:
            raise InvalidValueError(f"data.holdout_fraction {self.holdout_fraction!r} is outside [0, 1)")
        if self.limit < 0:
            raise InvalidValueError(f"data.limit {self.limit!r} must be >= 0 (0: no limit)")
        if self.split_seed < 0:
            raise InvalidValueError(f"data.split_seed {self.split_seed!r} must be >= 0")


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
    """``repeats`` (J): unlearning repetitions per train seed, each with its own unlearning seed
    (:func:`unlearnbench.seeds.unlearn_seed`) on the same original; reference rows (``retrain``)
    have one."""

    unlearners: tuple[str, ...] = ("retrain", "ft", "ga")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.repeats, bool) or self.repeats < 1:
            raise InvalidValueError(f"unlearn.repeats must be an integer >= 1, got {self.repeats!r}")


@dataclass(frozen=True)
class UnpruneSection:
    """``unpruners`` selects the un-pruners; each gives its own un-prune rows (the old single
    ``unpruner`` key is read as a one-element ``unpruners``). ``skip`` names unlearners that get
    no un-prune rows (e.g. ``retrain``: re-pruning its D_r-trained dense weights repeats the gold
    topology's computation)."""

    unpruners: tuple[str, ...] = ("reprune",)
    modes: tuple[bool, ...] = (False, True)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    skip: tuple[str, ...] = ()


@dataclass(frozen=True)
class EvaluateSection:
    """``repeats`` (K): evaluation repetitions per model, with evaluation seeds 0 .. K-1 (the
    seeded metrics, e.g. MIA's shadow draw, run once per seed; the others once per model)."""

    metrics: tuple[str, ...] = ("ua", "mia-efficacy", "ra", "ta", "rte")
    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    repeats: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.repeats, bool) or self.repeats < 1:
            raise InvalidValueError(f"evaluate.repeats must be an integer >= 1, got {self.repeats!r}")


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
                "pools.size must be >= 2 and pools.shadow_size 0 or >= 2, "
                f"got {self.size}, {self.shadow_size}"
            )
        if not 0.0 < self.shadow_fraction < 1.0:
            raise InvalidValueError(f"pools.shadow_fraction must be in (0, 1), got {self.shadow_fraction}")
        if self.seed_base < 0:
            raise InvalidValueError(f"pools.seed_base must be >= 0, got {self.seed_base}")


@dataclass(frozen=True)
class TrainSection:
    """``recipe`` names an entry of the protocol's ``[recipes]``; other keys override its fields."""

    recipe: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)


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
