"""``unlearnbench study``: sweeps of whole runs that test a claim (prints; the work is in
:mod:`unlearnbench.study`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from unlearnbench.cli_options import DEFAULT_PROTOCOL, load_run
from unlearnbench.errors import InvalidValueError, UnlearnbenchError

console = Console()
err_console = Console(stderr=True)


def parse_fractions(text: str) -> tuple[float, ...]:
    """``0.010,0.011`` as floats; a bad entry is one clear error."""
    out = []
    for part in text.split(","):
        try:
            out.append(float(part))
        except ValueError:
            raise InvalidValueError(f"--fractions entry {part!r} is not a number in (0, 1)") from None
    return tuple(out)


@click.group("study")
def study_group() -> None:
    """Sweeps of whole runs that test a claim about a metric."""


@study_group.command("mia-stability")
@click.argument("protocol", default=DEFAULT_PROTOCOL)
@click.option("--fractions", default="0.010,0.011,0.012,0.013,0.014,0.015", show_default=True,
              help="Forget-set sizes as fractions of the training pool, comma-separated.")  # fmt: skip
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed(s) (default: 0, 1, 2).")
@click.option("--unlearner", "unlearners", multiple=True, help="Unlearner(s) beside retrain and gold.")
@click.option("--pruner", help="Pruner (default: the protocol's first).")
@click.option("--sparsity", type=float, help="Sparsity (default: the protocol's first nonzero one).")
@click.option("--forget-seed", type=int, default=0, show_default=True, help="Seed of the forget-set draw.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a protocol field.")
@click.option("--limit", type=click.IntRange(min=1), help="At most N examples per split (smoke runs).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("-o", "--out", type=click.Path(path_type=Path), required=True,
              help="Folder for the table (README.md), the plots and one run per size.")  # fmt: skip
def mia_stability(**options: Any) -> None:
    """Sweep the forget size and seeds; MIA-Efficacy against gold IoU and KL, table + plot."""
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.registry.host import create_host
    from unlearnbench.study.mia_stability import StudyConfig, run_study
    from unlearnbench.study.mia_stability_report import write_report

    run_options = {
        "protocol": options["protocol"],
        "override_file": None,
        "sets": options["sets"],
        "pruners": (),
        "sparsities": (),
        "unlearners": (),
        "unpruners": (),
        "metrics": (),
        "seeds": (),
        "unprune": None,
        "limit": options["limit"],
        "data_root": None,
        "download": True,
        "out": options["out"],
        "artifact_root": None,
        "threads": options["threads"],
        "device": options["device"],
    }
    try:
        registry = Registry(create_host())
        protocol, settings = load_run(registry, run_options, writes=False)
        config = StudyConfig(
            fractions=parse_fractions(options["fractions"]),
            seeds=tuple(options["seeds"]) or (0, 1, 2),
            unlearners=tuple(options["unlearners"]),
            pruner=options["pruner"],
            sparsity=options["sparsity"],
            forget_seed=options["forget_seed"],
        )
        with console.status("mia-stability: one run per forget size"):
            result = run_study(protocol, registry, settings, config)
        paths = write_report(result, options["out"], f"MIA stability · {protocol.name} v{protocol.version}")
    except UnlearnbenchError as exc:
        err_console.print(f"error: {exc}", markup=False, highlight=False)
        sys.exit(2)
    console.print(result.verdict.sentence(), highlight=False)
    for path in paths:
        console.print(f"wrote {path}", highlight=False)
    if result.failed:
        sys.exit(1)
