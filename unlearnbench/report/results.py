"""``results.jsonl``: one JSON object per result row, merged under a lock and written atomically.

Rows are keyed by ``row_id``. Every write takes an exclusive lock (``results.jsonl.lock``),
re-reads the file and merges, so concurrent runs into one folder keep the union of their rows.
A rerun that computes fewer metrics adds to a row and never removes what it had; a failed attempt
never replaces an ``ok`` row (it goes to ``results.attempts.jsonl`` instead).
"""

import functools
import json
import logging
import math
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from unlearnbench.errors import InvalidValueError
from unlearnbench.files import write_text_atomic
from unlearnbench.hashing import sha256_json
from unlearnbench.report.record import LEGACY_ROW_ID_FIELDS, row_id

REQUIRED_KEYS = (
    "row_id",
    "protocol",
    "protocol_version",
    "protocol_hash",
    "forget_set",
    "pruner",
    "sparsity_target",
    "unlearner",
    "seed",
    "status",
    "metrics",
)
"""What every result record has; a line without them is not a result record."""


def current_row_id(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with the ``row_id`` it has today: a record whose stored id is the legacy one
    (without its ``data_copy``) is re-keyed, so a rerun on the same copy merges into its row
    instead of adding a second one."""
    fields = LEGACY_ROW_ID_FIELDS + (("unpruner",) if record.get("unprune") else ())
    if "data_copy" not in record or any(k not in record for k in fields):
        return record
    legacy = sha256_json({"stage": "row", **{k: record[k] for k in fields}})
    if record.get("row_id") != legacy:
        return record
    try:
        return {**record, "row_id": row_id(record)}
    except KeyError:  # lacks a field the id has gained since; keep the id it was written with
        return record


def read_records(path: Path, required: Sequence[str] = REQUIRED_KEYS) -> list[dict[str, Any]]:
    """Every record of a results file (blank lines skipped); bad input is one clear error.

    A line lacking any of ``required`` is refused as not a result record. Records written with a
    legacy ``row_id`` come back with today's (:func:`current_row_id`)."""
    try:
        lines = Path(path).read_text().splitlines()
    except IsADirectoryError:
        raise InvalidValueError(f"results file {path} is a directory; give its results.jsonl") from None
    except UnicodeDecodeError:
        raise InvalidValueError(f"results file {path} is not text (expected JSON lines)") from None
    except OSError as exc:
        raise InvalidValueError(f"cannot read results file {path}: {exc.strerror}") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidValueError(f"{path}:{number}: not a JSON line ({exc.msg})") from exc
            missing = [k for k in required if k not in record] if isinstance(record, dict) else list(required)
            if missing:
                raise InvalidValueError(
                    f"{path}:{number}: not an unlearnbench result record (missing {', '.join(missing)})"
                )
            records.append(current_row_id(record) if "row_id" in record else record)
    return records


def read_many(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The records of several results files; a row found twice is refused, not averaged as a seed."""
    seen: dict[str, Path] = {}
    records = []
    for path in paths:
        for record in read_records(path):
            first = seen.get(record["row_id"])
            if first is not None:
                where = f"twice in {path}" if first == path else f"in {first} and {path}"
                what = f"{record['unlearner']}, seed {record['seed']}"
                raise InvalidValueError(
                    f"row {record['row_id'][:12]} ({what}) appears {where}; give each results file once"
                )
            seen[record["row_id"]] = path
            records.append(record)
    return records


log = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps_record(record: Mapping[str, Any]) -> str:
    """One record as a line of strict JSON (sorted keys; NaN and infinities become null)."""
    return json.dumps(_finite(dict(record)), sort_keys=True, allow_nan=False)


MERGED_KEYS = ("metrics", "metric_info", "metric_errors", "metric_details")
"""Per-metric tables: a rerun adds its metrics to a row's and keeps the others."""


def merge_record(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any] | None:
    """The row to keep when ``new`` arrives for ``old``'s row_id, or None to keep ``old`` as is.

    A failed ``new`` never replaces an ``ok`` row. An ``ok`` ``new`` keeps the old row's metrics
    that it did not compute (per-metric tables are merged, ``new`` winning where both have one).
    """
    if old is None or old.get("status") != "ok":
        return new
    if new.get("status") != "ok":
        return None
    merged = dict(new)
    for key in MERGED_KEYS:
        if isinstance(old.get(key), dict) or isinstance(new.get(key), dict):
            merged[key] = {**(old.get(key) or {}), **(new.get(key) or {})}
    if "metric_errors" in merged:  # a metric recomputed without error drops its old error
        recomputed = set(new.get("metrics") or {}) - set(new.get("metric_errors") or {})
        merged["metric_errors"] = {k: v for k, v in merged["metric_errors"].items() if k not in recomputed}
    if old.get("node_keys") or new.get("node_keys"):  # the old metrics' nodes stay referenced
        merged["node_keys"] = sorted({*(old.get("node_keys") or ()), *(new.get("node_keys") or ())})
    names = list(old.get("metric_names") or [])
    names += [n for n in new.get("metric_names") or [] if n not in names]
    if names:
        merged["metric_names"] = names
    return merged


class ResultsFile:
    """``results.jsonl`` of one output folder; ``attempts`` holds failures that kept an ok row."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.attempts = self.path.with_name(self.path.stem + ".attempts.jsonl")
        self._lock = FileLock(str(self.path) + ".lock")

    def _read(self) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for record in read_records(self.path, required=("row_id",)):
                rows[record["row_id"]] = record
        return rows

    def put(self, record: dict[str, Any]) -> dict[str, Any]:
        """Merge ``record`` into the file; returns the row as it now stands."""
        with self._lock:
            rows = self._read()
            old = rows.get(record["row_id"])
            merged = merge_record(old, record)
            if merged is None:
                assert old is not None
                log.warning(
                    "row %s failed (%s); the earlier ok row is kept, the attempt logged in %s",
                    record["row_id"][:12],
                    record.get("error"),
                    self.attempts.name,
                )
                with open(self.attempts, "a") as handle:
                    handle.write(dumps_record(record) + "\n")
                return old
            rows[record["row_id"]] = merged
            self._write(rows.values())
            return merged

    def records(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._read().values())

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        text = "".join(dumps_record(r) + "\n" for r in records)
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
