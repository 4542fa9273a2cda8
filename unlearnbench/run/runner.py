"""The runner: executes a run graph over the artifact store and turns evaluated rows into records.

An executor (:class:`LocalExecutor`, or ``unlearnbench.run.ray_executor.RayExecutor``) yields a
:class:`NodeOutcome` per node once the node is ready (computed, read from the store, or
failed); a node fails only when it raises or one of its parents failed, so every other row
survives. The :class:`Runner` announces each finished node once (``unlearnbench_stage_finished``)
and records each row as soon as its evaluate node is done.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from unlearnbench.errors import InvalidValueError
from unlearnbench.paths import inside
from unlearnbench.registry.events import ResultReady, StageFinished
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.results import ResultsFile, device_name
from unlearnbench.run.artifacts import Artifact, ArtifactStore
from unlearnbench.run.context import RunContext
from unlearnbench.run.faults import NodeTimeout, culprit, folder_identity, time_limit
from unlearnbench.run.plan import Graph, Node
from unlearnbench.run.records import build_record
from unlearnbench.run.stages import STAGES, GuardError, ModelArtifact, Output
from unlearnbench.training.masks import Mask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeOutcome:
    """How a node ended: ``error`` is None when its artifact is ready (``reused`` from the store)."""

    key: str
    stage: str
    component: str
    error: str | None
    reused: bool = False
    seconds: float = 0.0
    path: str = ""
    unreadable: str = ""
    """The key of a parent artifact that matched its checksums but did not load (moved aside)."""


class Emit(Protocol):
    def __call__(self, hook_name: str, **kwargs: Any) -> None: ...


class Executor(Protocol):
    def execute(self, graph: Graph) -> Iterator[NodeOutcome]: ...


def read_output(artifact: Artifact) -> Output:
    """A stored node's output: its payload, or its weights, mask and extra tensors."""
    if "payload" in artifact.meta:
        return dict(artifact.meta["payload"])
    names = artifact.names()

    def load(name: str) -> object:
        return torch.load(artifact.open(name), map_location="cpu", weights_only=True)

    state = load("model.pt")
    mask = Mask.from_state_dict(load("mask.pt")) if "mask.pt" in names else None  # type: ignore[arg-type]
    extra = {n[:-3]: load(n) for n in names if n.endswith(".pt") and n not in ("model.pt", "mask.pt")}
    runtime = float(artifact.meta["runtime_s"])
    found = dict(artifact.meta.get("provenance") or {})
    return ModelArtifact(artifact.key, state, mask, runtime, extra, provenance=found)  # type: ignore[arg-type]


def provenance(ctx: RunContext, seconds: float, trained: tuple[int, int] = (0, 0)) -> dict[str, object]:
    """What computed a node: device, torch threads, precision, wall time, when it finished, and
    what it trained since the engine's tally stood at ``trained`` (epochs, curve length): its
    ``epochs`` and its ``val_curve`` (description, epoch, validation accuracy after each epoch)."""
    tally = ctx.engine.tally
    found: dict[str, object] = {
        "device": device_name(ctx.engine.device),
        "threads": torch.get_num_threads(),
        "precision": "bf16-autocast" if ctx.engine.bf16 else "fp32",
        "runtime_s": seconds,
        "computed_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "epochs": tally.epochs - trained[0],
    }
    if len(tally.curve) > trained[1]:
        found["val_curve"] = [list(point) for point in tally.curve[trained[1] :]]
    return found


def materialise(ctx: RunContext, store: ArtifactStore, node: Node, parents: Mapping[str, Output]) -> Artifact:
    """Compute the node from its ``parents``' outputs and store it with its provenance; the
    artifact already stored (if any) is replaced only once the new one is complete."""
    start, trained = time.perf_counter(), (ctx.engine.tally.epochs, len(ctx.engine.tally.curve))
    produced = STAGES[node.stage](ctx, node, parents)
    seconds = time.perf_counter() - start
    made = {
        "runtime_s": seconds,
        "component": node.component,
        "provenance": provenance(ctx, seconds, trained),
    }

    def write(folder: Path) -> dict[str, object]:
        if isinstance(produced, ModelArtifact):
            torch.save(produced.state, folder / "model.pt")
            if produced.mask is not None:
                produced.mask.save(folder / "mask.pt")
            for name, value in produced.extra.items():
                torch.save(value, inside(folder, f"{name}.pt"))
            return {**made, **produced.meta}
        return {**made, "payload": produced}

    return store.put(node.stage, node.key, node.inputs, write)


def run_node(
    ctx: RunContext,
    store: ArtifactStore,
    node: Node,
    parents: Mapping[str, Artifact | Pending],
    fresh: bool = False,
) -> NodeOutcome:
    """Read the node from the store (unless ``fresh``) or compute it under the node's lock (a
    process that waited for another's computation reuses it); a raised error becomes a failed
    outcome (a guard's names its culprit and needs no traceback)."""
    try:
        lazy = LazyParents({r: p if isinstance(p, Pending) else Pending(p) for r, p in parents.items()})

        def compute() -> Artifact:
            with time_limit(ctx.settings.timeouts.get(node.stage)):
                return materialise(ctx, store, node, lazy)

        artifact, reused = store.obtain(node.stage, node.key, compute, fresh)
    except NodeTimeout as exc:
        error = (
            f"{node.stage} ({node.component}) did not finish within {exc.seconds:g} s"
            f"{culprit(exc)}; --timeout {node.stage}=SECONDS sets the limit"
        )
        log.error("%s", error)
        return NodeOutcome(node.key, node.stage, node.component, error)
    except UnreadableArtifact as exc:  # moved aside like a corrupt one, so the next run recomputes it
        bad = exc.artifact
        store._quarantine(bad.path, f"matches its checksums but does not load ({exc})")
        error = (
            f"{node.stage} ({node.component}): its parent {bad.stage} artifact {bad.key[:12]} does not "
            f"load ({exc}); it was moved aside, run again to recompute it"
        )
        log.error("%s", error)
        return NodeOutcome(node.key, node.stage, node.component, error, unreadable=bad.key)
    except GuardError as exc:
        return NodeOutcome(node.key, node.stage, node.component, str(exc))
    except Exception as exc:
        error = f"{node.stage} ({node.component}) failed: {type(exc).__name__}: {exc}"
        # without the output folder the runner stops with one message (no traceback per node)
        log.error("%s", error, exc_info=exc if Path(ctx.settings.out).is_dir() else None)
        return NodeOutcome(node.key, node.stage, node.component, error)
    seconds = float(artifact.meta["runtime_s"])
    return NodeOutcome(node.key, node.stage, node.component, None, reused, seconds, str(artifact.path))


class Pending:
    """An artifact whose output is read on first use (a reused node's parents are never read)."""

    def __init__(self, artifact: Artifact) -> None:
        self.artifact = artifact
        self.value: Output | None = None

    def get(self) -> Output:
        if self.value is None:
            try:
                self.value = read_output(self.artifact)
            except Exception as exc:  # its checksums matched, yet it does not load
                raise UnreadableArtifact(self.artifact, exc) from exc
        return self.value


class UnreadableArtifact(Exception):
    """A stored artifact whose files match their sha256 but do not load (e.g. written by a
    torch that this one cannot read)."""

    def __init__(self, artifact: Artifact, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.artifact = artifact


class LazyParents(dict):  # type: ignore[type-arg]
    """Parents by role, each read from the store only when the stage looks it up."""

    def __getitem__(self, role: str) -> Output:
        return super().__getitem__(role).get()


class LocalExecutor:
    """Runs the nodes one after the other in this process, in the order of the rows; each
    output is read once and dropped when no later node needs it."""

    def __init__(self, ctx: RunContext, store: ArtifactStore, fresh: frozenset[str] = frozenset()) -> None:
        self.ctx = ctx
        self.store = store
        self.fresh = fresh
        """Keys to recompute even when stored (``--rerun``, ``--force``)."""

    def execute(self, graph: Graph) -> Iterator[NodeOutcome]:
        order = graph.order()
        waiting: dict[str, int] = {}
        for node in order:
            for _, parent in node.parents:
                waiting[parent] = waiting.get(parent, 0) + 1
        ready: dict[str, Pending] = {}
        errors: dict[str, str] = {}
        for node in order:
            broken = next((errors[p] for _, p in node.parents if p in errors), None)
            if broken is not None:
                outcome = NodeOutcome(node.key, node.stage, node.component, broken)
            else:
                parents = {r: ready[k] for r, k in node.parents}
                outcome = run_node(self.ctx, self.store, node, parents, node.key in self.fresh)
                again = self._recompute(graph, outcome.unreadable) if outcome.unreadable else None
                if again is not None:
                    ready[outcome.unreadable] = Pending(again)
                    parents = {r: ready[k] for r, k in node.parents}
                    outcome = run_node(self.ctx, self.store, node, parents, node.key in self.fresh)
            if outcome.error is not None:
                errors[node.key] = outcome.error
            else:
                found = self.store.get(node.stage, node.key)
                assert found is not None
                ready[node.key] = Pending(found)
            for _, parent in node.parents:
                waiting[parent] -= 1
                if waiting[parent] == 0:
                    ready.pop(parent, None)
            yield outcome

    def _recompute(self, graph: Graph, key: str) -> Artifact | None:
        """Compute node ``key`` again (its artifact was moved aside) from its parents in the
        store; its new artifact, or None when that fails."""
        node = graph.nodes.get(key)
        if node is None:
            return None
        found = {r: self.store.get(graph.nodes[k].stage, k) for r, k in node.parents if k in graph.nodes}
        parents = {r: Pending(a) for r, a in found.items() if a is not None}
        if len(parents) != len(node.parents):
            return None
        outcome = run_node(self.ctx, self.store, node, parents, fresh=True)
        if outcome.error is not None:
            return None
        log.info(
            "node %s (%s) %s recomputed: its artifact did not load", node.stage, node.component, key[:12]
        )
        return self.store.get(node.stage, key)


class Runner:
    """Drives an executor over a graph: stage events once per node, a record per row."""

    def __init__(
        self,
        ctx: RunContext,
        graph: Graph,
        store: ArtifactStore,
        results: ResultsFile,
        emit: Emit,
    ) -> None:
        self.ctx, self.graph, self.store, self.results, self.emit = ctx, graph, store, results, emit

    def run(self, executor: Executor) -> Iterator[ResultRecord]:
        rows_of: dict[str, list[int]] = {}
        for i, plan in enumerate(self.graph.rows):
            rows_of.setdefault(plan.evaluate, []).append(i)
        total = len(self.graph.nodes)
        out = self.results.path.parent
        present = folder_identity(out)
        for done, outcome in enumerate(executor.execute(self.graph), 1):
            now = folder_identity(out)
            if present is not None and (now is None or now[:2] != present[:2] or not present[2] <= now[2]):
                # gone, or recreated (the store makes its folders again) without what it held
                raise InvalidValueError(
                    f"--out {out} was removed during the run (after {done - 1} of {total} nodes); "
                    "nothing more is recorded, run again to recompute what was lost"
                )
            how = "reused" if outcome.reused else f"computed in {outcome.seconds:.1f} s"
            log.info(
                "node %d/%d %s (%s) %s %s",
                done,
                total,
                outcome.stage,
                outcome.component,
                outcome.key[:12],
                how if outcome.error is None else f"FAILED: {outcome.error}",
            )
            if outcome.error is None:
                event = StageFinished(
                    outcome.stage,
                    outcome.component,
                    outcome.key,
                    Path(outcome.path),
                    outcome.seconds,
                    outcome.reused,
                )
                self.emit("unlearnbench_stage_finished", event=event)
            for i in rows_of.get(outcome.key, []):
                error = None if outcome.error is None else f"StageFailed: {outcome.error}"
                plan = self.graph.rows[i]
                used = self.graph.ancestors(plan.evaluate)
                for eval_seed in plan.eval_seeds:  # one record per evaluation repetition
                    record = build_record(self.ctx, self.store, plan, error, used, eval_seed)
                    self.results.put(record.to_dict())
                    event = ResultReady(record.to_dict(), self.results.path)
                    self.emit("unlearnbench_result_ready", event=event)
                    yield record
