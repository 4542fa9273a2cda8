"""``unlearnbench export-results``: result records as a CSV or parquet table (:mod:`~.report.frame`)."""

from __future__ import annotations

from pathlib import Path

import click

from unlearnbench.errors import UnlearnbenchError


@click.command("export-results")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="The file to write: NAME.csv, or NAME.parquet (needs pyarrow: unlearnbench[parquet]).",
)
@click.option(
    "--summary",
    is_flag=True,
    help="One row per setting and method: each metric's mean, std, seed count and interval.",
)
@click.option(
    "--level", type=float, default=0.95, show_default=True, help="Confidence level of --summary's interval."
)
def export_command(results: tuple[Path, ...], output: Path, summary: bool, level: float) -> None:
    """Write RESULTS (results.jsonl files) as one flat table: a row per record (or per setting
    with --summary), a column per metric."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.frame import export_results

    try:
        frame = export_results(results, output, summary=summary, level=level)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    console.print(f"wrote {output}: {len(frame)} rows, {len(frame.columns)} columns", highlight=False)
