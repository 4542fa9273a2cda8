"""Channel dependencies for structured (filter) pruning, found by ``torch.fx`` tracing.

A convolution is *prunable* when its output reaches exactly one affine BatchNorm and, through
zero-preserving channel-wise operations only (activations, pooling, dropout), exactly one
ungrouped convolution. Pruning output filter ``j`` then also zeroes the BatchNorm's weight and
bias at ``j`` (so the channel's activation is exactly zero in train and eval mode) and the next
convolution's input channel ``j`` (so nothing downstream reads it). Convolutions whose output
feeds a residual addition, a concatenation, several consumers, or a flatten/linear head are not
prunable: removing their channels would change the shapes another branch must match.
"""

from __future__ import annotations

import logging
import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from unlearnbench.errors import InvalidValueError
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import kept_count

log = logging.getLogger(__name__)

CHANNELWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardtanh,
    nn.Tanh,
    nn.Identity,
    nn.Dropout,
    nn.Dropout2d,
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
)
"""Module types that act on each channel separately and map a zero channel to zero."""

CHANNELWISE_FUNCTIONS: frozenset[object] = frozenset(
    {
        F.relu,
        F.relu_,
        torch.relu,
        torch.relu_,
        F.relu6,
        F.leaky_relu,
        F.gelu,
        F.silu,
        F.hardswish,
        torch.tanh,
        F.dropout,
        F.max_pool2d,
        F.avg_pool2d,
        F.adaptive_avg_pool2d,
        F.adaptive_max_pool2d,
    }
)
CHANNELWISE_METHODS: frozenset[str] = frozenset({"relu", "relu_", "tanh", "contiguous"})
ADDITIONS: frozenset[object] = frozenset({operator.add, operator.iadd, torch.add})


@dataclass(frozen=True)
class ChannelGroup:
    """A prunable convolution and the parameters indexed by its output channels."""

    conv_weight: str
    conv_bias: str | None
    bn_weight: str
    bn_bias: str
    next_weight: str
    channels: int


@dataclass(frozen=True)
class ChannelPlan:
    """The prunable groups of a model, and why each other scoped convolution is not prunable."""

    groups: tuple[ChannelGroup, ...]
    skipped: Mapping[str, str]

    @property
    def scope(self) -> frozenset[str]:
        return frozenset(g.conv_weight for g in self.groups)


def filter_keep_count(channels: int, sparsity: float) -> int:
    """Filters a layer of ``channels`` keeps at ``sparsity``: ``kept_count`` (round half up), at least 1."""
    return max(1, kept_count(channels, sparsity))


def _param(module_name: str, attr: str) -> str:
    return f"{module_name}.{attr}" if module_name else attr


def _describe(node: fx.Node, modules: Mapping[str, nn.Module]) -> str:
    if node.op == "call_module":
        return f"{type(modules[str(node.target)]).__name__} {node.target!r}"
    if node.op == "call_function":
        return getattr(node.target, "__name__", str(node.target))
    return f"{node.op} {node.target}"


def _is_channelwise(node: fx.Node, source: fx.Node, modules: Mapping[str, nn.Module]) -> bool:
    if not node.args or node.args[0] is not source:
        return False
    if node.op == "call_module":
        return isinstance(modules[str(node.target)], CHANNELWISE_MODULES)
    if node.op == "call_function":
        return node.target in CHANNELWISE_FUNCTIONS
    if node.op == "call_method":
        return node.target in CHANNELWISE_METHODS
    return False


def _sole_user(node: fx.Node) -> fx.Node | None:
    users = list(node.users)
    return users[0] if len(users) == 1 else None


def channel_plan(model: nn.Module, scope: frozenset[str]) -> ChannelPlan:
    """The prunable Conv2d weights among ``scope`` and their dependent parameters."""
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # tracing errors come in many types
        raise InvalidValueError(
            f"structured pruning needs a model torch.fx can trace; tracing failed: {exc}"
        ) from exc
    modules = dict(model.named_modules())
    calls = Counter(str(n.target) for n in graph.nodes if n.op == "call_module")
    groups: list[ChannelGroup] = []
    skipped: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[str(node.target)], nn.Conv2d):
            continue
        name = str(node.target)
        weight = _param(name, "weight")
        if weight not in scope:
            continue
        group_or_reason = _trace_group(node, modules, calls)
        if isinstance(group_or_reason, str):
            skipped[weight] = group_or_reason
            log.debug("%s is not filter-prunable: %s", weight, group_or_reason)
        else:
            groups.append(group_or_reason)
    for weight in sorted(scope - {g.conv_weight for g in groups} - set(skipped)):
        skipped[weight] = "not a Conv2d called in the traced forward"
    return ChannelPlan(tuple(groups), skipped)


def _trace_group(
    node: fx.Node, modules: Mapping[str, nn.Module], calls: Mapping[str, int]
) -> ChannelGroup | str:
    """The group of conv ``node``, or the reason it is not prunable."""
    name = str(node.target)
    conv = modules[name]
    assert isinstance(conv, nn.Conv2d)
    if calls[name] > 1:
        return "the module is called more than once"
    if conv.groups != 1:
        return "grouped convolution"
    bn_node = _sole_user(node)
    if (
        bn_node is None
        or bn_node.op != "call_module"
        or not isinstance(modules[str(bn_node.target)], nn.BatchNorm2d)
        or bn_node.args[0] is not node
    ):
        return "its output does not feed exactly one BatchNorm2d"
    bn_name = str(bn_node.target)
    bn = modules[bn_name]
    assert isinstance(bn, nn.BatchNorm2d)
    if calls[bn_name] > 1 or not bn.affine or bn.num_features != conv.out_channels:
        return f"BatchNorm {bn_name!r} is shared, not affine or of the wrong width"
    current = bn_node
    while True:
        users = list(current.users)
        if len(users) != 1:
            return f"{_describe(current, modules)} feeds {len(users)} consumers (e.g. a residual branch)"
        nxt = users[0]
        if nxt.op == "call_module" and isinstance(modules[str(nxt.target)], nn.Conv2d):
            following = modules[str(nxt.target)]
            assert isinstance(following, nn.Conv2d)
            if nxt.args[0] is not current or following.groups != 1 or calls[str(nxt.target)] > 1:
                return f"the next convolution {nxt.target!r} is grouped or shared"
            if following.in_channels != conv.out_channels:
                return f"the next convolution {nxt.target!r} has {following.in_channels} inputs"
            return ChannelGroup(
                conv_weight=_param(name, "weight"),
                conv_bias=_param(name, "bias") if conv.bias is not None else None,
                bn_weight=_param(bn_name, "weight"),
                bn_bias=_param(bn_name, "bias"),
                next_weight=_param(str(nxt.target), "weight"),
                channels=conv.out_channels,
            )
        if (nxt.op == "call_function" and nxt.target in ADDITIONS) or (
            nxt.op == "call_method" and nxt.target in ("add", "add_")
        ):
            return "its output feeds a residual addition"
        if not _is_channelwise(nxt, current, modules):
            return f"its output reaches {_describe(nxt, modules)}, not a convolution"
        current = nxt


def filter_l1_norms(model: nn.Module, groups: tuple[ChannelGroup, ...]) -> dict[str, torch.Tensor]:
    """Sum of absolute kernel weights of every output filter, float64 [out], by conv weight name."""
    params = dict(model.named_parameters())
    return {
        g.conv_weight: params[g.conv_weight].detach().to(torch.float64).abs().flatten(1).sum(dim=1)
        for g in groups
    }


def filter_keep_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Bool [out] keeping the ``keep`` highest scores (ties to the lower index)."""
    kept = torch.zeros(scores.numel(), dtype=torch.bool)
    order = torch.sort(scores.detach().cpu().to(torch.float64), descending=True, stable=True).indices
    kept[order[:keep]] = True
    return kept


def channel_mask(
    model: nn.Module, groups: tuple[ChannelGroup, ...], kept: Mapping[str, torch.Tensor]
) -> Mask:
    """The mask that removes every filter ``kept[conv_weight]`` drops, with its dependents.

    ``scope`` is the groups' conv weights; ``tensors`` also holds the conv biases, BatchNorm
    weights and biases, and next convolutions' weights (input channels along dim 1).
    """
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    tensors: dict[str, torch.Tensor] = {}

    def entry(name: str) -> torch.Tensor:
        if name not in tensors:
            tensors[name] = torch.ones(shapes[name], dtype=torch.bool)
        return tensors[name]

    for g in groups:
        dropped = ~kept[g.conv_weight].cpu().bool()
        entry(g.conv_weight)[dropped] = False
        if g.conv_bias is not None:
            entry(g.conv_bias)[dropped] = False
        entry(g.bn_weight)[dropped] = False
        entry(g.bn_bias)[dropped] = False
        entry(g.next_weight)[:, dropped] = False
    return Mask(tensors=tensors, scope=frozenset(g.conv_weight for g in groups))
