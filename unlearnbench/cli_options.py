"""The options of ``unlearnbench run`` and ``unlearnbench plan`` (their values are resolved by
:mod:`unlearnbench.run.request`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from unlearnbench.run.request import (
    DEFAULT_PROTOCOL,
    load_run,
    parse_seeds,
    parse_sets,
    parse_sparsities,
    resolve_device,
    split_names,
    with_defaults,
)

__all__ = [
    "DEFAULT_PROTOCOL",
    "load_run",
    "parse_seeds",
    "parse_sets",
    "parse_sparsities",
    "resolve_device",
    "run_options",
    "split_names",
    "with_defaults",
]


def run_options(command: Any) -> Any:
    """The options ``run`` and ``plan`` share."""
    options = [
        click.argument("protocol", default=DEFAULT_PROTOCOL),
        click.option(
            "--pruner",
            "pruners",
            multiple=True,
            help="Pruner(s) to run (default: the protocol's); commas allowed, +NAME adds to the protocol's.",
        ),
        click.option(
            "--sparsity",
            "sparsities",
            multiple=True,
            help="Target sparsity in [0, 1); repeat or comma-separate.",
        ),
        click.option(
            "--unlearner",
            "unlearners",
            multiple=True,
            help="Unlearner(s) to run (default: the protocol's); commas allowed, +NAME adds.",
        ),
        click.option(
            "--unpruner",
            "unpruners",
            multiple=True,
            help="Un-pruner(s) to run (default: the protocol's); commas allowed, +NAME adds.",
        ),
        click.option(
            "--metric",
            "metrics",
            multiple=True,
            help="Metric(s) to compute (default: the protocol's); commas allowed, +NAME adds.",
        ),
        click.option(
            "--unprune/--no-unprune",
            default=None,
            help="Only with / only without un-pruning (default: both).",
        ),
        click.option(
            "--seed",
            "seeds",
            multiple=True,
            help="Train seed(s) (default: the protocol's); commas, +N adds.",
        ),
        click.option(
            "--unlearn-repeats",
            type=int,
            help="Unlearning repetitions per train seed, each with its own seed (unlearn.repeats; 1).",
        ),
        click.option(
            "--eval-repeats",
            type=int,
            help="Evaluation repetitions per model, evaluation seeds 0..K-1 (evaluate.repeats; default 1).",
        ),
        click.option(
            "--precision",
            type=click.Choice(["auto", "bf16", "fp32"]),
            default="auto",
            show_default=True,
            help="Training precision: bf16 autocast, fp32, or auto (bf16 where the device runs it natively).",
        ),
        click.option(
            "--deterministic",
            is_flag=True,
            help="torch deterministic algorithms and a fixed thread count per node (1 unless --threads).",
        ),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option(
            "--data-root", type=click.Path(path_type=Path), help="Folder holding an existing dataset copy."
        ),
        click.option(
            "--download/--no-download", default=True, show_default=True, help="Download missing datasets."
        ),
        click.option(
            "--out",
            type=click.Path(path_type=Path),
            default=Path("unlearnbench-out"),
            show_default=True,
            help="Output folder: results.jsonl, leaderboard.md and the artifact cache (artifacts/).",
        ),
        click.option(
            "--artifacts",
            "artifact_root",
            help="Artifact store: a folder or an fsspec URL shared by a cluster (default: OUT/artifacts).",
        ),
        click.option(
            "--limit", type=click.IntRange(min=1), help="At most N examples per split (smoke runs)."
        ),
        click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a protocol field."),
        click.option(
            "--executor",
            type=click.Choice(["local", "ray"]),
            default="local",
            show_default=True,
            help="Run the graph in this process, or as one Ray task per node.",
        ),
        click.option("--ray-address", help="Join this Ray cluster (e.g. auto); default: start a local Ray."),
        click.option(
            "--overrides",
            "override_file",
            type=click.Path(path_type=Path),
            help="A TOML override file (e.g. written by `unlearnbench tune`), applied before --set.",
        ),
        click.option(
            "--threads",
            type=int,
            help="CPU threads for torch (default: half the free cores, 1 or 2; 1 on a two-core machine).",
        ),
        click.option(
            "--rerun",
            "rerun",
            multiple=True,
            metavar="STAGE[,STAGE]",
            help="Recompute the nodes of these stages and their dependents even when cached.",
        ),
        click.option("--force", is_flag=True, help="Recompute every node even when cached."),
        click.option(
            "--timeout",
            "timeouts",
            multiple=True,
            metavar="[STAGE=]SECONDS",
            help="Fail a node of STAGE (every stage without STAGE=) that runs longer than SECONDS.",
        ),
        click.option(
            "--original",
            "original",
            metavar="PATH|hf:REPO",
            help="Use this pretrained original (a state_dict file, an exported folder, or hf:OWNER/REPO"
            "[@REV][/SUBFOLDER] through huggingface_hub) instead of training one; keyed by its sha256.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command
