"""What the stage modules share (none of them imports another): the model artifact, loading a
model or a reference from one, the unlearning task, and the dense-training and pruning steps
that both the row stages and the reference stages run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from unlearnbench.registry.components import PruneTask, UnlearnTask
from unlearnbench.registry.events import EpochLogged
from unlearnbench.run.context import RunContext
from unlearnbench.run.evaluation import Reference
from unlearnbench.run.plan import Node
from unlearnbench.training.masks import Mask
from unlearnbench.training.unlearning import EpochLog, EpochValue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelArtifact:
    """A model stage's output: weights, mask (None when dense), key and measured runtime."""

    key: str
    state: dict[str, torch.Tensor]
    mask: Mask | None
    runtime_s: float
    extra: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    """JSON-ready values stored in the artifact's ``meta.json`` (e.g. ``epoch_log``)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    """What computed a stored artifact (read back with it; ``epochs`` is its training budget)."""


class GuardError(RuntimeError):
    """A stage's output failed a check (non-finite weights); the message names the culprit."""


Output = ModelArtifact | dict[str, Any]
"""A stage's output: a model artifact (saved as files) or a JSON-ready payload (saved in meta)."""
StageFn = Callable[[RunContext, Node, Mapping[str, Output]], Output]


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def model_of(parents: Mapping[str, Output], role: str) -> ModelArtifact:
    found = parents[role]
    assert isinstance(found, ModelArtifact), role
    return found


def as_reference(ctx: RunContext, seed: int, artifact: ModelArtifact | None) -> Reference:
    """A reference for metrics: the artifact's model and mask (empty when there is none)."""
    if artifact is None:
        return Reference(None, None)
    return Reference(ctx.load_model(seed, artifact.state), artifact.mask)


def train_dense(ctx: RunContext, node: Node) -> ModelArtifact:
    """Train a fresh seeded model on the pool (``node.forget`` None) or on the retain set; its
    per-epoch ``train_loss`` and ``train_acc`` go to the epoch hook and the artifact's meta."""
    assert node.seed is not None
    seed, recipe = node.seed, ctx.protocol.recipe
    model = ctx.new_model_factory(seed)()
    rewind: dict[str, dict[str, torch.Tensor]] = {}
    if recipe.rewind_epoch == 0:
        rewind["rewind"] = state_of(model)

    def keep_rewind(epoch: int, m: nn.Module) -> None:
        if epoch == recipe.rewind_epoch:
            rewind["rewind"] = state_of(m)

    label = "train original" if node.forget is None else f"train on retain ({node.forget})"
    split = ctx.training_data(node.forget)
    val = ctx.data.val if len(ctx.data.val) else None
    epochs = EpochLog(listener=lambda e: _announce(ctx, node, e))
    ctx.engine.fit(
        model,
        split,
        recipe,
        seed=seed,
        description=label,
        on_epoch_end=keep_rewind,
        val=val,
        epoch_log=epochs,
    )
    state = checked(state_of(model), node, node.component)
    return ModelArtifact("", state, None, 0.0, rewind, meta={"epoch_log": epochs.as_records()})


def prune_task(ctx: RunContext, seed: int, sparsity: float, data: Any, rewind: Any) -> PruneTask:
    return PruneTask(
        sparsity=sparsity,
        scope=ctx.scope,
        data=data,
        engine=ctx.engine,
        recipe=ctx.protocol.recipe,
        new_model=ctx.new_model_factory(seed),
        rewind_state=rewind,
        seed=seed,
        val=ctx.data.val if len(ctx.data.val) else None,
    )


def prune_dense(ctx: RunContext, node: Node, dense: ModelArtifact) -> ModelArtifact:
    """Prune ``dense`` with the node's pruner on the node's training data."""
    assert node.seed is not None and node.pruner is not None and node.sparsity is not None
    model = ctx.load_model(node.seed, dense.state)
    data = ctx.training_data(node.forget)
    task = prune_task(ctx, node.seed, node.sparsity, data, dense.extra.get("rewind"))
    outcome = ctx.pruners[node.pruner].prune(model, task)
    return enforce(outcome.model, outcome.mask, node, node.pruner)


def path_epochs(*artifacts: ModelArtifact | None) -> int | None:
    """Epochs trained on the way to a model: the sum of its distinct stored ancestors' budgets
    (None when one predates budgets being recorded)."""
    found = {a.key: a.provenance.get("epochs") for a in artifacts if a is not None}
    if not found or any(e is None for e in found.values()):
        return None
    return int(sum(found.values()))  # type: ignore[arg-type]


def unlearn_task(
    ctx: RunContext,
    node: Node,
    mask: Mask | None,
    start: ModelArtifact | None,
    dense: ModelArtifact | None,
    original_epochs: int | None = None,
) -> UnlearnTask:
    """The task of unlearning ``node.forget``; ``start`` is the model the unlearning begins from
    and ``dense`` the dense weights before pruning (None when the start was never pruned). Its
    randomness (``task.seed``, ``task.new_model``) comes from the node's unlearning seed."""
    assert node.seed is not None and node.forget is not None
    seed, forget = unlearning_seed(node), ctx.forget_sets[node.forget]
    splits = ctx.splits(node.forget)
    return UnlearnTask(
        forget=splits["forget"],
        retain=splits["retain"],
        mask=mask,
        engine=ctx.engine,
        recipe=ctx.protocol.recipe,
        new_model=ctx.new_model_factory(seed),
        num_classes=ctx.data.dataset.num_classes,
        seed=seed,
        forget_kind=forget.spec.kind,
        forgotten_classes=forget.forgotten_classes,
        val=ctx.data.val if len(ctx.data.val) else None,
        original=None if start is None else (lambda: ctx.load_model(seed, start.state)),
        dense_state=None if dense is None else dense.state,
        log=EpochLog(listener=lambda e: _announce(ctx, node, e)),
        original_epochs=original_epochs,
    )


def unlearning_seed(node: Node) -> int:
    """The seed of an unlearn/unprune node's randomness (its train seed where unset)."""
    assert node.seed is not None
    return node.seed if node.unlearn_seed is None else node.unlearn_seed


def _announce(ctx: RunContext, node: Node, entry: EpochValue) -> None:
    event = EpochLogged(node.stage, node.component, node.key, entry.epoch, entry.name, entry.value)
    ctx.registry.host.emit("unlearnbench_epoch_logged", event=event)


def with_epoch_log(artifact: ModelArtifact, task: UnlearnTask) -> ModelArtifact:
    """``artifact`` carrying what the unlearner logged per epoch into the artifact's meta."""
    if not task.log.entries:
        return artifact
    return replace(artifact, meta={**artifact.meta, "epoch_log": task.log.as_records()})


def same_state(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same keys and element-for-element equal tensors."""
    return a.keys() == b.keys() and all(torch.equal(a[k].cpu(), b[k].cpu()) for k in a)


def checked(state: dict[str, torch.Tensor], node: Node, who: str) -> dict[str, torch.Tensor]:
    """``state``, or :class:`GuardError` naming the stage, ``who`` and the non-finite tensors."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        raise GuardError(
            f"{node.stage} ({who}) produced non-finite weights in {len(bad)} tensor"
            f"{'s' if len(bad) != 1 else ''}: {shown}"
        )
    return state


def enforce(model: nn.Module, mask: Mask | None, node: Node, who: str) -> ModelArtifact:
    """The model as an artifact, its weights checked finite and re-masked so pruned weights are
    exactly zero whatever ``who`` did; the pruned weights it left nonzero are counted in the
    artifact's meta (``mask_violations``)."""
    violations = 0
    if mask is not None:
        violations = sum(mask.violations(model).values())
        if violations:
            log.warning("%s (%s) left %d pruned weights nonzero; re-masked", node.stage, who, violations)
        mask.apply_(model)
    state = checked(state_of(model), node, who)
    meta = {"mask_violations": violations} if mask is not None else {}
    return ModelArtifact("", state, None if mask is None else mask.to("cpu"), 0.0, meta=meta)
