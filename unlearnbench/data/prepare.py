"""The training pool and validation hold-out, and smoke-run limits."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.errors import InvalidValueError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedData:
    """``pool`` is what the original model trains on; ``val`` is held out; ``test`` is untouched."""

    dataset: DatasetSplits
    pool: ImageSplit
    val: ImageSplit
    test: ImageSplit


def limit_split(split: ImageSplit, limit: int, seed: int) -> ImageSplit:
    """At most ``limit`` examples, a seeded random subset kept in original order (0: all)."""
    if limit <= 0 or len(split) <= limit:
        return split
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(split), generator=generator)[:limit].sort().values
    return split.subset(chosen.to(split.labels.device))


def holdout(split: ImageSplit, fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit]:
    """Hold out ``fraction`` of every class (as the reference's 10% validation split)."""
    if not 0.0 <= fraction < 1.0:
        raise InvalidValueError(f"data.holdout_fraction {fraction!r} is outside [0, 1)")
    labels = split.labels.cpu()
    generator = torch.Generator().manual_seed(seed)
    held = []
    for cls in labels.unique().tolist():
        members = torch.nonzero(labels == cls).flatten()
        n = round(len(members) * fraction)
        held.append(members[torch.randperm(len(members), generator=generator)[:n]])
    mask = torch.zeros(len(labels), dtype=torch.bool)
    if held:
        mask[torch.cat(held)] = True
    device = split.labels.device
    return (
        split.subset(torch.nonzero(~mask).flatten().to(device)),
        split.subset(torch.nonzero(mask).flatten().to(device)),
    )


def prepare(dataset: DatasetSplits, holdout_fraction: float, split_seed: int, limit: int) -> PreparedData:
    train = limit_split(dataset.train, limit, split_seed)
    test = limit_split(dataset.test, limit, split_seed + 1)
    pool, val = holdout(train, holdout_fraction, split_seed)
    missing = sorted(set(train.labels.unique().tolist()) - set(test.labels.unique().tolist()))
    if missing:
        names = [dataset.classes[c] if 0 <= c < len(dataset.classes) else str(c) for c in missing]
        log.warning(
            "the test split of data copy %s has no example of %d training class(es): %s; test "
            "metrics (TA) average over the %d classes it has",
            dataset.copy,
            len(missing),
            ", ".join(f"{c} ({n})" for c, n in zip(missing, names, strict=True)),
            len(set(test.labels.unique().tolist())),
        )
    return PreparedData(dataset, pool, val, test)
