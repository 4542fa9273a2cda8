"""Cost of model pools: one pool model, and whole pools of N models, on a protocol's setting.

Trains retrain-pool members exactly as a pool stage does (``unlearnbench.run.pools.train_member``:
the protocol's model, recipe and retain set of its first forget set, seeds ``pools.seed_base``
onwards), sequentially on one device, and prints the seconds per pool for each N in ``--sizes``,
the seconds per model, and the ratio of each pool's time to the N = 1 pool measured in the same
run (linear growth gives a ratio of N). ``--epochs`` shortens the recipe for a quick look; the
defaults time the protocol's own recipe.

Examples::

    python benchmarks/pool_cost.py                       # digits-quickstart, N = 1, 2, 4, 8
    python benchmarks/pool_cost.py --epochs 2 --sizes 1,2,4
    python benchmarks/pool_cost.py cifar10-resnet18 --device cuda --sizes 1,4 --data-root DIR
    python benchmarks/pool_cost.py cifar10-airbench --data-root DIR --epochs 1 --sizes 1,2

It then plans the protocol's run graph with the pool metrics (``eps-score``, ``klom``, ``u-lira``)
at each N, without running it, and prints the nodes that exist only for pools and their share of
the graph's planned cost (training example-passes, epochs x images; ``unlearnbench plan`` shows the
same per node).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from unlearnbench.config.protocol import load_protocol
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.run.context import RunContext, RunSettings
from unlearnbench.run.plan import plan
from unlearnbench.run.pool_plan import pool_only
from unlearnbench.run.pools import PoolSpec, train_member


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", nargs="?", default="digits-quickstart")
    parser.add_argument("--sizes", default="1,2,4,8", help="Pool sizes N, comma-separated.")
    parser.add_argument("--epochs", type=int, help="Override the recipe's epochs (default: the protocol's).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-root", type=Path, help="An existing copy of the protocol's dataset.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    registry = Registry(create_host(autoload=True))
    protocol = load_protocol(registry.protocol_path(args.protocol), (), registry)
    recipe = protocol.pool_recipe or protocol.recipe
    if args.epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=args.epochs)
    settings = RunSettings(
        out=Path(tempfile.gettempdir()), device=args.device, data_root=args.data_root, download=False
    )
    ctx = RunContext(protocol, registry, settings)  # the data, splits and engine a run uses
    retain, engine = ctx.splits(protocol.forget[0].name)["retain"], ctx.engine

    def new_model(seed: int) -> nn.Module:
        return ctx.new_model_factory(seed)()

    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"{protocol.name}: {protocol.model.name}, retain set of {protocol.forget[0].name} "
        f"({len(retain)} images), {recipe.epochs} epochs, batch {recipe.batch_size}, {args.device}"
    )
    # one untimed model first, so start-up costs (allocator, kernels) are not in N = 1
    train_member(0, retain.head(recipe.batch_size), engine=engine, recipe=recipe, new_model=new_model)
    times: dict[int, float] = {}
    for n in sizes:
        spec = PoolSpec("retrain", n, protocol.recipe_name, seed_base=protocol.pools.seed_base)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for seed in spec.seeds:
            train_member(seed, retain, engine=engine, recipe=recipe, new_model=new_model)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times[n] = time.perf_counter() - start
    base = times[sizes[0]] / sizes[0]
    print(f"{'N':>4} {'pool s':>9} {'s/model':>9} {'ratio vs N=1':>13} {'linear':>7}")
    for n in sizes:
        ratio = times[n] / base
        print(f"{n:>4} {times[n]:>9.2f} {times[n] / n:>9.2f} {ratio:>13.2f} {n:>7}")
    graph_costs(registry, args.protocol, sizes, settings)


def graph_costs(registry: Registry, name: str, sizes: list[int], settings: RunSettings) -> None:
    """The planned cost of pool nodes in the protocol's graph with the pool metrics, per N."""
    metrics = ["ua", "mia-efficacy", "ra", "ta", "eps-score", "klom", "u-lira"]
    print(f"graph of {name} with {', '.join(metrics)} (planned, not run):")
    print(f"{'N':>4} {'pool nodes':>11} {'pool models':>12} {'pool cost':>12} {'row cost':>11} {'ratio':>7}")
    for n in sorted({max(n, 2) for n in sizes}):  # a pool has at least 2 models
        sets = [("evaluate.metrics", metrics), ("pools.size", n)]
        protocol = load_protocol(registry.protocol_path(name), sets, registry)
        graph = plan(protocol, RunContext(protocol, registry, settings).plan_inputs())
        pooled = [graph.nodes[k] for k in pool_only(graph)]
        pool_cost = sum(node.cost for node in pooled)
        row_cost = sum(node.cost for node in graph.nodes.values()) - pool_cost
        models = sum(node.stage != "pool" for node in pooled)
        pools = len(pooled) - models
        ratio = pool_cost / row_cost
        print(f"{n:>4} {pools:>11} {models:>12} {pool_cost:>12,} {row_cost:>11,} {ratio:>7.1f}")


if __name__ == "__main__":
    main()
