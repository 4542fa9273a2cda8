"""``results.jsonl``: one JSON object per result row, rewritten atomically after every row.

Rows are keyed by ``row_id``; a re-run replaces its own rows in place and keeps other rows, so
an interrupted run loses nothing already written.
"""

from __future__ import annotations

import functools
import json
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from unlearnbench.errors import InvalidValueError
from unlearnbench.run.artifacts import write_text_atomic


def read_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a results file (blank lines skipped)."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise InvalidValueError(f"cannot read results file {path}: {exc.strerror}") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from exc
    return records


class ResultsFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for record in read_records(self.path):
                self._rows[record.get("row_id", str(len(self._rows)))] = record

    def put(self, record: dict[str, Any]) -> None:
        self._rows[record["row_id"]] = record
        self._write(self._rows.values())

    def records(self) -> list[dict[str, Any]]:
        return list(self._rows.values())

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
        write_text_atomic(self.path, text)


@functools.cache
def git_commit() -> str | None:
    """The commit of the unlearnbench checkout, with ``-dirty`` when it has local changes."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def environment_info(device: torch.device) -> dict[str, Any]:
    """Where a record was computed: the device and the unlearnbench commit."""
    return {"device": device_name(device), "git": git_commit()}


def software_versions() -> dict[str, str]:
    from unlearnbench import __version__

    return {"unlearnbench": __version__, "torch": torch.__version__, "python": sys.version.split()[0]}
