"""A minimal third-party unlearnbench plugin: one metric, registered through an entry point."""

from __future__ import annotations

import torch.nn.functional as F

from unlearnbench.api import EvalContext, Metric, hookimpl


class ForgetLoss(Metric):
    """Mean cross-entropy of the evaluated model on the forget set (nats). A loss that rises
    after unlearning is the forgetting signal gradient ascent optimises (Thudi et al., 2022)."""

    name = "forget-loss"
    version = 1
    label = "Forget loss"
    unit = "nats"
    higher_is_better = None

    def compute(self, ctx: EvalContext) -> float | None:
        if len(ctx.splits["forget"]) == 0:
            return None
        return float(F.cross_entropy(ctx.logits("forget"), ctx.labels("forget")))


@hookimpl
def unlearnbench_register_metrics() -> list[type]:
    return [ForgetLoss]
