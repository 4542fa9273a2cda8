"""Representation-level metrics of the UUEF evaluation ("Are We Truly Forgetting? A Critical
Re-examination of Machine Unlearning Evaluation Protocols", Kim, Cha and Kim, 2025): linear CKA
of penultimate features to the original and to retrain, and a k-NN forget accuracy on frozen
penultimate features. Features come from :mod:`unlearnbench_metrics.features`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from unlearnbench.api import EvalContext, ImageSplit, InvalidValueError, Metric, MetricValue
from unlearnbench_metrics.features import penultimate_features
from unlearnbench_metrics.mia import seeded_draw
from unlearnbench_metrics.seeds import derived_seed, evaluation_seed


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of two representations of the same n examples (Kornblith et al., "Similarity of
    Neural Network Representations Revisited", ICML 2019, Sec. 3): with X [n, p1] and Y [n, p2]
    column-centred, CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F). In [0, 1]; invariant to
    orthogonal transforms and isotropic scaling of either side. float64; 0 when either side is
    constant over the examples."""
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs the same examples on both sides, got {x.shape[0]} and {y.shape[0]}")
    x = x.double().flatten(1)
    y = y.double().flatten(1)
    x = x - x.mean(dim=0, keepdim=True)
    y = y - y.mean(dim=0, keepdim=True)
    denominator = float(torch.linalg.matrix_norm(x.T @ x) * torch.linalg.matrix_norm(y.T @ y))
    if denominator == 0.0:
        return 0.0
    return float(torch.linalg.matrix_norm(y.T @ x) ** 2) / denominator


class _CKA(Metric):
    """Linear CKA between the model's and the reference's penultimate features on the forget
    set; None for an empty forget set or a reference without a model."""

    reference: ClassVar[str]

    def compute(self, ctx: EvalContext) -> float | None:
        forget = ctx.splits["forget"]
        other = ctx.reference(self.reference).model
        if len(forget) < 2 or other is None:
            return None
        mine = penultimate_features(ctx.model, ctx.engine, forget)
        theirs = penultimate_features(other, ctx.engine, forget)
        return linear_cka(mine, theirs)


class CKAOriginal(_CKA):
    """Linear CKA (Kornblith et al., ICML 2019) of the penultimate features (the classifier's
    input) to the original's on the forget set, as UUEF (Kim et al. 2025, ``evaluate_cka`` at
    ``avgpool``) measures how much of the original representation an unlearner keeps: 1 for the
    original itself; a method that only moves the classifier stays near 1. Deviation: CKA of the
    whole forget set at once (Kornblith's definition), not UUEF's mean of per-batch CKAs over
    batches of 512, which depends on the batch composition."""

    name = "cka-original"
    label = "CKA-original"
    higher_is_better = None
    needs = ("original",)
    reference = "original"


class CKARetrain(_CKA):
    """Linear CKA (Kornblith et al., ICML 2019) of the penultimate features to retrain's on the
    forget set, UUEF's representation similarity to the retrained model (Kim et al. 2025,
    ``evaluate_cka(model, retrained_model, forget_loader)``): 1 for the retrain model itself.
    Deviation as for ``cka-original``: CKA of the whole forget set, not a mean over batches."""

    name = "cka-retrain"
    label = "CKA-retrain"
    higher_is_better = True
    needs = ("retrain",)
    reference = "retrain"


def knn_accuracy(
    fit: np.ndarray, fit_labels: np.ndarray, query: np.ndarray, query_labels: np.ndarray, *, k: int
) -> float:
    """Percent of ``query`` rows whose ``k`` nearest ``fit`` rows by cosine distance vote for
    their label (scikit-learn's ``KNeighborsClassifier(n_neighbors=k, metric="cosine")``, UUEF's
    probe; ties go to the smallest label)."""
    from sklearn.neighbors import KNeighborsClassifier

    probe = KNeighborsClassifier(n_neighbors=min(k, len(fit)), metric="cosine")
    probe.fit(fit, fit_labels)
    return 100.0 * float((probe.predict(query) == query_labels).mean())


def fold_of(split: ImageSplit, folds: int, seed: int) -> np.ndarray:
    """A fold index in [0, folds) per example: examples in :func:`mia.seeded_draw` order dealt
    round-robin, so the folds depend on the examples and the seed, not their storage order."""
    order = seeded_draw(split.images, split.labels, len(split), seed).numpy()
    fold = np.empty(len(split), dtype=np.int64)
    fold[order] = np.arange(len(split)) % folds
    return fold


class KNNForgetAccuracy(Metric):
    """k-NN forget accuracy on frozen penultimate features (UUEF, Kim et al. 2025: ``evaluate_knn``,
    ``KNeighborsClassifier(n_neighbors=5, metric='cosine')`` on the encoder's features, fit on 80%
    of a set and scored on the other 20%): whether the representation still tells the forget
    examples' labels, whatever the classifier says.

    The forget set is cut into ``folds`` = 5 folds (80/20, as UUEF) drawn with the evaluation
    seed; each fold is scored by a k-NN probe fit on the retain set's features plus the other
    folds, and the value is the percentage of forget examples it labels correctly. Deviation:
    UUEF fits on 80% of the evaluated set alone (its forget set holds 100 ImageNet classes); we
    add the retain features, so that a one-class forget set (class-wise forgetting) is not 100%
    by construction and a random forget set is placed among the retained data, and score every
    forget example once (5 folds) rather than one 20% split. ``folds = 1`` fits the probe on the
    retain features alone (a forgotten class then scores 0 by construction). Two-sided: compare
    with the retrain row. None when the forget set has fewer than ``folds`` examples, or the retain
    set none. Details: the accuracy of each fold.
    """

    seeded = True
    name = "knn-forget"
    label = "kNN-Df"
    unit = "%"
    higher_is_better = None

    @dataclass(frozen=True)
    class Params:
        k: int = 5
        folds: int = 5
        seed: int = 0

        def __post_init__(self) -> None:
            if self.k < 1 or self.folds < 1:
                raise InvalidValueError(
                    f"knn-forget needs k >= 1 and folds >= 1, got k={self.k}, folds={self.folds}"
                )

    def compute(self, ctx: EvalContext) -> MetricValue | None:
        forget, retain = ctx.splits["forget"], ctx.splits["retain"]
        folds = self.params.folds
        if len(forget) < folds or len(retain) == 0:
            return None
        seed = derived_seed(evaluation_seed(ctx, self.params.seed), "knn-forget-folds")
        fold = fold_of(forget, folds, seed)
        forget_features = penultimate_features(ctx.model, ctx.engine, forget).numpy()
        retain_features = penultimate_features(ctx.model, ctx.engine, retain).numpy()
        forget_labels = ctx.labels("forget").numpy()
        retain_labels = ctx.labels("retain").numpy()
        correct = 0.0
        per_fold: dict[str, float] = {}
        for f in range(folds):
            query = fold == f
            fit = np.concatenate([retain_features, forget_features[~query]])
            fit_labels = np.concatenate([retain_labels, forget_labels[~query]])
            accuracy = knn_accuracy(
                fit, fit_labels, forget_features[query], forget_labels[query], k=self.params.k
            )
            per_fold[f"fold:{f}"] = accuracy
            correct += accuracy * int(query.sum()) / 100.0
        return MetricValue(100.0 * correct / len(forget), per_fold)
