"""SynFlow: data-free iterative pruning by synaptic flow (Tanaka et al., NeurIPS 2020)."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from unlearnbench.api import InvalidValueError, Mask, PruneTask, check_sparsity, topk_mask
from unlearnbench_pruners._common import AtInitPruner

log = logging.getLogger(__name__)


def synflow_schedule(target: float, rounds: int = 100) -> list[float]:
    """Cumulative sparsity after each round: ``1 - (1 - target)**(k / rounds)``, k = 1..rounds.

    The density shrinks by the same factor every round and the last round is exactly ``target``.
    """
    target = check_sparsity(target)
    if rounds < 1:
        raise InvalidValueError(f"SynFlow needs at least one round, got {rounds}")
    return [1.0 - (1.0 - target) ** (k / rounds) for k in range(1, rounds)] + [target]


class _PositiveAffine(nn.Module):
    """Per-channel ``x * scale + shift`` (channels along dim 1): a BatchNorm folded for SynFlow."""

    def __init__(self, scale: torch.Tensor, shift: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("scale", scale)
        self.register_buffer("shift", shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        view = (1, -1) + (1,) * (x.dim() - 2)
        return x * self.scale.view(view) + self.shift.view(view)


def _folded_batchnorm(bn: nn.modules.batchnorm._BatchNorm) -> _PositiveAffine:
    """``bn``'s eval-mode affine map, with its scale and shift made nonnegative (float64)."""
    like = next((t for t in (bn.weight, bn.running_mean) if t is not None), None)
    device = None if like is None else like.device
    ones = torch.ones(bn.num_features, dtype=torch.float64, device=device)
    gamma = ones if bn.weight is None else bn.weight.detach().to(torch.float64)
    beta = torch.zeros_like(ones) if bn.bias is None else bn.bias.detach().to(torch.float64)
    if bn.running_mean is not None and bn.running_var is not None:
        inv_std = (bn.running_var.detach().to(torch.float64) + bn.eps).rsqrt()
        scale = gamma * inv_std
        shift = beta - gamma * bn.running_mean.detach().to(torch.float64) * inv_std
    else:
        scale, shift = gamma, beta
    return _PositiveAffine(scale.abs(), shift.abs())


def linearised_copy(model: nn.Module, scope: frozenset[str]) -> nn.Module:
    """A float64 eval-mode copy of ``model`` with every weight, bias and buffer made nonnegative.

    Each BatchNorm is replaced by its folded eval-mode map ``|gamma / sigma| x + |beta - gamma
    mu / sigma|``; only the ``scope`` parameters require gradients.
    """
    net = copy.deepcopy(model).double().eval()
    norms = [name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for name in norms:
        parent_name, _, child = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, child, _folded_batchnorm(net.get_submodule(name)))
    with torch.no_grad():
        for name, param in net.named_parameters():
            param.abs_()
            param.requires_grad_(name in scope)
        for buffer in net.buffers():
            if buffer.is_floating_point():
                buffer.abs_()
    return net


def synaptic_saliency(
    net: nn.Module, names: list[str], input_shape: tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """``|theta * dR/dtheta|`` with ``R = sum(net(1))`` for a single all-ones input (float64)."""
    params = dict(net.named_parameters())
    device = params[names[0]].device
    ones = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    flow = net(ones).sum()
    if not torch.isfinite(flow):
        raise InvalidValueError(f"SynFlow's total flow R is not finite ({float(flow)})")
    grads = torch.autograd.grad(flow, [params[n] for n in names], allow_unused=True)
    return {
        n: torch.zeros_like(params[n]) if g is None else (g * params[n]).detach().abs()
        for n, g in zip(names, grads, strict=True)
    }


class SynFlow(AtInitPruner):
    """SynFlow (Tanaka, Kunin, Yamins and Ganguli, "Pruning neural networks without any data by
    iteratively conserving synaptic flow", NeurIPS 2020), as run by Jia et al. (NeurIPS 2023,
    ``main_synflow.py``: 100 rounds, then training with the mask).

    Round ``k`` of ``rounds`` scores the still-kept scoped weights by ``|theta * dR/dtheta|``,
    ``R = sum(f(1))`` for one all-ones input of the data's shape through a copy of the network
    whose weights, biases and buffers are replaced by their absolute values, and keeps the top
    ``(1 - s)**(k / rounds)`` of the scope (globally), so the density shrinks exponentially
    (:func:`synflow_schedule`). Only the data's shape is used. Scores are computed in float64,
    so the products of many layers' weight sums neither overflow nor underflow (the reference
    computes in float32), and ranked in float64 (ties to the earlier position).
    BatchNorm: evaluated in eval mode (as the reference's ``synflow_importance_score``), folded into
    its per-channel affine map ``a x + b`` (``a = gamma / sigma``, ``b = beta - gamma mu / sigma``)
    whose ``|a|`` and ``|b|`` are used. Deviation: the reference takes ``|mu|``, ``|gamma|``,
    ``|beta|`` separately, which can make the shift negative for trained statistics and cut
    paths at the next ReLU; at initialisation (mu = 0, beta = 0) both are identical. A
    BatchNorm without running statistics is taken as ``|gamma| x + |beta|``. The input
    sees no normalisation (the engine normalises outside the model; the reference normalises
    inside it).
    ``prune`` with ``at_init`` (reference) scores a fresh ``task.new_model()`` seeded by
    ``task.seed`` and, with ``retrain``, trains it under the mask with ``task.recipe``; without
    ``at_init`` it scores the given model, then rewinds (``rewind``) and retrains like OMP.
    ``make_mask`` runs the rounds on the model it is given.
    """

    name = "synflow"
    version = 2

    @dataclass(frozen=True)
    class Params:
        rounds: int = 100
        at_init: bool = True
        retrain: bool = True
        rewind: bool = True

    def scores(self, model: nn.Module, task: PruneTask) -> dict[str, torch.Tensor]:
        names = sorted(task.scope)
        net = linearised_copy(model, task.scope)
        return synaptic_saliency(net, names, tuple(task.data.images.shape[1:]))

    def make_mask(self, model: nn.Module, task: PruneTask) -> Mask:
        names = sorted(task.scope)
        schedule = synflow_schedule(task.sparsity, self.params.rounds)
        if task.sparsity == 0.0:
            return Mask.dense(model, names)
        net = linearised_copy(model, task.scope)
        params = dict(net.named_parameters())
        original = {n: params[n].detach().clone() for n in names}
        shape = tuple(task.data.images.shape[1:])
        mask: Mask | None = None
        for sparsity in schedule:
            if mask is not None:
                with torch.no_grad():
                    for n in names:
                        params[n].copy_(original[n] * mask.tensors[n].to(original[n].device))
            mask = topk_mask(synaptic_saliency(net, names, shape), sparsity, task.scope, within=mask)
        assert mask is not None
        log.info("synflow: %d rounds, sparsity %.4f", len(schedule), mask.sparsity())
        return mask
