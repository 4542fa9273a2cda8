"""Run-time efficiency and topology metrics."""

from __future__ import annotations

from unlearnbench.api import EvalContext, Metric


class RunTimeEfficiency(Metric):
    """RTE: wall-clock minutes of the unlearning (plus un-pruning) stage (Jia et al., 2023).

    The reference prints per-epoch times only; here the stage's own measured time is used,
    on whatever device the run used (the result records it). None for the original model.
    """

    name = "rte"
    label = "RTE"
    unit = "min"
    higher_is_better = False

    def compute(self, ctx: EvalContext) -> float | None:
        return None if ctx.runtime_s is None else ctx.runtime_s / 60.0


class MaskIoURetainTopology(Metric):
    """IoU of the evaluated mask's kept set with the retain-set topology (train on the retain
    set, then prune with the same pruner): |m & m_r| / |m | m_r| over the pruned scope, the
    overlap of the un-pruning work (Xiao et al., 2025, arXiv 2507.18725). For structured masks
    the IoU is over kept filters (per layer, summed), as that work compares channel topologies.
    None for dense models.
    """

    name = "mask-iou"
    label = "Mask-IoU"
    unit = ""
    higher_is_better = True
    needs = ("retain_topology",)

    def compute(self, ctx: EvalContext) -> float | None:
        reference = ctx.reference("retain_topology").mask
        if ctx.mask is None or reference is None:
            return None
        return ctx.mask.filter_iou(reference) if ctx.structured else ctx.mask.iou(reference)
