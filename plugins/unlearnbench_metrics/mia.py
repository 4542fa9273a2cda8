"""The SVC membership-inference attack of the reference code (``evaluation/SVC_MIA.py``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from unlearnbench.api import EvalContext, Metric


def true_label_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of each example's true label, as a column vector."""
    probs = torch.softmax(logits.double(), dim=1)
    return probs.gather(1, labels[:, None]).numpy()


def content_keys(images: torch.Tensor, labels: torch.Tensor, seed: int) -> list[bytes]:
    """One key per example from its pixels and label alone: a BLAKE2b digest keyed with
    ``seed``. Equal examples get equal keys, whatever their position; distinct examples get
    keys in a pseudo-random order."""
    pixels = images.detach().cpu().reshape(len(images), -1).numpy()
    classes = labels.detach().cpu().numpy()
    secret = seed.to_bytes(16, "little", signed=True)
    return [
        hashlib.blake2b(row.tobytes() + int(label).to_bytes(8, "little"), key=secret, digest_size=16).digest()
        for row, label in zip(pixels, classes, strict=True)
    ]


def seeded_draw(images: torch.Tensor, labels: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """Indices of the ``n`` examples with the smallest :func:`content_keys`, in key order: a
    seeded uniform draw of ``n`` examples that depends on the examples, not on their storage
    order."""
    keys = content_keys(images, labels, seed)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    return torch.tensor(order[:n], dtype=torch.int64)


def svc_attack_nonmember_rate(
    member: np.ndarray, nonmember: np.ndarray, target: np.ndarray, *, c: float, gamma: str
) -> float:
    """Fit an RBF SVC on ``member`` (label 1) vs ``nonmember`` (label 0) features and return the
    fraction of ``target`` rows it predicts as non-members."""
    from sklearn.svm import SVC

    features = np.concatenate([member, nonmember])
    labels = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    attack = SVC(C=c, gamma=gamma, kernel="rbf")
    attack.fit(features, labels)
    return float((attack.predict(target) == 0).mean())


class MIAEfficacy(Metric):
    """MIA-Efficacy (Jia et al., 2023, Appendix C.3; ``SVC_MIA_forget_efficacy['confidence']``).

    Feature: softmax confidence of the true label (from fp32 logits). Shadow members: |D_test|
    examples of the retain set drawn by :func:`seeded_draw` with seed ``shadow_seed`` + the
    evaluation seed (``ctx.eval_seed``: each evaluation repetition is another draw); non-members:
    the whole test set; attack ``SVC(C=3, gamma='auto', kernel='rbf')``. Score: 100 x the
    fraction of the forget set predicted as non-members (higher = more forgetting). Only the
    ``confidence`` attack the paper reports is computed (the reference computes five and reports
    this one). Deviation: the reference takes the *first* |D_test| retain examples in stored
    order, which on a copy stored class by class (an image folder) picks only a few classes; the
    seeded draw (members and non-members both fed to the SVC in content-key order) makes the
    number independent of storage order; ``mia-efficacy-ref`` is the reference's selection.
    """

    name = "mia-efficacy"
    version = 2
    gap = True
    seeded = True
    label = "MIA-Efficacy"
    unit = "%"
    higher_is_better = None

    @dataclass(frozen=True)
    class Params:
        c: float = 3.0
        gamma: str = "auto"
        shadow_seed: int = 0

    def compute(self, ctx: EvalContext) -> float | None:
        n_test = len(ctx.splits["test"])
        if n_test == 0 or len(ctx.splits["retain"]) == 0 or len(ctx.splits["forget"]) == 0:
            return None
        retain, test = ctx.splits["retain"], ctx.splits["test"]
        seed = self.params.shadow_seed + ctx.eval_seed
        shadow = seeded_draw(retain.images, retain.labels, min(n_test, len(retain)), seed)
        test_order = seeded_draw(test.images, test.labels, n_test, seed)
        return efficacy(ctx, shadow, test_order, c=self.params.c, gamma=self.params.gamma)


def efficacy(
    ctx: EvalContext, members: torch.Tensor, nonmembers: torch.Tensor, *, c: float, gamma: str
) -> float:
    """100 x the fraction of the forget set that the SVC trained on the retain examples
    ``members`` (label 1) and the test examples ``nonmembers`` (label 0) calls non-members."""
    member = true_label_confidence(ctx.logits("retain")[members], ctx.labels("retain")[members])
    nonmember = true_label_confidence(ctx.logits("test")[nonmembers], ctx.labels("test")[nonmembers])
    target = true_label_confidence(ctx.logits("forget"), ctx.labels("forget"))
    return 100.0 * svc_attack_nonmember_rate(member, nonmember, target, c=c, gamma=gamma)


class MIAEfficacyReference(Metric):
    """MIA-Efficacy with the reference code's member selection (``evaluation/SVC_MIA.py``, as
    called from ``main_forget.py``): shadow members are the *first* |D_test| retain examples in
    stored order, non-members the whole test set in stored order, the same SVC and feature as
    ``mia-efficacy``. For exact comparison with published numbers; on a copy stored class by
    class the members come from a few classes, so the value depends on the storage order (which
    is why ``mia-efficacy`` draws its members). Not seeded: one value per model.
    """

    name = "mia-efficacy-ref"
    version = 1
    label = "MIA-Eff. (ref order)"
    unit = "%"
    higher_is_better = None

    @dataclass(frozen=True)
    class Params:
        c: float = 3.0
        gamma: str = "auto"

    def compute(self, ctx: EvalContext) -> float | None:
        n_test, n_retain = len(ctx.splits["test"]), len(ctx.splits["retain"])
        if n_test == 0 or n_retain == 0 or len(ctx.splits["forget"]) == 0:
            return None
        members = torch.arange(min(n_test, n_retain))
        return efficacy(ctx, members, torch.arange(n_test), c=self.params.c, gamma=self.params.gamma)
