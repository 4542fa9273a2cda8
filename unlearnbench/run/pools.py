"""Model pools: what a pool is (:class:`PoolSpec`), what metrics read from it
(:class:`PoolOutputs`), and the per-model training a pool stage calls.

A pool is N models from one recipe: ``retrain`` (trained on the retain set from N seeds),
``unlearned`` (N originals trained from N seeds, each unlearned by the row's unlearner) and
``shadow`` (each trained on a random part of the training pool plus the test set, membership
recorded). Metrics declare ``"pool:<kind>"`` in ``Metric.needs`` and read
``EvalContext.pool(kind)``; :mod:`unlearnbench.run.pool_plan` places pools in the run graph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
from torch import nn

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.run.pool_plan import POOL_KINDS, POOL_PREFIX, pool_needs
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask

PoolKind = Literal["retrain", "unlearned", "shadow"]

__all__ = [
    "POOL_KINDS",
    "POOL_PREFIX",
    "PoolOutputs",
    "PoolSpec",
    "margins",
    "pool_needs",
    "pool_outputs",
    "shadow_membership",
    "train_member",
    "train_shadow_member",
]


@dataclass(frozen=True)
class PoolSpec:
    """One pool as the run graph builds it: ``size`` models of ``kind`` trained with the
    protocol recipe named ``recipe``, under the row's mask when ``masked``, from seeds
    ``seed_base .. seed_base + size - 1``; ``shadow_fraction`` of the candidates per shadow."""

    kind: PoolKind
    size: int
    recipe: str
    masked: bool = False
    seed_base: int = 1000
    shadow_fraction: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in POOL_KINDS:
            raise UnknownChoiceError("pool kind", self.kind, POOL_KINDS)
        if self.size < 1:
            raise InvalidValueError(f"pool size must be >= 1, got {self.size}")

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(self.seed_base + i for i in range(self.size))


def margins(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``z_y - logsumexp_{k != y} z_k`` of logits ``[..., n, K]`` (float64): LiRA's logit-scaled
    confidence ``log(p_y / (1 - p_y))`` and the datamodels margin KLOM uses."""
    z = logits.double()
    index = labels.to(z.device).expand(*z.shape[:-1])[..., None]
    own = z.gather(-1, index)[..., 0]
    others = z.scatter(-1, index, float("-inf"))
    return own - torch.logsumexp(others, dim=-1)


@dataclass(frozen=True)
class PoolOutputs:
    """Per-model, per-example outputs of a pool on named splits.

    ``margins[split]`` float64 ``[N, n]``; ``correct[split]`` bool ``[N, n]`` (top-1 right);
    ``membership[split]`` bool ``[N, n]``, whether model i trained on example j (shadow pools).
    """

    margins: Mapping[str, np.ndarray]
    correct: Mapping[str, np.ndarray]
    membership: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for split, values in self.margins.items():
            shape = values.shape
            for name, table in (("correct", self.correct), ("membership", self.membership)):
                if split in table and table[split].shape != shape:
                    raise ValueError(f"{name}[{split}] has shape {table[split].shape}, margins {shape}")

    @property
    def size(self) -> int:
        return len(next(iter(self.margins.values()))) if self.margins else 0

    def accuracy(self, split: str) -> float:
        """Top-1 accuracy in percent over every model and example of ``split``."""
        return 100.0 * float(self.correct[split].mean())

    def tensors(self) -> dict[str, torch.Tensor]:
        """The tables as tensors named ``<table>-<split>`` (what a ``pool`` node stores)."""
        tables = {"margins": self.margins, "correct": self.correct, "membership": self.membership}
        return {f"{t}-{s}": torch.from_numpy(np.asarray(a)) for t, v in tables.items() for s, a in v.items()}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor]) -> PoolOutputs:
        """The inverse of :meth:`tensors`."""
        tables: dict[str, dict[str, np.ndarray]] = {"margins": {}, "correct": {}, "membership": {}}
        for name, value in tensors.items():
            table, split = name.split("-", 1)
            tables[table][split] = value.numpy()
        return cls(tables["margins"], tables["correct"], tables["membership"])

    @classmethod
    def from_logits(
        cls,
        logits: Mapping[str, torch.Tensor],
        labels: Mapping[str, torch.Tensor],
        membership: Mapping[str, np.ndarray] | None = None,
    ) -> PoolOutputs:
        """From logits ``[N, n, K]`` per split and the split's labels ``[n]`` (an empty split gives
        ``[N, 0]`` arrays)."""
        found: dict[str, np.ndarray] = {}
        right: dict[str, np.ndarray] = {}
        for split, z in logits.items():
            if z.numel() == 0:
                found[split] = np.zeros((len(z), 0))
                right[split] = np.zeros((len(z), 0), dtype=bool)
            else:
                found[split] = margins(z, labels[split]).cpu().numpy()
                right[split] = (z.argmax(-1).cpu() == labels[split].cpu()).numpy()
        return cls(margins=found, correct=right, membership=dict(membership or {}))


# --------------------------------------------------------------------------------------------
# per-model training, for the graph's pool stages
# --------------------------------------------------------------------------------------------
def train_member(
    seed: int,
    data: ImageSplit,
    *,
    engine: Engine,
    recipe: TrainRecipe,
    new_model: Callable[[int], nn.Module],
    mask: Mask | None = None,
) -> nn.Module:
    """One model trained on ``data`` from ``seed`` (init and batch order) with ``recipe``, under
    ``mask`` when given: a retrain-pool member (``data`` = retain set) or an original for the
    unlearned pool (``data`` = training pool)."""
    model = engine.prepare(new_model(seed))
    engine.fit(model, data, recipe, seed=seed, mask=mask, description=f"pool model (seed {seed})")
    return model


def shadow_membership(n: int, size: int, seed: int, fraction: float = 0.5) -> np.ndarray:
    """Which of ``n`` candidates each of ``size`` shadow models trains on, bool ``[size, n]``.

    Every candidate is in exactly ``round(fraction * size)`` models (clamped to 1 .. size - 1), so
    each has both in and out models (the balanced scheme of Carlini et al. 2022's LiRA code)."""
    if size < 2:
        raise InvalidValueError(f"a shadow pool needs at least 2 models, got {size}")
    k = min(size - 1, max(1, round(fraction * size)))
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((size, n)), axis=0)
    return ranks < k


def train_shadow_member(
    index: int,
    membership: np.ndarray,
    candidates: ImageSplit,
    *,
    seed: int,
    engine: Engine,
    recipe: TrainRecipe,
    new_model: Callable[[int], nn.Module],
    mask: Mask | None = None,
) -> nn.Module:
    """Shadow model ``index``: trained from ``seed`` on the candidates (training pool then test
    set, in that order) that ``membership[index]`` marks."""
    chosen = torch.from_numpy(np.flatnonzero(membership[index])).to(candidates.labels.device)
    return train_member(
        seed, candidates.subset(chosen), engine=engine, recipe=recipe, new_model=new_model, mask=mask
    )


def pool_outputs(
    models: Sequence[nn.Module],
    splits: Mapping[str, ImageSplit],
    engine: Engine,
    membership: Mapping[str, np.ndarray] | None = None,
) -> PoolOutputs:
    """Every model's margins and correctness on ``splits`` (``membership`` rows follow ``models``)."""
    logits = {s: torch.stack([engine.logits(m, split) for m in models]) for s, split in splits.items()}
    labels = {s: split.labels.cpu() for s, split in splits.items()}
    return PoolOutputs.from_logits(logits, labels, membership)
