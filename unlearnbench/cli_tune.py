"""``unlearnbench tune``: the command line of :mod:`unlearnbench.run.tune`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from unlearnbench.cli_options import DEFAULT_PROTOCOL, parse_sets, resolve_device
from unlearnbench.config.protocol import load_protocol
from unlearnbench.config.protocol_files import locate_protocol
from unlearnbench.errors import UnlearnbenchError


@click.command("tune")
@click.argument("protocol", default=DEFAULT_PROTOCOL)
@click.option("--unlearner", required=True, help="The unlearner to tune.")
@click.option("--grid", "grids", multiple=True, required=True, metavar="NAME=V1,V2", help="Values to try.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder holding an existing dataset copy.")
@click.option("--download/--no-download", default=True, show_default=True, help="Download missing datasets.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a protocol field.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("unlearnbench-tune"),
    show_default=True,
    help="Folder of the tuning runs.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=Path("tuned.toml"),
    show_default=True,
    help="Override file to write (merged with an existing one); apply with `run --overrides`.",
)
def tune_command(
    protocol: str,
    unlearner: str,
    grids: tuple[str, ...],
    device: str,
    data_root: Path | None,
    download: bool,
    sets: tuple[str, ...],
    out: Path,
    output: Path,
) -> None:
    """Tune UNLEARNER's parameters on a validation forget set, scored by the gap to retrain."""
    from unlearnbench.cli_common import console, err_console, fail, make_registry
    from unlearnbench.run.context import RunSettings
    from unlearnbench.run.outdir import check_output_dir
    from unlearnbench.run.pipeline import Pipeline
    from unlearnbench.run.tune import parse_grid, tune, write_override_file

    try:
        registry = make_registry()
        registry.get("unlearner", unlearner)
        grid = parse_grid(grids, registry, unlearner)
        overrides = parse_sets(sets)
        path = locate_protocol(registry, protocol)
        base = load_protocol(path, overrides, registry)
        check_output_dir(out)
        dataset = registry.create("dataset", base.data.dataset, base.data.params)
        num_classes = dataset.load(data_root, download=download).num_classes  # type: ignore[attr-defined]
        resolved = resolve_device(device)
        gap_metrics = [n for n, e in registry.entries("metric").items() if e.cls.gap]  # type: ignore[attr-defined]

        def run_point(loaded: Any, folder: Path) -> list[dict[str, Any]]:
            settings = RunSettings(out=folder, device=resolved, data_root=data_root, download=download)
            return list(Pipeline(loaded, registry, settings).run())

        with err_console.status(f"tuning {unlearner} over {len(grid)} grid points"):
            result = tune(
                registry, path, overrides, unlearner, grid, num_classes, out, run_point, gap_metrics
            )
        write_override_file(output, result, grids, base.name, overrides)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    table = Table(title=f"tune {unlearner} on {base.name} (validation forget set, validation split)")
    for column in (*result.points[0].values, "gap to retrain"):
        table.add_column(column, justify="right")
    for point in result.points:
        gap = "failed" if point.gap is None else f"{point.gap:.2f}"
        marker = " *" if dict(point.values) == dict(result.chosen) else ""
        table.add_row(*(str(v) for v in point.values.values()), gap + marker)
    console.print(table)
    console.print(
        f"chosen {dict(result.chosen)} (gap {result.chosen_gap:.2f}); wrote {output}", highlight=False
    )
