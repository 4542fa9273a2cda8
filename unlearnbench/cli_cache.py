"""``unlearnbench cache ls|gc``: what the artifact store of an output folder holds, and cleaning it."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from unlearnbench.errors import UnlearnbenchError
from unlearnbench.run.cache import StageUsage, referenced_nodes, remove, scan

OUT = click.argument("out", type=click.Path(path_type=Path), default=Path("unlearnbench-out"))
MIN_AGE = click.option(
    "--min-age",
    type=click.FloatRange(min=0),
    default=3600.0,
    show_default=True,
    help="Temporary folders younger than this (seconds) belong to a running writer and are kept.",
)


def human(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)


def _scan(out: Path, min_age: float) -> tuple[list[StageUsage], bool]:
    try:
        referenced = referenced_nodes(out / "results.jsonl")
        return scan(out / "artifacts", referenced, min_age), referenced is not None
    except UnlearnbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@click.group("cache")
def cache_group() -> None:
    """Inspect and clean the artifact cache of an output folder (OUT/artifacts)."""


@cache_group.command("ls")
@OUT
@MIN_AGE
def cache_ls(out: Path, min_age: float) -> None:
    """Per stage: nodes, size, stale temp folders, quarantined copies, unreferenced nodes."""
    usage, known = _scan(out, min_age)
    table = Table(title=f"cache {out / 'artifacts'}")
    for column in ("stage", "nodes", "size", "stale temp", "quarantined", "unreferenced"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    for u in usage:
        table.add_row(
            u.stage,
            str(len(u.nodes)),
            human(u.size),
            str(len(u.temp)),
            str(len(u.quarantined)),
            str(len(u.unreferenced)) if known else "?",
        )
    console = Console()
    console.print(table)
    if not known:
        console.print("unreferenced: ? (no results.jsonl, or rows written before node_keys)", highlight=False)


@cache_group.command("gc")
@OUT
@MIN_AGE
@click.option("--unreferenced", is_flag=True, help="Also remove nodes no row of OUT/results.jsonl used.")
def cache_gc(out: Path, min_age: float, unreferenced: bool) -> None:
    """Remove stale temp folders and quarantined copies (and, with --unreferenced, unused nodes)."""
    usage, known = _scan(out, min_age)
    if unreferenced and not known:
        click.echo(
            f"error: --unreferenced needs {out / 'results.jsonl'} with node_keys in every row "
            "(rerun `unlearnbench run` once to add them)",
            err=True,
        )
        sys.exit(2)
    kinds = {
        "stale temp": [p for u in usage for p in u.temp],
        "quarantined": [p for u in usage for p in u.quarantined],
    }
    if unreferenced:
        kinds["unreferenced"] = [p for u in usage for p in u.unreferenced]
    total = 0
    for what, paths in kinds.items():
        sizes = remove(paths)
        total += sizes
        click.echo(f"removed {len(paths)} {what} folder{'s' if len(paths) != 1 else ''} ({human(sizes)})")
    click.echo(f"freed {human(total)}")
