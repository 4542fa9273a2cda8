"""What every ``cli_*`` subcommand module shares with ``cli.py``: the consoles, the one-line error
exit and the registry. The subcommand modules import from here, never from ``cli.py``, which
registers them."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.report.leaderboard import Roles

console = Console(stderr=False)
if not console.is_terminal:
    console = Console(stderr=False, width=160)
err_console = Console(stderr=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(2)


def make_registry() -> Registry:
    return Registry(create_host())


def registry_roles(registry: Registry) -> Roles:
    """Which unlearners' rows are references and which metrics make the Gap column."""
    references = {n: e.cls.reference for n, e in registry.entries("unlearner").items() if e.cls.reference}
    gap = tuple(n for n, e in registry.entries("metric").items() if e.cls.gap)
    return Roles(references, gap)  # type: ignore[arg-type]


def record_roles(records: list[dict[str, Any]]) -> Roles:
    """:func:`registry_roles` for records written before they named their roles (schema 1); the
    plugins are imported only then, so reading newer records never waits on a plugin."""
    if all(r.get("schema_version", 1) >= 2 for r in records):
        return Roles()
    return registry_roles(make_registry())


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


def run_log(out: Path) -> logging.Handler:
    """A handler writing this run's INFO lines (and warnings from anywhere) to ``OUT/run.log``."""
    handler = logging.FileHandler(out / "run.log", encoding="utf-8")
    handler.setLevel(logging.INFO)
    handler.addFilter(lambda r: r.levelno >= logging.WARNING or r.name.startswith("unlearnbench"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    return handler
