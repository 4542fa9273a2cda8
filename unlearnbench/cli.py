"""The ``unlearnbench`` command line (click + rich). The only module that prints."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from unlearnbench import __version__
from unlearnbench.cli_cache import cache_group
from unlearnbench.cli_common import (
    RichProgress,
    console,
    err_console,
    fail,
    make_registry,
    record_roles,
    registry_roles,
    run_log,
)
from unlearnbench.cli_evaluate import evaluate_command, export_command
from unlearnbench.cli_export import export_command as export_results_command
from unlearnbench.cli_options import load_run, run_options, split_names
from unlearnbench.cli_publish import plot_command, publish_command, site_command
from unlearnbench.cli_show import print_results, show_command
from unlearnbench.cli_study import study_group
from unlearnbench.cli_tune import tune_command
from unlearnbench.config.protocol import load_protocol
from unlearnbench.errors import UnlearnbenchError
from unlearnbench.report.leaderboard import render
from unlearnbench.report.results import read_many


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="unlearnbench")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Benchmarks for machine unlearning on sparse models: prune, unlearn, un-prune, evaluate."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler: logging.Handler = RichHandler(console=err_console, show_path=False)
    if not err_console.is_terminal:  # one unwrapped line per message
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    if level > logging.INFO and not sys.stdout.isatty():  # redirected: say what each node did
        handler.addFilter(lambda r: r.levelno >= level or r.name == "unlearnbench.run.runner")
    else:
        handler.setLevel(level)
    logging.basicConfig(level=min(level, logging.INFO), format="%(message)s", handlers=[handler])


@cli.command()
@run_options
@click.option(
    "--tracker",
    "trackers",
    multiple=True,
    metavar="NAME[,NAME]",
    help="Also log to tensorboard, mlflow (a local store) or wandb (offline) under OUT; commas allowed.",
)
def run(**options: Any) -> None:
    """Run PROTOCOL (a registered name or a PATH.toml; default: the offline digits-quickstart) and
    write OUT/results.jsonl."""
    from unlearnbench.run.pipeline import Pipeline
    from unlearnbench.trackers import check_trackers, close_trackers, open_trackers

    started = time.perf_counter()
    out: Path = options["out"]
    log_file: logging.Handler | None = None
    trackers: list[Any] = []
    try:
        registry = make_registry()
        tracker_names = split_names(options["trackers"])
        check_trackers(tracker_names)
        loaded, settings = load_run(registry, options)
        log_file = run_log(out)
        logging.getLogger(__name__).info("unlearnbench %s", " ".join(sys.argv[1:]))
        trackers = open_trackers(tracker_names, out, tracker_run(loaded, settings))
        for tracker in trackers:
            registry.host.register(tracker, name=f"tracker-{tracker.name}")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bars:
            pipeline = Pipeline(
                loaded,
                registry,
                settings,
                progress=RichProgress(bars),
                executor=options["executor"],
                ray_address=options["ray_address"],
                rerun=split_names(options["rerun"]),
                force=options["force"],
            )
            records = list(pipeline.run())
        all_records = pipeline.results.records()
        board = out / "leaderboard.md"
        from unlearnbench.files import write_text_atomic

        write_text_atomic(board, render(all_records, registry_roles(registry)))
    except UnlearnbenchError as exc:
        if log_file is not None:  # the console gets it from fail(), once
            log_file.handle(logging.LogRecord(__name__, logging.ERROR, __file__, 0, str(exc), None, None))
        fail(str(exc))
        return
    except KeyboardInterrupt:
        message = (
            f"interrupted (Ctrl-C) after {time.perf_counter() - started:.1f} s; finished nodes and rows are "
            "kept, run the same command again to resume"
        )
        if log_file is not None:
            log_file.handle(logging.LogRecord(__name__, logging.ERROR, __file__, 0, message, None, None))
        err_console.print(f"[bold red]{escape(message)}[/]", highlight=False, soft_wrap=True)
        sys.exit(130)
    finally:
        for line in close_trackers(trackers):
            logging.getLogger(__name__).warning("%s", line)
        if log_file is not None:
            logging.getLogger().removeHandler(log_file)
            log_file.close()
    print_results(console, records, registry_roles(registry))
    failed = [r for r in records if r["status"] != "ok"]
    devices = ", ".join(sorted({r["device"] for r in records}))
    console.print(
        f"{len(records)} rows ({len(failed)} failed) in {time.perf_counter() - started:.1f} s · "
        f"protocol {loaded.name} v{loaded.version} hash {loaded.short_hash} · "
        f"data copy {records[0]['data_copy']} read from {pipeline.data.dataset.location} · "
        f"computed on {devices}\n"
        f"results: {pipeline.results.path}\nleaderboard: {board}\nlog: {out / 'run.log'}",
        highlight=False,
    )
    if failed:
        sys.exit(1)


def tracker_run(loaded: Any, settings: Any) -> Any:
    """What the trackers record about this run: a name, the protocol, its hash and settings."""
    import datetime

    from unlearnbench.trackers import TrackerRun

    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    config = {"command": " ".join(sys.argv[1:]), "device": settings.device, "out": str(settings.out)}
    return TrackerRun(f"{loaded.name}-{loaded.short_hash}-{stamp}", loaded.name, loaded.hash, config)


@cli.command("plan")
@run_options
def plan_command(**options: Any) -> None:
    """Show the graph a run of PROTOCOL would execute: nodes, cached or not, and the cost left."""
    from unlearnbench.run.artifacts import ArtifactStore
    from unlearnbench.run.context import RunContext
    from unlearnbench.run.plan import plan
    from unlearnbench.run.pool_plan import pool_only

    try:
        registry = make_registry()
        loaded, settings = load_run(registry, options, writes=False)
        graph = plan(loaded, RunContext(loaded, registry, settings).plan_inputs())
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    store = ArtifactStore(settings.artifacts)
    table = Table(title=f"{loaded.name}: {len(graph.nodes)} nodes for {len(graph.rows)} rows")
    for column in (
        "stage",
        "component",
        "seed",
        "pruner",
        "sparsity",
        "forget",
        "unlearner",
        "key",
        "cached",
        "cost",
    ):
        table.add_column(column, justify="right" if column in ("sparsity", "cost") else "left")
    left = cached = 0
    for node in graph.order():
        done = store.get(node.stage, node.key) is not None
        cached += done
        left += 0 if done else node.cost
        cells = [node.seed, node.pruner, node.sparsity, node.forget, node.unlearner]
        table.add_row(
            node.stage,
            f"{node.component}@{node.version}",
            *("-" if c is None else str(c) for c in cells),
            node.key[:12],
            "[green]yes[/]" if done else "no",
            f"{node.cost:,}" if node.cost else "-",
        )
    console.print(table)
    pooled = [graph.nodes[k] for k in pool_only(graph)]
    if pooled:
        models = sum(n.stage != "pool" for n in pooled)
        cost = sum(n.cost for n in pooled)
        console.print(
            f"pools: {sum(n.stage == 'pool' for n in pooled)} pool nodes over {models} pool-only model "
            f"nodes, about {cost:,} training example-passes of the total",
            highlight=False,
        )
    console.print(
        f"{cached}/{len(graph.nodes)} nodes cached · left to compute: {len(graph.nodes) - cached} nodes, "
        f"about {left:,} training example-passes (epochs x images) · artifacts: {settings.artifacts}",
        highlight=False,
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
    from unlearnbench.run.outdir import check_output_file

    try:
        records = read_many(results)
        if output is not None:
            check_output_file(output)
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    text = render(records, record_roles(records))
    if output is None:  # raw: redirected output is byte-identical to -o
        click.echo(text, nl=False)
    else:
        from unlearnbench.files import write_text_atomic

        try:
            write_text_atomic(output, text)
        except OSError as exc:
            fail(f"-o {output}: cannot write: {exc.strerror or exc}")
        console.print(f"wrote {output}", highlight=False)


def main() -> None:
    cli()


for _command in (tune_command, publish_command, plot_command, site_command, study_group, show_command,
                 cache_group, evaluate_command, export_command, export_results_command):  # fmt: skip
    cli.add_command(_command)
