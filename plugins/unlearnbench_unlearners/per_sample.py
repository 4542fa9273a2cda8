"""Per-sample cross-entropy gradients, flattened over ``model.parameters()`` in its order.

Three ways, equal up to float rounding and tie-breaking at kinks (ReLU at 0, max-pool ties):
``per_sample_grads_loop`` (the reference's batch-size-1 loop), ``per_sample_grads_vmap``
(``torch.func``, any model) and ``per_sample_grads_hooks`` (one batched forward and backward pass
plus closed forms per layer, for models built of the layers it knows). ``per_sample_grads`` takes
the hook path where it applies and the vmap path otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import GradientEdge, get_gradient_edge
from torch.func import functional_call, grad, vmap

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d)


def per_sample_grads_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The reference's way: one backward pass per example (batch size 1)."""
    params = [p for p in model.parameters()]
    rows = []
    for i in range(x.shape[0]):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    return torch.stack(rows)


def per_sample_grads_vmap(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Batched with ``torch.func`` (vmap over grad of a functional call); works for any model. On
    the CPU oneDNN is bypassed: vmap turns convolutions into grouped ones, whose weight gradient
    oneDNN computes about twice as slowly as ATen's own kernel."""
    params = {n: p.detach() for n, p in model.named_parameters()}
    buffers = {n: b.detach() for n, b in model.named_buffers()}

    def loss(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        out = functional_call(model, (p, buffers), (xi.unsqueeze(0),))
        return F.cross_entropy(out, yi.unsqueeze(0))

    enabled = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled and x.device.type != "cpu"
    try:
        grads = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    finally:
        torch.backends.mkldnn.enabled = enabled
    return torch.cat([grads[n].reshape(x.shape[0], -1) for n in params], dim=1)


def _supported(module: nn.Module) -> bool:
    if type(module) is nn.Linear:
        return True
    if type(module) is nn.Conv2d:
        return module.groups == 1 and module.padding_mode == "zeros" and not isinstance(module.padding, str)
    if type(module) in _BATCH_NORMS:
        return not module.training and module.running_mean is not None
    return False


def hooks_apply(model: nn.Module) -> bool:
    """Whether ``per_sample_grads_hooks`` handles ``model``: every module that owns parameters is
    a ``Linear``, a ``Conv2d`` with one group and zero padding, or a ``BatchNorm1d/2d`` in eval
    mode with running statistics, and no parameter is owned by two modules."""
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    owned = [id(p) for m in owners for p in m.parameters(recurse=False)]
    return len(owned) == len(set(owned)) and all(_supported(m) for m in owners)


def _linear(m: nn.Linear, a: torch.Tensor, g: torch.Tensor, dest: list[torch.Tensor]) -> None:
    n = a.shape[0]
    a, g = a.reshape(n, -1, a.shape[-1]), g.reshape(n, -1, g.shape[-1])
    torch.bmm(g.transpose(1, 2), a, out=dest[0].view(n, *m.weight.shape))
    if m.bias is not None:
        torch.sum(g, 1, out=dest[1])


def _conv2d(m: nn.Conv2d, a: torch.Tensor, g: torch.Tensor, dest: list[torch.Tensor]) -> None:
    n = a.shape[0]
    cols = F.unfold(a, m.kernel_size, dilation=m.dilation, padding=m.padding, stride=m.stride)
    g = g.reshape(n, g.shape[1], -1)
    torch.bmm(g, cols.transpose(1, 2), out=dest[0].view(n, g.shape[1], cols.shape[1]))
    if m.bias is not None:
        torch.sum(g, 2, out=dest[1])


def _batch_norm(
    m: nn.BatchNorm1d | nn.BatchNorm2d, a: torch.Tensor, g: torch.Tensor, dest: list[torch.Tensor]
) -> None:
    if m.weight is None:
        return
    shape = (1, -1) + (1,) * (a.dim() - 2)
    x_hat = (a - m.running_mean.view(shape)) * torch.rsqrt(m.running_var.view(shape) + m.eps)
    n, c = a.shape[:2]
    torch.sum((g * x_hat).reshape(n, c, -1), 2, out=dest[0])
    torch.sum(g.reshape(n, c, -1), 2, out=dest[1])


_CLOSED_FORMS: dict[type, Callable[..., None]] = {
    nn.Linear: _linear,
    nn.Conv2d: _conv2d,
    nn.BatchNorm1d: _batch_norm,
    nn.BatchNorm2d: _batch_norm,
}


def _hooked(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
    """The hook path, or None where it does not apply (see ``per_sample_grads_hooks``)."""
    if not hooks_apply(model):
        return None
    owners = [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]
    seen: dict[nn.Module, list[tuple[torch.Tensor, GradientEdge]]] = {m: [] for m in owners}

    def keep(m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        seen[m].append((inputs[0].detach(), get_gradient_edge(out)))

    handles = [m.register_forward_hook(keep) for m in owners]
    try:
        with torch.enable_grad():
            loss = F.cross_entropy(model(x), y, reduction="sum")
    finally:
        for h in handles:
            h.remove()
    if any(len(calls) != 1 for calls in seen.values()):
        return None
    outs = torch.autograd.grad(loss, [seen[m][0][1] for m in owners])
    params = list(model.parameters())
    grads = torch.empty(x.shape[0], sum(p.numel() for p in params), dtype=outs[0].dtype, device=x.device)
    cuts = torch.cumsum(torch.tensor([0] + [p.numel() for p in params]), 0).tolist()
    where = {id(p): grads[:, start:end] for p, start, end in zip(params, cuts, cuts[1:], strict=False)}
    for m, g in zip(owners, outs, strict=True):
        _CLOSED_FORMS[type(m)](m, seen[m][0][0], g, [where[id(p)] for p in m.parameters(recurse=False)])
    return grads


def per_sample_grads_hooks(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One forward pass of the batch with forward hooks that keep each parameterised module's
    input and the autograd edge of its output, one backward pass of the summed CE loss to those
    edges (each example's output gradient is its own, as examples do not interact in eval mode),
    then closed forms per example: Linear ``g^T a`` (bias ``sum g``), Conv2d ``g [O, L]`` times
    the unfolded input ``[L, C k k]`` (bias ``sum_L g``), BatchNorm ``sum g x_hat`` with the
    running statistics (bias ``sum g``). Requires ``hooks_apply(model)``, every such module called
    once per forward pass, and parameter-free modules that treat examples independently."""
    grads = _hooked(model, x, y)
    if grads is None:
        raise ValueError("per_sample_grads_hooks: a parameterised module is unsupported or not run once")
    return grads


def per_sample_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Flattened gradients [B, P] of each example's CE loss in the model's current (eval) mode: the
    hook path (``per_sample_grads_hooks``) where it applies, else the general vmap path
    (``per_sample_grads_vmap``)."""
    grads = _hooked(model, x, y)
    return per_sample_grads_vmap(model, x, y) if grads is None else grads
