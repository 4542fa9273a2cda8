"""Guards a run against faults around its nodes: a stage time limit, and its output folder's identity."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class NodeTimeout(BaseException):
    """Raised in a node that ran past its stage's ``--timeout`` (a BaseException, so that a
    stage's ``except Exception`` around one metric does not swallow it)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"ran past {seconds:g} s")
        self.seconds = seconds


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`NodeTimeout` in the block once it has run ``seconds`` (SIGALRM; only in the
    main thread of a POSIX process, elsewhere and for None the block runs unlimited)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise NodeTimeout(seconds)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def culprit(exc: BaseException) -> str:
    """`` in <kind> <name>``: the innermost component method the traceback passes through."""
    from unlearnbench.registry.components import Component

    found = ""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Component):
            found = f" (stopped in {owner.kind} {owner.name!r}, {tb.tb_frame.f_code.co_name})"
        tb = tb.tb_next
    return found


def folder_identity(folder: Path) -> tuple[int, int, frozenset[str]] | None:
    """The folder's device, inode and entries that are not stage outputs (what a removed and
    recreated folder lacks: ``forget_sets/``, ``run.log``, ...); None when it is gone."""
    try:
        stat = folder.stat()
        names = frozenset(
            p.name for p in folder.iterdir() if p.name != "artifacts" and not p.name.startswith(".")
        )
    except OSError:
        return None
    return stat.st_dev, stat.st_ino, names
