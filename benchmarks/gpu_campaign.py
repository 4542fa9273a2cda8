"""The GPU campaign in one command: throughput, the CIFAR-10 protocols end to end, leaderboards.

1. Training throughput of the engine against a reference-style DataLoader loop, measured in the
   same run on the same images (``train_throughput.time_engine`` / ``time_baseline``, CIFAR
   ResNet-18), printed with the engine/baseline ratio.
2. ``cifar10-airbench`` (seeds 0, 1, 2) and ``cifar10-resnet18`` (its ``fast`` recipe, one
   seed) through the :class:`~unlearnbench.run.pipeline.Pipeline`, each into
   ``OUT/runs/<protocol>/`` (records, artifacts, ``run.log``). A protocol this checkout does not
   register is reported in one line and skipped.
3. ``unlearnbench publish`` of each protocol's records into ``OUT/leaderboards/<protocol>/``;
   wall times of every step in ``OUT/timings.json``.
4. With ``--pools N``: ``cifar10-airbench`` with the pool metrics (eps-score, KLOM, U-LiRA) and
   pools of N models, seed 0, dense and 95% OMP, no un-pruning (the ``cifar10-airbench-pools``
   board's settings), into ``OUT/runs/cifar10-airbench-pools/`` and its leaderboard
   (``unlearnbench plan`` with those settings prints what it trains); ``--protocols ''`` runs it
   alone.

Example (GPU machine, data extracted from ``cifar10-jpeg.tar.gz`` into /tmp/data)::

    python benchmarks/gpu_campaign.py --data-root /tmp/data --out campaign

CPU smoke check::

    python benchmarks/gpu_campaign.py --data-root /tmp/cifar --out /tmp/campaign --device cpu \\
        --limit 64 --set forget.random10.count=6 --set train.epochs=1 --threads 1 --workers 0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from train_throughput import (
    MODELS,
    channel_stats,
    format_table,
    load_image_folder,
    time_baseline,
    time_engine,
)

from unlearnbench.cli_options import parse_sets, resolve_device
from unlearnbench.cli_publish import registry_defaults
from unlearnbench.config.protocol import load_protocol
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.report.publish import publish
from unlearnbench.run.pipeline import Pipeline, RunSettings

PROTOCOLS = ("cifar10-airbench", "cifar10-resnet18")
DEFAULT_SEEDS = {"cifar10-airbench": [0, 1, 2]}
"""Seeds when ``--seeds`` is not given; other protocols run their own (one seed for resnet18)."""
DEFAULT_REPEATS = {"cifar10-airbench": (2, 5)}
"""(unlearning, evaluation) repetitions of a protocol's board when ``--set`` does not say: the
reproducibility issue's design of >= 3 train seeds x >= 2 unlearning x >= 5 evaluation repetitions."""
POOL_PROTOCOL = "cifar10-airbench"
POOL_BOARD = "cifar10-airbench-pools"
POOL_METRICS = ["ua", "mia-efficacy", "ra", "ta", "fta", "rte", "eps-score", "klom", "u-lira"]
POOL_OVERRIDES: list[tuple[str, Any]] = [
    ("seeds", [0]),
    ("pools.seed_base", 0),  # the protocol's seeds are pool members: their models are computed once
    ("unprune.modes", [False]),
    ("evaluate.metrics", POOL_METRICS),
]
"""``--pools N``: the settings of the published ``cifar10-airbench-pools`` board, N models a pool."""


def throughput(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Engine vs DataLoader baseline on the training images; prints and returns the figures."""
    split, num_classes = load_image_folder(args.data_root, limit=args.limit)
    mean, std = channel_stats(split)
    _, channels, _, size = split.images.shape
    plugin = MODELS["resnet18"]()
    timings = []
    for loop in ("engine", "baseline"):
        torch.manual_seed(0)
        model = plugin.build(num_classes=num_classes, in_channels=channels, image_size=size)
        common = {"epochs": args.throughput_epochs, "warmup": 1, "batch_size": 256}
        if loop == "engine":
            timings.append(time_engine(model, split, device, mean, std, **common))
        else:
            timings.append(time_baseline(model, split, device, mean, std, workers=args.workers, **common))
    print(f"throughput: resnet18 on {len(split)} images, {device}, batch 256")
    print(format_table(timings))
    return {
        t.loop: {"images_per_s": t.images_per_second, "s_per_epoch": t.seconds_per_epoch} for t in timings
    }


def run_protocol(
    registry: Registry,
    name: str,
    args: argparse.Namespace,
    extra: Sequence[tuple[str, Any]] = (),
    board: str | None = None,
) -> list[dict[str, Any]]:
    """Run one protocol end to end into ``OUT/runs/<board>/`` (default: the protocol's name), with
    ``extra`` overrides before ``--set``'s; its log goes to ``run.log`` there."""
    overrides = [*extra, *parse_sets(args.sets)]
    seeds = args.seeds or DEFAULT_SEEDS.get(name)
    if seeds and not extra:
        overrides.append(("seeds", seeds))
    if name in DEFAULT_REPEATS and not extra:
        unlearn, evaluate = DEFAULT_REPEATS[name]
        overrides = [("unlearn.repeats", unlearn), ("evaluate.repeats", evaluate), *overrides]
    if args.limit:
        overrides.append(("data.limit", args.limit))
    protocol = load_protocol(registry.protocol_path(name), overrides, registry)
    out = args.out / "runs" / (board or name)
    out.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(out / "run.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        settings = RunSettings(
            out=out, device=resolve_device(args.device), data_root=args.data_root, download=False
        )
        pipeline = Pipeline(protocol, registry, settings)
        list(pipeline.run())
        return pipeline.results.records()
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-root", type=Path, required=True, help="CIFAR-10 (pickles or train/ test/ image folders)"
    )
    parser.add_argument("--out", type=Path, default=Path("gpu-campaign"), help="output folder")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--limit", type=int, help="at most N examples per split (smoke runs)")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="comma-separated protocol names")
    parser.add_argument(
        "--seeds", type=lambda s: [int(x) for x in s.split(",")], help="e.g. 0,1,2 (all protocols)"
    )
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE", help="override"
    )
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument(
        "--workers", type=int, default=4, help="DataLoader workers of the throughput baseline"
    )
    parser.add_argument("--throughput-epochs", type=int, default=2, help="timed epochs per throughput loop")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--pools",
        type=int,
        default=0,
        metavar="N",
        help=f"after the protocols, the {POOL_BOARD} board with pools of N models (0: skip)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(resolve_device(args.device))
    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(
        f"gpu campaign: device {device} ({where}); data {args.data_root}; limit {args.limit}; out {args.out}"
    )
    timings: dict[str, Any] = {"device": str(device), "device_name": where, "limit": args.limit}
    if not args.skip_throughput:
        started = time.perf_counter()
        timings["throughput"] = throughput(args, device)
        timings["throughput_s"] = time.perf_counter() - started
    registry = Registry(create_host())
    failures = 0
    jobs: list[tuple[str, str, list[tuple[str, Any]]]] = [
        (name, name, []) for name in (p.strip() for p in args.protocols.split(",")) if name
    ]
    if args.pools:
        jobs.append((POOL_PROTOCOL, POOL_BOARD, [*POOL_OVERRIDES, ("pools.size", args.pools)]))
    for name, board_name, extra in jobs:
        if name not in registry.protocol_names():
            print(
                f"{name}: not registered in this checkout "
                f"(registered: {', '.join(registry.protocol_names())}); skipped"
            )
            continue
        started = time.perf_counter()
        try:
            records = run_protocol(registry, name, args, extra, board_name)
        except UnlearnbenchError as exc:
            print(f"{board_name}: {exc}; skipped")
            failures += 1
            continue
        run_s = time.perf_counter() - started
        failed = sum(r["status"] != "ok" for r in records)
        failures += failed
        board = args.out / "leaderboards" / board_name
        publish(board, records, registry_defaults(records))
        timings[board_name] = {
            "run_s": run_s,
            "rows": len(records),
            "failed": failed,
            "seeds": sorted({r["seed"] for r in records}),
        }
        print(
            f"{board_name}: {len(records)} rows ({failed} failed) in {run_s:.1f} s; "
            f"leaderboard {board}/README.md"
        )
    (args.out / "timings.json").write_text(json.dumps(timings, indent=1, sort_keys=True) + "\n")
    print(f"timings: {args.out / 'timings.json'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
