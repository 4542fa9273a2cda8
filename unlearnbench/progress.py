"""How long-running library loops report progress without printing: the CLI supplies a sink."""

from __future__ import annotations

from typing import Protocol


class ProgressSink(Protocol):
    """Receives progress of a named task; the CLI renders it, the library never prints."""

    def start(self, description: str, total: int) -> int: ...

    def advance(self, task_id: int, steps: int = 1) -> None: ...

    def finish(self, task_id: int) -> None: ...


class NullProgress:
    """A sink that discards progress (the default for library use and tests)."""

    def start(self, description: str, total: int) -> int:
        return 0

    def advance(self, task_id: int, steps: int = 1) -> None:
        return None

    def finish(self, task_id: int) -> None:
        return None
