"""Accuracy metrics of Jia et al. (NeurIPS 2023), Section 5 / ``main_forget.py``."""

from __future__ import annotations

from unlearnbench.api import EvalContext, Metric


class UnlearningAccuracy(Metric):
    """UA = 100 - accuracy on the forget set (Jia et al., 2023, Sec. 5)."""

    name = "ua"
    gap = True
    label = "UA"
    unit = "%"
    higher_is_better = None

    def compute(self, ctx: EvalContext) -> float | None:
        acc = ctx.accuracy("forget")
        return None if acc is None else 100.0 - acc


class RemainingAccuracy(Metric):
    """RA = accuracy on the retain set (Jia et al., 2023, Sec. 5)."""

    name = "ra"
    gap = True
    label = "RA"
    unit = "%"
    higher_is_better = True

    def compute(self, ctx: EvalContext) -> float | None:
        return ctx.accuracy("retain")


class TestingAccuracy(Metric):
    """TA = accuracy on the test set (Jia et al., 2023, Sec. 5); for class-wise forgetting the
    forgotten classes are removed from the test set, as in the reference code."""

    name = "ta"
    gap = True
    label = "TA"
    unit = "%"
    higher_is_better = True

    def compute(self, ctx: EvalContext) -> float | None:
        return ctx.accuracy("test")


class ForgottenClassTestAccuracy(Metric):
    """Accuracy on the test examples of the forgotten classes (class-wise forgetting only;
    None otherwise). Not in the paper's tables: reported separately so TA stays comparable."""

    name = "fta"
    label = "TA-forgotten"
    unit = "%"
    higher_is_better = None

    def compute(self, ctx: EvalContext) -> float | None:
        return ctx.accuracy("forget_test")
