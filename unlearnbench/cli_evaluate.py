"""``unlearnbench evaluate`` (score a model produced elsewhere) and ``unlearnbench export`` (a
run's originals and references as folders with model cards)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Any

import click

from unlearnbench.cli_options import run_options
from unlearnbench.errors import UnlearnbenchError


@click.command("evaluate")
@click.argument("model_file", metavar="MODEL", type=click.Path(path_type=Path))
@run_options
@click.option("--name", help="Row label external:NAME (default: the file's stem).")
@click.option(
    "--model-factory",
    "model_factory",
    metavar="MODULE:FACTORY",
    help="Build the architecture with this callable (default: the protocol's model).",
)
@click.option(
    "--forget", "forget", help="The forget set MODEL was unlearned on (needed when there are several)."
)
def evaluate_command(model_file: Path, name: str | None, model_factory: str | None, forget: str | None,
                     **options: Any) -> None:  # fmt: skip
    """Score MODEL (a state_dict file) on one forget set, pruner, sparsity and seed of PROTOCOL,
    against the run's cached references and with its metrics; writes OUT/results.jsonl."""
    from unlearnbench.api_evaluate import prepare_evaluate
    from unlearnbench.cli_common import RichProgress, console, err_console, fail, registry_roles, run_log
    from unlearnbench.cli_show import print_results
    from unlearnbench.run.python_api import execute

    started = time.perf_counter()
    out: Path = options["out"]
    if options["unprune"] is None:
        options["unprune"] = False
    log_file: logging.Handler | None = None
    try:
        prepared = prepare_evaluate(options, model_file, name=name, factory=model_factory, forget=forget)
        log_file = run_log(out)
        logging.getLogger(__name__).info("unlearnbench %s", " ".join(sys.argv[1:]))
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True) as bars:
            results = execute(
                prepared,
                progress=RichProgress(bars),
                force=options["force"],
                executor=options["executor"],
                ray_address=options["ray_address"],
            )
    except UnlearnbenchError as exc:
        fail(str(exc))
        return
    finally:
        if log_file is not None:
            logging.getLogger().removeHandler(log_file)
            log_file.close()
    records = [r.to_dict() for r in results.records]
    print_results(console, records, registry_roles(prepared.registry))
    (external,) = prepared.settings.externals
    failed = [r for r in records if r["status"] != "ok"]
    console.print(
        f"{len(records)} rows ({len(failed)} failed) in {time.perf_counter() - started:.1f} s · "
        f"{external.label}: {external.file} sha256 {external.sha256[:12]} · protocol "
        f"{prepared.protocol.name} hash {prepared.protocol.short_hash}\n"
        f"results: {results.results_path}\nleaderboard: {out / 'leaderboard.md'}",
        highlight=False,
    )
    if failed:
        sys.exit(1)


@click.command("export")
@click.argument("out", type=click.Path(path_type=Path))
@click.option(
    "--to", "to", required=True, type=click.Path(path_type=Path), help="Folder to write the models to."
)
@click.option(
    "--artifacts", "artifact_root", type=click.Path(path_type=Path), help="Store (default OUT/artifacts)."
)
@click.option(
    "--push-to", "push_to", metavar="OWNER/REPO", help="Also upload the folder to this Hub model repo."
)
@click.option("--dry-run", is_flag=True, help="With --push-to: list what would be uploaded, upload nothing.")
def export_command(
    out: Path, to: Path, artifact_root: Path | None, push_to: str | None, dry_run: bool
) -> None:
    """Export the originals and references of the run in OUT (weights, mask, model card) to --to."""
    from unlearnbench.cli_common import console, fail
    from unlearnbench.errors import InvalidValueError
    from unlearnbench.report.results import read_records
    from unlearnbench.run.checkpoints import export_run, push_plan, push_to_hub

    try:
        if to.exists() and not to.is_dir():
            raise InvalidValueError(f"--to {to} is a file; give a folder")
        records = read_records(out / "results.jsonl")
        written = export_run(records, artifact_root or out / "artifacts", to)
        for item in written:
            console.print(f"{item.role:15} {item.stage:16} {item.folder}", highlight=False)
        console.print(
            f"{len(written)} models with model cards in {to} (index: {to / 'README.md'})", highlight=False
        )
        if push_to and dry_run:
            files = push_plan(to, push_to)
            console.print(f"dry run: would upload {len(files)} files to {push_to}", highlight=False)
        elif push_to:
            console.print(f"uploaded to {push_to_hub(to, push_to)}", highlight=False)
    except UnlearnbenchError as exc:
        fail(str(exc))
