"""The results table ``unlearnbench run`` prints, and ``unlearnbench show OUT`` that prints it for a
finished run. One table per (forget set, pruner, target sparsity), sized to fit 80 columns:
labels and units from the records' ``metric_info`` (long labels abbreviated, with a legend) and
the Gap column as the leaderboard computes it. When the metrics do not fit beside the method
column, they continue in further tables that repeat it; numbers are never cut."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from unlearnbench.errors import InvalidValueError, UnlearnbenchError
from unlearnbench.report.leaderboard import Roles, tables
from unlearnbench.report.results import read_records

WIDTH = 80
LABEL_MAX = 8


def abbreviate(label: str) -> str:
    """``label`` if short, else its first word and the initials of the others (``MIA-Efficacy``
    -> ``MIA-E``), cut to fit."""
    if len(label) <= LABEL_MAX:
        return label
    first, *rest = re.split(r"[- ]", label)
    return (first + "".join(f"-{w[:1]}" for w in rest if w))[: LABEL_MAX + 1]


def _method(record: dict[str, Any]) -> str:
    if not record["unprune"]:
        return record["unlearner"]
    return f"{record['unlearner']}+{record.get('unpruner') or 'UP'}"


def _width(header: str, cells: list[str]) -> int:
    return max([len(line) for line in header.split("\n")] + [len(c) for c in cells]) + 3


def _chunks(
    keys: list[tuple[str, list[str]]], columns: list[tuple[str, list[str]]]
) -> list[list[tuple[str, list[str]]]]:
    """``columns`` split into groups that fit :data:`WIDTH` beside the ``keys`` columns (which
    every group repeats), so that no number is ever cut."""
    room = WIDTH - sum(_width(h, c) for h, c in keys) - 4
    chunks: list[list[tuple[str, list[str]]]] = [[]]
    used = 0
    for column in columns:
        need = _width(*column)
        if chunks[-1] and used + need > room:
            chunks.append([])
            used = 0
        chunks[-1].append(column)
        used += need
    return chunks


def results_tables(records: list[dict[str, Any]], roles: Roles | None = None) -> list[Any]:
    """Rich renderables: a table per setting (the leaderboard's: mean ± 95% half-width over train
    seeds, n = train seeds x unlearning x evaluation repetitions), a legend of abbreviated labels,
    the failed rows."""
    out: list[Any] = []
    legend: dict[str, str] = {}
    info: dict[str, Any] = {}
    for r in records:
        info.update(r.get("metric_info") or {})
    for group in tables([r for r in records if "row_id" in r], roles)[0]:
        keys = [("Method", [escape(str(row["Method"])) for row in group.rows])]
        columns = []
        for name, header in group.metrics:
            meta = info.get(name, {})
            label = escape(str(meta.get("label", name)))
            short = abbreviate(label)
            if short != label:
                legend[short] = label
            unit = meta.get("unit") or ""
            cells = [str(row.get(header, "-")).replace(" ± ", "±") for row in group.rows]
            columns.append((f"{short}\n{unit}" if unit else short, cells))
        for extra in ("Gap", "Gap-gold", "n"):
            if extra in group.columns:
                columns.append((extra, [str(row.get(extra, "-")).replace(" ± ", "±") for row in group.rows]))
        k = group.key
        copy = f" · copy {k['data_copy']}" if len({r.get("data_copy") for r in records}) > 1 else ""
        title = escape(f"{k['forget_set']} · {k['pruner']} @ {k['sparsity_target']}{copy}")
        for number, chunk in enumerate(_chunks(keys, columns)):
            table = Table(
                title=title if number == 0 else f"{title} (continued)", box=box.SIMPLE_HEAD, padding=(0, 1)
            )
            for header, _ in keys:
                table.add_column(header, no_wrap=True)
            for header, _ in chunk:
                table.add_column(header, justify="right", no_wrap=True)
            for i in range(len(group.rows)):
                table.add_row(*[cells[i] for _, cells in keys], *[cells[i] for _, cells in chunk])
            out.append(table)
    notes = [f"{k} = {v}" for k, v in legend.items()]
    if any(r["unprune"] for r in records):
        notes.append("+NAME = un-pruned with that un-pruner")
    notes.append("± = 95% interval over train seeds; n = train seeds x unlearning x evaluation repetitions")
    out.append("; ".join(notes))
    for r in records:
        if r["status"] != "ok":
            out.append(
                "[red]failed[/] "
                + escape(f"{r['forget_set']} {r['pruner']} {_method(r)} seed {r['seed']}: {r['error']}")
            )
    return out


def print_results(console: Console, records: list[dict[str, Any]], roles: Roles | None = None) -> None:
    """Print the results tables, at most :data:`WIDTH` columns wide."""
    width = min(console.width, WIDTH) if console.is_terminal else WIDTH
    for part in results_tables(records, roles):
        console.print(part, width=width, highlight=False)


@click.command("show")
@click.argument("out", type=click.Path(path_type=Path), default=Path("unlearnbench-out"))
def show_command(out: Path) -> None:
    """Print the results table of a finished run from OUT/results.jsonl."""
    from unlearnbench.cli_common import record_roles

    path = out / "results.jsonl" if out.is_dir() or not out.suffix else out
    try:
        if not path.is_file():
            raise InvalidValueError(f"{path} not found; give the --out folder of a finished run")
        records = read_records(path)
    except UnlearnbenchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    console = Console()
    print_results(console, records, record_roles(records))
    ok = sum(r["status"] == "ok" for r in records)
    console.print(f"{len(records)} rows ({len(records) - ok} failed) · {path}", highlight=False)
