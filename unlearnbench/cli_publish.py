"""``unlearnbench publish`` and ``unlearnbench plot``: the command line of :mod:`~.report.publish`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from unlearnbench.errors import UnlearnbenchError

results_argument = click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))


def registry_defaults(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``kind:name@version`` -> default parameters, for each component version still registered."""
    from unlearnbench.cli_common import make_registry
    from unlearnbench.config.typed_config import to_dict
    from unlearnbench.report.publish import component_keys

    registry = make_registry()
    found = {}
    for kind, version in sorted(component_keys(records)):
        name, _, number = version.rpartition("@")
        entry = registry.entries(kind).get(name)
        if entry is not None and str(entry.cls.version) == number:
            found[f"{kind}:{version}"] = to_dict(entry.cls.Params())
    return found


@click.command("publish")
@results_argument
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    required=True,
    help="The folder, e.g. leaderboards/PROTOCOL/.",
)
def publish_command(results: tuple[Path, ...], output: Path) -> None:
    """Merge RESULTS into a published leaderboard folder and write its README, claims check and plots."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.publish import RESULTS, publish
    from unlearnbench.report.results import read_many

    try:
        own = output / RESULTS
        records = read_many([p for p in results if p.resolve() != own.resolve()])
        written = publish(output, records, registry_defaults(records))
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    console.print(
        f"wrote {len(written)} files to {output}: {', '.join(p.name for p in written)}", highlight=False
    )


@click.command("plot")
@results_argument
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Folder for the PNG and SVG files."
)
def plot_command(results: tuple[Path, ...], output: Path) -> None:
    """Plot RESULTS: UA vs RA trade-off, gap to retrain dense vs sparse, mask IoU (PNG and SVG)."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.plots import write_plots
    from unlearnbench.report.results import read_many

    try:
        written = write_plots(read_many(results), output)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)
