"""``unlearnbench publish`` and ``unlearnbench plot``: the command line of :mod:`~.report.publish`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from unlearnbench.errors import InvalidValueError, UnlearnbenchError

results_argument = click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))


def registry_defaults(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``kind:name@version`` -> default parameters, for each component version still registered."""
    from unlearnbench.config.typed_config import to_dict
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.registry.host import create_host
    from unlearnbench.report.publish import PARAM_KINDS, component_keys

    # only the distributions that provided the records' components are imported
    labels = [str((r.get("components") or {}).get(kind, "")) for r in records for kind in PARAM_KINDS]
    registry = Registry(create_host(distributions={x.split("==")[0] for x in labels if "==" in x}))
    found = {}
    for kind, version in sorted(component_keys(records)):
        name, _, number = version.rpartition("@")
        entry = registry.entries(kind).get(name)
        if entry is not None and str(entry.cls.version) == number:
            found[f"{kind}:{version}"] = to_dict(entry.cls.Params())
    return found


def refuse_empty(results: tuple[Path, ...], records: list[dict[str, Any]]) -> None:
    """One clear error when the results files hold no record (nothing to publish or plot)."""
    if not records:
        raise InvalidValueError(
            f"{', '.join(map(str, results))}: no result records; run `unlearnbench run` first"
        )


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
    from unlearnbench.cli import console, fail
    from unlearnbench.report.publish import RESULTS, publish
    from unlearnbench.report.results import read_many, read_records
    from unlearnbench.run.outdir import check_output_dir

    try:
        own = output / RESULTS
        records = read_many([p for p in results if p.resolve() != own.resolve()])
        refuse_empty(results, records or (read_records(own) if own.is_file() else []))
        check_output_dir(output, "-o", min_free=0)
        written = publish(output, records, registry_defaults(records))
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"-o {output}: cannot write: {exc.strerror or exc}")
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
    from unlearnbench.cli import console, fail
    from unlearnbench.report.plots import write_plots
    from unlearnbench.report.results import read_many
    from unlearnbench.run.outdir import check_output_dir

    try:
        records = read_many(results)
        refuse_empty(results, records)
        check_output_dir(output, "-o", min_free=0)
        written = write_plots(records, output)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"-o {output}: cannot write: {exc.strerror or exc}")
        return
    console.print(f"wrote {', '.join(str(p) for p in written)}", highlight=False)
