"""Influence unlearning (IU) with the WoodFisher inverse-Hessian-vector product."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from unlearnbench.api import Engine, ImageSplit, Mask, Unlearner, UnlearnTask
from unlearnbench_unlearners.per_sample import per_sample_grads


def _flat_keep(model: nn.Module, mask: Mask | None) -> torch.Tensor | None:
    if mask is None:
        return None
    parts = []
    for n, p in model.named_parameters():
        keep = mask.tensors.get(n)
        parts.append(
            torch.ones(p.numel(), dtype=torch.bool, device=p.device)
            if keep is None
            else keep.reshape(-1).to(p.device)
        )
    return torch.cat(parts)


def mean_grad_sum(model: nn.Module, engine: Engine, split: ImageSplit, batch_size: int) -> torch.Tensor:
    """Sum over batches of (batch size x batch-mean CE gradient), flattened (``Wfisher``'s loop)."""
    params = [p for p in model.parameters()]
    total = torch.zeros(sum(p.numel() for p in params), device=engine.device)
    with torch.enable_grad():
        for x, y in engine.batches(split, batch_size, None, shuffle=False):
            g = torch.autograd.grad(F.cross_entropy(model(x), y), params)
            total += torch.cat([t.reshape(-1) for t in g]) * x.shape[0]
    return total


def woodfisher(chunks: Iterable[torch.Tensor], v: torch.Tensor, damping: float) -> torch.Tensor:
    """The reference's ``woodfisher`` recursion over per-sample retain gradients, given in order as
    chunks [b, P] and consumed one at a time: o <- g_0; then for each next g:
    k -= (k.g / (N + o.g)) o, o -= (o.g / (N + o.g)) o."""
    k, o = v.clone(), None
    for grads in chunks:
        for g in grads:
            if o is None:
                o = g.clone()
                continue
            tmp = torch.dot(o, g)
            k -= (torch.dot(k, g) / (damping + tmp)) * o
            o -= (tmp / (damping + tmp)) * o
    return k


class InfluenceUnlearning(Unlearner):
    """IU (Koh & Liang, 2017; Izzo et al., 2021; Jia et al., 2023, Unlearn-Sparse ``wfisher``,
    ``unlearn/Wfisher.py``): v = n_f/(n_f+n_r) (mean D_f gradient - mean D_r gradient), H^-1 v by
    the reference's WoodFisher recursion over per-sample retain gradients (damping N = 1000,
    stopping after the first N + 2 retain examples in order), then theta += alpha H^-1 v. Means
    over batches of 256 in eval mode. Default alpha 0.2 (the parser's; the README says tune).
    Deviation: per-sample gradients are computed batched, not one backward pass per example
    (``per_sample.per_sample_grads``: closed forms from module hooks for Linear/Conv2d/eval
    BatchNorm models, ``torch.func`` vmap of grad otherwise); same values up to float rounding
    and tie-breaking at ReLU/max-pool kinks (``benchmarks/iu_per_sample_grads.py``). On a
    pruned model the gradients of pruned weights are zeroed, as the reference's masked forward
    makes them, and the update leaves them at zero."""

    name = "iu"
    version = 1

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.2
        damping: float = 1000.0
        samples: int = 1002
        batch_size: int = 256
        chunk: int = 128

    def direction(self, model: nn.Module, task: UnlearnTask) -> torch.Tensor:
        """H^-1 v, flattened over ``model.parameters()``."""
        engine, p = task.engine, self.params
        model.eval()
        n_f, n_r = len(task.forget), len(task.retain)
        keep = _flat_keep(model, task.mask)
        forget_grad = mean_grad_sum(model, engine, task.forget, p.batch_size) / (n_f + n_r)
        retain_grad = mean_grad_sum(model, engine, task.retain, p.batch_size) * (n_f / ((n_f + n_r) * n_r))
        v = forget_grad - retain_grad
        batches = engine.batches(task.retain.head(p.samples), p.chunk, None, shuffle=False)
        chunks = (per_sample_grads(model, x, y) for x, y in batches)
        if keep is not None:
            v, chunks = v * keep, (g * keep for g in chunks)
        return woodfisher(chunks, v, p.damping)

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        step = self.params.alpha * self.direction(model, task)
        start = 0
        with torch.no_grad():
            for param in model.parameters():
                param.add_(step[start : start + param.numel()].view_as(param).to(param.dtype))
                start += param.numel()
        return model
