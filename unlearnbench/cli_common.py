"""What every ``cli_*`` subcommand module shares with ``cli.py``: the consoles, the one-line error
exit and the registry. The subcommand modules import from here, never from ``cli.py``, which
registers them."""

from __future__ import annotations

import sys

from rich.console import Console

from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.report.leaderboard import Roles

console = Console(stderr=False)
if not console.is_terminal:
    console = Console(stderr=False, width=160)
err_console = Console(stderr=True)


def fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


def make_registry() -> Registry:
    return Registry(create_host())


def registry_roles(registry: Registry) -> Roles:
    """Which unlearners' rows are references and which metrics make the Gap column."""
    references = {n: e.cls.reference for n, e in registry.entries("unlearner").items() if e.cls.reference}
    gap = tuple(n for n, e in registry.entries("metric").items() if e.cls.gap)
    return Roles(references, gap)  # type: ignore[arg-type]
