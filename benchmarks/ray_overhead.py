"""Local vs Ray executor on a digits matrix (3 seeds x 2 sparsities by default), in one run.

For each executor the same matrix runs into its own empty output folder (cold: every node
computed), then once more into the same folder (warm: every node read from the store). The
script prints the wall time of each, the ratio Ray/local, how many nodes of each stage were
computed (each shared node - the original per seed, the retrain reference per row group - must
be computed exactly once), and the Ray scheduling overhead per node: (warm Ray wall - warm local
wall) / nodes, the cost of one task round-trip when the node itself does nothing but a store
look-up.

On a 2-core machine expect little gain, or a loss: Ray runs at most two nodes at once, starts
worker processes that each rebuild the run context (load the data, draw the forget sets), and
the matrix's nodes are short. The gain comes with more cores, GPUs, or a cluster.

Example::

    OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py --epochs 5 --num-cpus 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
import types
from collections import Counter
from pathlib import Path

from unlearnbench import hookimpl
from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.events import StageFinished
from unlearnbench.registry.host import create_host
from unlearnbench.run.pipeline import Pipeline, RunSettings


def recorder(events: list[StageFinished]) -> types.ModuleType:
    plugin = types.ModuleType("ray_overhead_recorder")

    @hookimpl
    def unlearnbench_stage_finished(event: StageFinished) -> None:
        events.append(event)

    plugin.unlearnbench_stage_finished = unlearnbench_stage_finished  # type: ignore[attr-defined]
    return plugin


def run(out: Path, overrides: list, executor: str) -> tuple[float, list[StageFinished], int, int]:
    events: list[StageFinished] = []
    registry = Registry(create_host(plugins=[recorder(events)]))
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    start = time.perf_counter()
    pipeline = Pipeline(protocol, registry, RunSettings(out=out), executor=executor)
    records = list(pipeline.run())
    wall = time.perf_counter() - start
    assert all(r["status"] == "ok" for r in records), [r["error"] for r in records if r["error"]]
    return wall, events, len(pipeline.graph.nodes), len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sparsities", default="0.5,0.9")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=0, help="examples per split (0: all)")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    overrides = [
        ("seeds", list(range(args.seeds))),
        ("prune.sparsities", [float(s) for s in args.sparsities.split(",")]),
        ("train.epochs", args.epochs),
        ("data.limit", args.limit),
    ]
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for executor in ("local", "ray"):
            out = Path(tmp) / executor
            cold, events, nodes, rows = run(out, overrides, executor)
            warm, again, _, _ = run(out, overrides, executor)
            walls[executor] = (cold, warm)
            computed = Counter(e.key for e in events if not e.reused)
            by_stage = Counter(e.stage for e in events if not e.reused)
            print(
                f"{executor:5s}: {rows} rows, {nodes} nodes; cold {cold:7.1f} s, warm {warm:6.2f} s; "
                f"events {len(events)} (max computations of one node: {max(computed.values())}); "
                f"warm run computed {sum(not e.reused for e in again)}"
            )
            print(f"       computed per stage: {dict(sorted(by_stage.items()))}")
    ray.shutdown()
    ratio = walls["ray"][0] / walls["local"][0]
    overhead = (walls["ray"][1] - walls["local"][1]) / nodes
    print(f"ray/local wall time (cold): {ratio:.2f}x on {args.num_cpus} CPUs")
    print(f"ray scheduling overhead: {1000 * overhead:.1f} ms per node (warm runs, {nodes} nodes)")


if __name__ == "__main__":
    main()
