"""The SVC membership-inference attack of the reference code (``evaluation/SVC_MIA.py``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from unlearnbench.api import EvalContext, Metric


def true_label_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of each example's true label, as a column vector."""
    probs = torch.softmax(logits.double(), dim=1)
    return probs.gather(1, labels[:, None]).numpy()


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

    Feature: softmax confidence of the true label. Shadow members: the first |D_test| examples of
    the retain set in their stored order; non-members: the whole test set; attack
    ``SVC(C=3, gamma='auto', kernel='rbf')``. Score: 100 x the fraction of the forget set
    predicted as non-members (higher = more forgetting). Only the ``confidence`` attack the paper
    reports is computed (the reference computes five and reports this one).
    """

    name = "mia-efficacy"
    gap = True
    label = "MIA-Efficacy"
    unit = "%"
    higher_is_better = None

    @dataclass(frozen=True)
    class Params:
        c: float = 3.0
        gamma: str = "auto"

    def compute(self, ctx: EvalContext) -> float | None:
        n_test = len(ctx.splits["test"])
        if n_test == 0 or len(ctx.splits["retain"]) == 0 or len(ctx.splits["forget"]) == 0:
            return None
        n_shadow = min(n_test, len(ctx.splits["retain"]))
        member = true_label_confidence(ctx.logits("retain")[:n_shadow], ctx.labels("retain")[:n_shadow])
        nonmember = true_label_confidence(ctx.logits("test"), ctx.labels("test"))
        target = true_label_confidence(ctx.logits("forget"), ctx.labels("forget"))
        rate = svc_attack_nonmember_rate(member, nonmember, target, c=self.params.c, gamma=self.params.gamma)
        return 100.0 * rate
