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
@click.option(
    "--site",
    type=click.Path(path_type=Path),
    default=None,
    help="Also write the folder's page of a static site into this folder (SITE/<folder name>/) and "
    "rebuild SITE/index.html.",
)
def publish_command(results: tuple[Path, ...], output: Path, site: Path | None) -> None:
    """Merge RESULTS into a published leaderboard folder and write its README, claims check and plots."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.publish import RESULTS, publish
    from unlearnbench.report.results import read_many, read_records
    from unlearnbench.run.outdir import check_output_dir

    try:
        own = output / RESULTS
        records = read_many([p for p in results if p.resolve() != own.resolve()])
        refuse_empty(results, records or (read_records(own) if own.is_file() else []))
        check_output_dir(output, "-o", min_free=0)
        written = publish(output, records, registry_defaults(records))
        if site is not None:
            from unlearnbench.report.site import write_board

            pages = write_board(output, site)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"-o {output}: cannot write: {exc.strerror or exc}")
        return
    console.print(
        f"wrote {len(written)} files to {output}: {', '.join(p.name for p in written)}", highlight=False
    )
    if site is not None:
        console.print(
            f"wrote the site page {site / output.name / 'index.html'} and {site / 'index.html'} "
            f"({len(pages)} files)",
            highlight=False,
        )


@click.command("site")
@click.argument("boards", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="The site's folder, e.g. site/."
)
def site_command(boards: tuple[Path, ...], output: Path) -> None:
    """Build a static leaderboard site from published folders: BOARDS are published folders or
    folders of them (e.g. leaderboards/); writes OUTPUT/index.html and one page per board. Open
    OUTPUT/index.html in a browser: no server or network needed."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.site import board_folders, build_site

    try:
        folders = board_folders(boards)
        written = build_site(folders, output)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    console.print(
        f"wrote {output / 'index.html'} and {len(folders)} board pages "
        f"({', '.join(f.name for f in folders)}); {len(written)} files",
        highlight=False,
    )


@click.command("plot")
@results_argument
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), required=True, help="Folder for the PNG and SVG files."
)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Plot this metric per method instead (metric-NAME.png/.svg); any metric the records hold, "
    "plugin metrics included; repeat or comma-separate for several.",
)
def plot_command(results: tuple[Path, ...], output: Path, metrics: tuple[str, ...]) -> None:
    """Plot RESULTS: UA vs RA trade-off, gap to retrain dense vs sparse, mask IoU (PNG and SVG);
    with --metric, that metric per method. A plot without data is skipped and says so."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.report.plots import metric_names, write_metric_plots, write_plots
    from unlearnbench.report.results import read_many
    from unlearnbench.run.outdir import check_output_dir

    try:
        records = read_many(results)
        refuse_empty(results, records)
        check_output_dir(output, "-o", min_free=0)
        wanted = [m.strip() for value in metrics for m in value.split(",") if m.strip()]
        if wanted:
            known = metric_names(records)
            unknown = [m for m in wanted if m not in known]
            if unknown:
                fail(f"unknown metric {unknown[0]!r}; the records hold: {', '.join(known) or 'none'}")
                return
            written = write_metric_plots(records, output, wanted)
        else:
            written = write_plots(records, output)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    except OSError as exc:
        fail(f"-o {output}: cannot write: {exc.strerror or exc}")
        return
    console.print(f"wrote {', '.join(str(p) for p in written) or 'no plot'}", highlight=False)
