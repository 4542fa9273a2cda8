"""The ``unlearnbench`` command line (click + rich). The only module that prints."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unlearnbench import __version__
from unlearnbench.config.protocol import load_protocol, parse_override_value
from unlearnbench.errors import InvalidValueError, UnlearnbenchError
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.report.leaderboard import render
from unlearnbench.report.results import read_records
from unlearnbench.training.pruning import check_sparsity

DEFAULT_PROTOCOL = "digits-quickstart"
console = Console(stderr=False)
if not console.is_terminal:
    console = Console(stderr=False, width=160)
err_console = Console(stderr=True)


class RichProgress:
    """A :class:`~unlearnbench.progress.ProgressSink` drawing rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, description: str, total: int) -> int:
        return int(self.progress.add_task(description, total=total))

    def advance(self, task_id: int, steps: int = 1) -> None:
        self.progress.advance(task_id, steps)  # type: ignore[arg-type]

    def finish(self, task_id: int) -> None:
        self.progress.remove_task(task_id)  # type: ignore[arg-type]


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


def make_registry() -> Registry:
    return Registry(create_host())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unlearnbench")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Benchmarks for machine unlearning on sparse models: prune, unlearn, un-prune, evaluate."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[RichHandler(console=err_console, show_path=False)]
    )


def parse_sets(pairs: Sequence[str]) -> list[tuple[str, Any]]:
    out = []
    for pair in pairs:
        if "=" not in pair:
            raise InvalidValueError(f"--set {pair!r} is not KEY=VALUE (e.g. --set train.epochs=5)")
        key, value = pair.split("=", 1)
        out.append((key.strip(), parse_override_value(value.strip())))
    return out


def parse_sparsities(values: Sequence[str]) -> list[float]:
    found = []
    for value in values:
        for part in value.split(","):
            try:
                number = float(part)
            except ValueError:
                raise InvalidValueError(f"sparsity {part!r} is not a number in [0, 1)") from None
            found.append(check_sparsity(number))
    return found


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidValueError(f"--device {device!r}: no CUDA device is available; valid choices: auto, cpu")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InvalidValueError(f"--device {device!r} is not one of: auto, cpu, cuda, cuda:N")
    return device


@cli.command()
@click.argument("protocol", default=DEFAULT_PROTOCOL)
@click.option("--pruner", "pruners", multiple=True, help="Pruner(s) to run (default: the protocol's).")
@click.option(
    "--sparsity", "sparsities", multiple=True, help="Target sparsity in [0, 1); repeat or comma-separate."
)
@click.option(
    "--unlearner", "unlearners", multiple=True, help="Unlearner(s) to run (default: the protocol's)."
)
@click.option("--metric", "metrics", multiple=True, help="Metric(s) to compute (default: the protocol's).")
@click.option(
    "--unprune/--no-unprune", default=None, help="Only with / only without un-pruning (default: both)."
)
@click.option("--seed", "seeds", multiple=True, type=int, help="Seed(s) (default: the protocol's).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-root", type=click.Path(path_type=Path), help="Folder holding an existing dataset copy.")
@click.option("--download/--no-download", default=True, show_default=True, help="Download missing datasets.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("unlearnbench-out"),
    show_default=True,
    help="Output folder: results.jsonl, leaderboard.md and the artifact cache (artifacts/).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most N examples per split (smoke runs).")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Override a protocol field.")
@click.option(
    "--overrides",
    "override_file",
    type=click.Path(path_type=Path),
    help="A TOML override file (e.g. written by `unlearnbench tune`), applied before --set.",
)
def run(
    protocol: str,
    pruners: tuple[str, ...],
    sparsities: tuple[str, ...],
    unlearners: tuple[str, ...],
    metrics: tuple[str, ...],
    unprune: bool | None,
    seeds: tuple[int, ...],
    device: str,
    data_root: Path | None,
    download: bool,
    out: Path,
    limit: int | None,
    sets: tuple[str, ...],
    override_file: Path | None,
) -> None:
    """Run PROTOCOL (default: the offline digits-quickstart) and write OUT/results.jsonl."""
    from unlearnbench.run.pipeline import Pipeline, RunSettings
    from unlearnbench.run.tune import read_override_file

    started = time.perf_counter()
    try:
        registry = make_registry()
        overrides, tuning = read_override_file(override_file) if override_file else ([], {})
        overrides += parse_sets(sets)
        for key, values in (
            ("prune.pruners", list(pruners)),
            ("prune.sparsities", parse_sparsities(sparsities)),
            ("unlearn.unlearners", list(unlearners)),
            ("evaluate.metrics", list(metrics)),
            ("seeds", list(seeds)),
        ):
            if values:
                overrides.append((key, values))
        if unprune is not None:
            overrides.append(("unprune.modes", [unprune]))
        if limit:
            overrides.append(("data.limit", limit))
        loaded = load_protocol(registry.protocol_path(protocol), overrides, registry)
        settings = RunSettings(
            out=out, device=resolve_device(device), data_root=data_root, download=download, tuning=tuning
        )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bars:
            pipeline = Pipeline(loaded, registry, settings, progress=RichProgress(bars))
            records = list(pipeline.run())
        all_records = pipeline.results.records()
        board = out / "leaderboard.md"
        from unlearnbench.run.artifacts import write_text_atomic

        write_text_atomic(board, render(all_records))
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    show_results(records, loaded.evaluate.metrics)
    failed = [r for r in records if r["status"] != "ok"]
    console.print(
        f"{len(records)} rows ({len(failed)} failed) in {time.perf_counter() - started:.1f} s · "
        f"protocol {loaded.name} v{loaded.version} hash {loaded.short_hash} · "
        f"data copy {records[0]['data_copy']} read from {pipeline.data.dataset.location} · "
        f"device {records[0]['device']}\n"
        f"results: {pipeline.results.path}\nleaderboard: {board}",
        highlight=False,
    )
    if failed:
        sys.exit(1)


def show_results(records: list[dict[str, Any]], metric_names: Sequence[str]) -> None:
    table = Table(title="results", show_lines=False)
    for column in ("forget", "pruner", "sparsity", "method", "seed", *metric_names, "status"):
        table.add_column(
            column, justify="right" if column in metric_names or column == "sparsity" else "left"
        )
    for r in records:
        method = r["unlearner"] + (" + un-prune" if r["unprune"] else "")
        values = []
        for name in metric_names:
            value = r["metrics"].get(name)
            values.append("-" if value is None else f"{value:.3f}" if name == "rte" else f"{value:.2f}")
        sparsity = "-" if r.get("sparsity") is None else f"{r['sparsity']:.3f}"
        status = r["status"] if r["status"] == "ok" else f"[red]{r['error']}[/]"
        table.add_row(r["forget_set"], r["pruner"], sparsity, method, str(r["seed"]), *values, status)
    console.print(table)


@cli.command()
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
def tune(
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
    from unlearnbench.report.leaderboard import GAP_METRICS
    from unlearnbench.run.pipeline import Pipeline, RunSettings
    from unlearnbench.run.tune import parse_grid, write_override_file
    from unlearnbench.run.tune import tune as run_tune

    try:
        registry = make_registry()
        registry.get("unlearner", unlearner)
        grid = parse_grid(grids, registry, unlearner)
        overrides = parse_sets(sets)
        path = registry.protocol_path(protocol)
        base = load_protocol(path, overrides, registry)
        dataset = registry.create("dataset", base.data.dataset, base.data.params)
        num_classes = dataset.load(data_root, download=download).num_classes  # type: ignore[attr-defined]
        resolved = resolve_device(device)

        def run_point(loaded: Any, folder: Path) -> list[dict[str, Any]]:
            settings = RunSettings(out=folder, device=resolved, data_root=data_root, download=download)
            return list(Pipeline(loaded, registry, settings).run())

        with err_console.status(f"tuning {unlearner} over {len(grid)} grid points"):
            result = run_tune(
                registry, path, overrides, unlearner, grid, num_classes, out, run_point, GAP_METRICS
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


@cli.command()
def plugins() -> None:
    """List every plugin: name, distribution, version, components, load error."""
    registry = make_registry()
    by_plugin: dict[str, list[str]] = {}
    for kind in ("dataset", "model", "pruner", "unlearner", "unpruner", "metric"):
        for name, entry in registry.entries(kind).items():
            by_plugin.setdefault(entry.plugin, []).append(f"{kind}:{name}@{entry.cls.version}")
    for name in registry.protocol_names():
        plugin = registry._protocols[name][1]
        by_plugin.setdefault(plugin, []).append(f"protocol:{name}")
    table = Table(title="plugins")
    for column in ("plugin", "distribution", "version", "components", "error"):
        table.add_column(column, overflow="fold")
    for info in registry.host.infos():
        table.add_row(
            info.name,
            info.distribution or "-",
            info.version or "-",
            ", ".join(by_plugin.get(info.name, [])) or "-",
            f"[red]{info.error}[/]" if info.error else "",
        )
    console.print(table)


@cli.command()
def protocols() -> None:
    """List the protocols: name, version, hash, dataset, model."""
    registry = make_registry()
    table = Table(title="protocols")
    for column in ("name", "version", "hash", "dataset", "model", "description"):
        table.add_column(column, overflow="fold")
    for name in registry.protocol_names():
        try:
            loaded = load_protocol(registry.protocol_path(name), (), registry)
        except UnlearnbenchError as exc:
            table.add_row(name, "-", "-", "-", "-", f"[red]{exc}[/]")
            continue
        table.add_row(
            loaded.name,
            str(loaded.version),
            loaded.short_hash,
            loaded.data.dataset,
            loaded.model.name,
            loaded.description,
        )
    console.print(table)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Write the markdown here.")
def leaderboard(results: tuple[Path, ...], output: Path | None) -> None:
    """Render markdown leaderboard tables from RESULTS files (results.jsonl)."""
    try:
        records = [record for path in results for record in read_records(path)]
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    text = render(records)
    if output is None:
        console.print(text, markup=False, highlight=False)
    else:
        from unlearnbench.run.artifacts import write_text_atomic

        write_text_atomic(output, text)
        console.print(f"wrote {output}", highlight=False)


def main() -> None:
    cli()
