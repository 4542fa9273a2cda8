"""A row's starting point for unlearning outside the suite: :func:`unlearning_task` returns the
row's pruned original, its mask and the NeurIPS 2023 challenge loaders; score the result with
:func:`unlearnbench.evaluate` given the same options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnbench.api_evaluate import _evaluate_options, _one_row
from unlearnbench.errors import InvalidValueError
from unlearnbench.run.python_api import DEFAULT_PROTOCOL

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class UnlearningTask:
    """What a row's unlearner starts from, for unlearning outside the suite: the row's pruned
    original (``model``, on the run's device), its ``mask`` (None when dense) and the NeurIPS
    2023 challenge's ``retain``, ``forget`` and ``validation`` DataLoaders (as a function
    unlearner gets them, see :mod:`unlearnbench.run.functions`)."""

    model: nn.Module
    mask: Any
    retain: Any
    forget: Any
    validation: Any
    forget_set: str
    pruner: str
    sparsity: float
    seed: int


def unlearning_task(
    protocol: str = DEFAULT_PROTOCOL,
    *,
    forget: str | None = None,
    pruner: str | None = None,
    sparsity: float | None = None,
    seed: int | None = None,
    out: Path | str = "unlearnbench-out",
    sets: Mapping[str, Any] | None = None,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    data_root: Path | str | None = None,
    artifacts: Path | str | None = None,
    original: Path | str | None = None,
    batch_size: int | None = None,
) -> UnlearningTask:
    """The starting point of one row (forget set, pruner, sparsity, seed) of ``protocol``: its
    pruned original, trained (or read from ``OUT``'s store, where a run put it) exactly as a run
    would, and the challenge loaders. Unlearn it with any code, then score the result with
    :func:`evaluate` given the same options."""
    from unlearnbench.run.artifacts import ArtifactStore
    from unlearnbench.run.context import RunContext
    from unlearnbench.run.functions import CHALLENGE_BATCH_SIZE, challenge_loaders
    from unlearnbench.run.graph import Graph, Row, RowPlan
    from unlearnbench.run.plan import ORIGINAL, Planner
    from unlearnbench.run.runner import LocalExecutor, read_output
    from unlearnbench.run.stages.common import unlearn_task

    options = _evaluate_options(
        protocol,
        out,
        unlearners=(),
        pruner=pruner,
        sparsity=sparsity,
        seed=seed,
        metrics=None,
        sets=sets,
        limit=limit,
        device=device,
        threads=threads,
        data_root=data_root,
        artifacts=artifacts,
        original=original,
    )
    prepared, chosen = _one_row(options, forget, None)
    p = prepared.protocol
    ctx = RunContext(p, prepared.registry, replace(prepared.settings, forget=(chosen,)))
    planner = Planner(p, ctx.plan_inputs())
    row = Row(p.seeds[0], p.prune.pruners[0], p.prune.sparsities[0], chosen, ORIGINAL, False)
    key = planner.topology(row.seed, row.pruner, row.sparsity)
    graph = Graph(dict(planner.nodes), (RowPlan(row, key, key, (), ORIGINAL),))
    store = ArtifactStore(ctx.settings.artifacts)
    for outcome in LocalExecutor(ctx, store).execute(graph):
        if outcome.error is not None:
            raise InvalidValueError(f"the original of this row failed: {outcome.error}")
    stored = store.get(graph.nodes[key].stage, key)
    assert stored is not None
    start = read_output(stored)
    model = ctx.load_model(row.seed, start.state)  # type: ignore[union-attr]
    node = graph.nodes[key]
    task = unlearn_task(ctx, replace(node, forget=chosen), start.mask, None, None)  # type: ignore[union-attr]
    retain, forget_loader, validation = challenge_loaders(task, batch_size or CHALLENGE_BATCH_SIZE)
    return UnlearningTask(
        model,
        start.mask,
        retain,
        forget_loader,
        validation,
        chosen,
        row.pruner,
        row.sparsity,
        row.seed,  # type: ignore[union-attr]
    )
