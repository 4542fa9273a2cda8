"""Results as data: result records as flat pandas DataFrames, and CSV / parquet files of them.

:func:`load_frame` reads ``results.jsonl`` files into one row per record: the identity columns
(:data:`IDENTITY_COLUMNS`; ``method`` is the leaderboard's label, e.g. ``ft + reprune``), then one
column per metric (named as the metric), then ``<metric>.<detail>`` for the scalar details a
metric reports (e.g. ``eps-score.F``) and ``runtime_s.<stage>``. Per-stage seeds
(``seeds.train``, ``seeds.unlearn``, ``seeds.eval``) are columns where the records carry a
``seeds`` table; records without one leave them empty. Any other scalar field of a record (a
newer schema's) follows as a column of its own. :func:`summary_frame` aggregates the seed level
into one row per setting and method with each metric's mean, standard deviation, seed count and
a Student-t confidence interval (``mean(ua)``, ``std(ua)``, ``n(ua)``, ``low(ua)``, ``high(ua)``).
"""

from __future__ import annotations

import importlib.util
import io
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from unlearnbench.errors import InvalidValueError
from unlearnbench.report.record import method_label
from unlearnbench.report.results import read_many

IDENTITY_COLUMNS = (
    "protocol",
    "protocol_version",
    "protocol_hash",
    "dataset",
    "data_copy",
    "model",
    "forget_set",
    "forget_kind",
    "forget_size",
    "pruner",
    "sparsity_target",
    "sparsity",
    "filter_sparsity",
    "unlearner",
    "unprune",
    "unpruner",
    "method",
    "reference",
    "seed",
    "status",
    "error",
    "row_id",
    "device",
    "git",
)
"""The columns that say which row a record is, in this order (absent fields are empty)."""
SEED_COLUMNS = ("seeds.train", "seeds.unlearn", "seeds.eval")
"""Per-stage seeds, when the records carry them (a ``seeds`` table in the record)."""
SETTING = ("protocol", "protocol_hash", "data_copy", "forget_set", "pruner", "sparsity_target", "method")
"""What :func:`summary_frame` groups seeds within."""
TABLES = ("metrics", "metric_details", "runtime_s", "seeds")
"""Record fields read into columns of their own (other tables, such as ``versions``, are not)."""
FORMATS = {".csv": "CSV", ".parquet": "parquet"}


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def flat_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """One record as a flat ``{column: value}`` mapping (see the module docstring)."""
    row: dict[str, Any] = {name: record.get(name) for name in IDENTITY_COLUMNS}
    unprune = bool(record.get("unprune"))
    row["method"] = method_label(str(record.get("unlearner")), unprune, record.get("unpruner"))
    seeds = record.get("seeds")
    if isinstance(seeds, Mapping):
        for stage, value in seeds.items():
            row[f"seeds.{stage}"] = value
    taken = set(row)
    for name, value in (record.get("metrics") or {}).items():
        row[f"metric:{name}" if name in taken else name] = value
    for name, details in (record.get("metric_details") or {}).items():
        for key, value in (details or {}).items():
            if _scalar(value):
                row[f"{name}.{key}"] = value
    for stage, seconds in (record.get("runtime_s") or {}).items():
        row[f"runtime_s.{stage}"] = seconds
    for name, value in record.items():
        if name not in row and name not in TABLES and _scalar(value):
            row[name] = value
    return row


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The records as a DataFrame, one row each; metric columns follow the records' metric order."""
    records = list(records)
    rows = [flat_record(r) for r in records]
    metrics: list[str] = []
    for record in records:
        for name in [*(record.get("metric_names") or ()), *(record.get("metrics") or {})]:
            if name not in metrics:
                metrics.append(name)
    found: list[str] = []
    for row in rows:
        found += [c for c in row if c not in found]
    identity = [*IDENTITY_COLUMNS, *(c for c in SEED_COLUMNS if c in found)]
    seeds = sorted(c for c in found if c.startswith("seeds.") and c not in identity)
    metric_columns = [f"metric:{m}" if m in IDENTITY_COLUMNS else m for m in metrics]
    metric_columns = [c for c in metric_columns if c in found]
    details = sorted(c for c in found if "." in c and c.split(".")[0] in metrics)
    runtimes = sorted(c for c in found if c.startswith("runtime_s."))
    used = {*identity, *seeds, *metric_columns, *details, *runtimes}
    others = [c for c in found if c not in used]
    columns = [*identity, *seeds, *metric_columns, *details, *runtimes, *others]
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["metrics"] = metric_columns
    return frame


def load_frame(paths: Path | str | Iterable[Path | str]) -> pd.DataFrame:
    """The records of one or several ``results.jsonl`` files as one flat DataFrame (a row that
    appears in two files is refused, as by the leaderboard)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    return records_frame(read_many([Path(p) for p in paths]))


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a :func:`records_frame` frame (kept in ``frame.attrs["metrics"]``)."""
    if "metrics" not in frame.attrs:
        raise InvalidValueError("the frame does not say its metric columns; build it with load_frame")
    return [c for c in frame.attrs["metrics"] if c in frame.columns]


def _t_quantile(level: float, dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2.0, dof))


def summary_frame(frame: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """One row per setting and method (:data:`SETTING`) over the ``ok`` rows of ``frame``:
    ``seeds`` (the seeds aggregated) and, per metric ``m``, ``mean(m)``, ``std(m)`` (sample, ddof
    1), ``n(m)`` (seeds with a value) and ``low(m)`` / ``high(m)``, the two-sided ``level``
    Student-t interval of the mean (empty below two values)."""
    if not 0.0 < level < 1.0:
        raise InvalidValueError(f"interval level {level!r} must be in (0, 1)")
    ok = frame[frame["status"] == "ok"]
    metrics = metric_columns(frame)
    rows = []
    for key, group in ok.groupby(list(SETTING), dropna=False, sort=True):
        row: dict[str, Any] = dict(zip(SETTING, key, strict=True))
        row["seeds"] = ",".join(str(s) for s in sorted(group["seed"].dropna().unique()))
        for metric in metrics:
            values = group[metric].dropna().astype(float)
            n = len(values)
            mean = float(values.mean()) if n else math.nan
            std = float(values.std(ddof=1)) if n > 1 else math.nan
            half = _t_quantile(level, n - 1) * std / math.sqrt(n) if n > 1 else math.nan
            row.update(
                {
                    f"mean({metric})": mean,
                    f"std({metric})": std,
                    f"n({metric})": n,
                    f"low({metric})": mean - half,
                    f"high({metric})": mean + half,
                }
            )
        rows.append(row)
    stats = ("mean", "std", "n", "low", "high")
    columns = [*SETTING, "seeds", *(f"{s}({m})" for m in metrics for s in stats)]
    return pd.DataFrame(rows, columns=columns)


def _parquet_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every object column holding one type (mixed columns become strings)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            kinds = {type(v) for v in out[column] if v is not None and not (isinstance(v, float) and v != v)}
            if len(kinds) > 1:
                out[column] = [None if v is None else str(v) for v in out[column]]
    return out


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parquet_available() -> bool:
    """Whether pandas can write parquet here (pyarrow is installed)."""
    return importlib.util.find_spec("pyarrow") is not None


def check_export_path(path: Path) -> str:
    """The format of an export file by its suffix (``.csv`` or ``.parquet``), or one clear error."""
    if path.is_dir():
        raise InvalidValueError(f"-o {path} is a directory; give a file name ending in .csv or .parquet")
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidValueError(
            f"-o {path}: unknown file type {suffix or '(none)'!r}; valid choices: {', '.join(FORMATS)}"
        )
    if suffix == ".parquet" and not parquet_available():
        raise InvalidValueError(
            f"-o {path}: writing parquet needs the pyarrow package: pip install 'unlearnbench[parquet]'"
        )
    return FORMATS[suffix]


def write_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` as CSV or parquet (by the suffix), replacing it in one step."""
    path = Path(path)
    kind = check_export_path(path)
    if kind == "CSV":
        data = frame.to_csv(index=False).encode("utf-8")
    else:
        buffer = io.BytesIO()
        _parquet_ready(frame).to_parquet(buffer, engine="pyarrow", index=False)
        data = buffer.getvalue()
    _write_bytes_atomic(path, data)
    return path


def export_results(
    paths: Sequence[Path], output: Path, *, summary: bool = False, level: float = 0.95
) -> pd.DataFrame:
    """Read ``paths``, write their frame (or its :func:`summary_frame`) to ``output``; returns it."""
    check_export_path(Path(output))
    frame = load_frame(paths)
    if summary:
        frame = summary_frame(frame, level)
    write_frame(frame, Path(output))
    return frame


__all__ = [
    "IDENTITY_COLUMNS",
    "SEED_COLUMNS",
    "SETTING",
    "export_results",
    "flat_record",
    "load_frame",
    "metric_columns",
    "records_frame",
    "summary_frame",
    "write_frame",
]
