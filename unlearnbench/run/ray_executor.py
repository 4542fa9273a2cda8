"""The Ray executor: one Ray task per node of the run graph.

A task waits for its parents' tasks (their outcomes are its arguments), reads their artifacts
from the shared artifact store, computes its node there and returns a small
:class:`~unlearnbench.run.runner.NodeOutcome`. A node shared by many rows (the original model,
a reference, a pool model) is one task, computed once. Each worker process rebuilds the run
context from the protocol and the settings once (:func:`~unlearnbench.run.context.context_for`);
a node already in the store is reported as reused without loading anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from unlearnbench.config.protocol import Protocol
from unlearnbench.run.artifacts import ArtifactStore
from unlearnbench.run.context import RunSettings, context_for
from unlearnbench.run.plan import Graph, Node
from unlearnbench.run.runner import NodeOutcome, run_node

log = logging.getLogger(__name__)

STAGE_RESOURCES: dict[str, tuple[float, float]] = {
    "original": (1, 1.0),
    "retain-dense": (1, 1.0),
    "prune": (1, 1.0),
    "retain-topology": (1, 1.0),
    "unlearn": (1, 1.0),
    "unprune": (1, 1.0),
    "pool-shadow": (1, 1.0),
    "pool": (1, 0.5),
    "evaluate": (1, 0.5),
}
"""(CPUs, GPUs) of a stage's task; the GPU share applies only when the device is CUDA. A task
holds the run's thread count of CPUs (``RunSettings.threads``) whatever this table says."""


CONNECT_TIMEOUT_S = 5.0
"""How long the check before a run waits for a cluster's address to accept a connection."""


def check_ray_address(address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Before any work: Ray is installed and a ``HOST:PORT`` (or ``ray://HOST:PORT``) address
    accepts a TCP connection within ``timeout``; one clear error otherwise (``ray.init`` would
    retry for minutes). ``auto`` and no address are left to Ray."""
    import importlib.util
    import socket

    from unlearnbench.errors import InvalidValueError

    if importlib.util.find_spec("ray") is None:
        raise InvalidValueError("--executor ray: Ray is not installed; pip install 'unlearnbench[ray]'")
    if not address or address == "auto" or address.startswith("local"):
        return
    target = address.removeprefix("ray://").rstrip("/")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidValueError(
            f"--ray-address {address!r} is not HOST:PORT, ray://HOST:PORT or auto (e.g. 10.0.0.1:6379)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InvalidValueError(
            f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
            "with `ray start --head` or drop --ray-address to start a local Ray"
        ) from None


def run_remote(
    protocol: Protocol, settings: RunSettings, node: Node, fresh: bool, *parents: NodeOutcome
) -> NodeOutcome:
    """A node's task: failed with its first failed parent, reused (unless ``fresh``), or computed."""
    broken = next((p.error for p in parents if p.error is not None), None)
    if broken is not None:
        return NodeOutcome(node.key, node.stage, node.component, broken)
    store = ArtifactStore(settings.artifacts)
    found = None if fresh else store.get(node.stage, node.key)
    if found is not None:
        seconds = float(found.meta["runtime_s"])
        return NodeOutcome(node.key, node.stage, node.component, None, True, seconds, str(found.path))
    artifacts = {}
    for (role, _), parent in zip(node.parents, parents, strict=True):
        artifact = store.get(parent.stage, parent.key)
        if artifact is None:
            return NodeOutcome(
                node.key, node.stage, node.component, f"parent {parent.key[:12]} is not in the store"
            )
        artifacts[role] = artifact
    return run_node(context_for(protocol, settings), store, node, artifacts, fresh)


class RayExecutor:
    """Submits every node as a Ray task and yields outcomes as they complete.

    ``address`` joins a running cluster (``auto``, ``ray://host:10001``); without it a local Ray
    starts (or the one already started in this process is used).
    """

    def __init__(
        self,
        protocol: Protocol,
        settings: RunSettings,
        store: ArtifactStore,
        *,
        address: str | None = None,
        fresh: frozenset[str] = frozenset(),
    ) -> None:
        self.fresh = fresh
        self.protocol = protocol
        self.settings = settings
        self.store = store
        self.address = address

    def _ray(self) -> Any:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        return ray

    def execute(self, graph: Graph) -> Iterator[NodeOutcome]:
        ray = self._ray()
        task = ray.remote(run_remote)
        protocol, settings = ray.put(self.protocol), ray.put(self.settings)
        gpu = self.settings.device.startswith("cuda")
        refs: dict[str, Any] = {}
        nodes: dict[Any, Node] = {}
        # each task runs at the run's thread count (as the local executor would), holding as many CPUs
        threads = min(self.settings.threads or 1, max(1, int(ray.cluster_resources().get("CPU", 1))))
        for node in graph.order():
            _, gpus = STAGE_RESOURCES.get(node.stage, (1, 1.0))
            cpus = threads
            ref = task.options(num_cpus=cpus, num_gpus=gpus if gpu else 0, max_retries=0).remote(
                protocol, settings, node, node.key in self.fresh, *[refs[key] for _, key in node.parents]
            )
            refs[node.key] = ref
            nodes[ref] = node
        pending = list(refs.values())
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            node = nodes[done[0]]
            try:
                yield ray.get(done[0])
            except Exception as exc:  # the worker died, or a parent's task did
                error = f"{node.stage} ({node.component}) failed: {type(exc).__name__}: {exc}".splitlines()[0]
                log.error("%s", error)
                yield NodeOutcome(node.key, node.stage, node.component, error)
