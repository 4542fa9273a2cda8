"""The run: build the context, plan the graph, execute it, record the rows.

prepare data and forget sets -> train the original -> prune -> references -> unlearn ->
un-prune -> evaluate, every node cached as an artifact keyed by its inputs. A component that
raises fails the rows that depend on it; every other row and every finished artifact survives,
and a second run recomputes nothing already done.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from unlearnbench.config.protocol import Protocol
from unlearnbench.errors import UnknownChoiceError
from unlearnbench.progress import ProgressSink
from unlearnbench.registry.catalog import Registry
from unlearnbench.report.results import ResultsFile
from unlearnbench.run.artifacts import ArtifactStore
from unlearnbench.run.context import RunContext, RunSettings
from unlearnbench.run.external import ModelFactory
from unlearnbench.run.plan import Graph, plan
from unlearnbench.run.runner import Executor, LocalExecutor, Runner
from unlearnbench.run.stages import STAGES

EXECUTORS = ("local", "ray")

__all__ = ["EXECUTORS", "Pipeline", "RunSettings"]


def fresh_keys(graph: Graph, rerun: Sequence[str], force: bool) -> frozenset[str]:
    """The nodes to recompute even when stored: every node (``force``), or the nodes of the
    ``rerun`` stages and everything downstream of them."""
    if force:
        return frozenset(graph.nodes)
    chosen = {key for key, node in graph.nodes.items() if node.stage in rerun}
    return frozenset(chosen.union(*(graph.dependents(key) for key in chosen)))


class Pipeline:
    """Runs one protocol's row matrix; construct, then iterate :meth:`run` or call it.

    ``executor``: ``local`` (this process) or ``ray`` (one Ray task per node; ``ray_address``
    joins a cluster, otherwise a local Ray starts). ``rerun`` names stages to recompute with
    their dependents even when stored; ``force`` recomputes every node. ``factories`` are
    in-process model factories of external models (by the name their ``factory`` gives).
    """

    def __init__(
        self,
        protocol: Protocol,
        registry: Registry,
        settings: RunSettings,
        *,
        progress: ProgressSink | None = None,
        executor: str = "local",
        ray_address: str | None = None,
        rerun: Sequence[str] = (),
        force: bool = False,
        factories: Mapping[str, ModelFactory] | None = None,
    ) -> None:
        if executor not in EXECUTORS:
            raise UnknownChoiceError("executor", executor, EXECUTORS)
        for stage in rerun:
            if stage not in STAGES:
                raise UnknownChoiceError("--rerun stage", stage, sorted(STAGES))
        self.protocol = protocol
        self.registry = registry
        self.settings = settings
        self.ctx = RunContext(protocol, registry, settings, progress=progress, factories=factories)
        self.progress = self.ctx.progress
        self.store = ArtifactStore(settings.artifacts)
        self.results = ResultsFile(settings.out / "results.jsonl")
        self.graph: Graph = plan(protocol, self.ctx.plan_inputs())
        self.executor_name = executor
        self.ray_address = ray_address
        self.fresh = fresh_keys(self.graph, rerun, force)

    @property
    def data(self) -> Any:
        return self.ctx.data

    def executor(self) -> Executor:
        if self.executor_name == "ray":
            from unlearnbench.run.ray_executor import RayExecutor

            return RayExecutor(
                self.protocol, self.settings, self.store, address=self.ray_address, fresh=self.fresh
            )
        return LocalExecutor(self.ctx, self.store, self.fresh)

    def run(self) -> Iterator[dict[str, Any]]:
        """Evaluate every row, writing each record to ``results.jsonl`` as it completes."""
        self.ctx.save_forget_sets()
        runner = Runner(self.ctx, self.graph, self.store, self.results, self.registry.host.emit)
        task = self.progress.start(f"{self.protocol.name}: rows", len(self.graph.rows))
        for record in runner.run(self.executor()):
            self.progress.advance(task)
            yield record.to_dict()
        self.progress.finish(task)
