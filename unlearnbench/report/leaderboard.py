"""Leaderboard tables rendered from result records only (pandas + tabulate).

One table per (protocol, version, hash, forget set, pruner, sparsity): reference rows first
(the ``original`` row, then rows that provide a reference), every metric as mean +- std over
seeds, the number of seeds, and the average gap to the ``retrain`` reference ("Disparity Ave.",
Jia et al. 2023) over the gap metrics where all are present. Which rows are references and which
metrics make the gap come from the records (``reference``, ``metric_info[name]["gap"]``); for
records written before they held it, from :class:`Roles` (the CLI reads them from the registry).
Each table is labelled with the data copy, hardware and commit; when its rows were computed on
different devices or thread counts (the record's ``device``, from the artifacts' provenance) an
``RTE device`` column names each row's, and a method whose component moved pruned weights is
marked † with the count (``mask_violations``) under the table.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from unlearnbench.report.record import ResultRecord
from unlearnbench.run.plan import GAP_REFERENCE, ORIGINAL


@dataclass(frozen=True)
class Roles:
    """Component metadata for records that lack it: the reference each unlearner's rows provide
    and the metrics of the Gap column."""

    references: Mapping[str, str] = field(default_factory=dict)
    gap_metrics: tuple[str, ...] = ()


def _reference(record: ResultRecord, roles: Roles) -> str | None:
    if record.reference is not None or record.schema_version >= 2:
        return record.reference
    if record.unlearner == ORIGINAL:
        return ORIGINAL
    return None if record.unprune else roles.references.get(record.unlearner)


def _gap_metrics(record: ResultRecord, roles: Roles) -> tuple[str, ...]:
    if record.schema_version >= 2:
        return tuple(n for n in record.metric_names if record.metric_info.get(n, {}).get("gap"))
    return tuple(n for n in record.metric_names if n in roles.gap_metrics)


def _fmt(values: Sequence[float], digits: int) -> str:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return "-"
    series = pd.Series(clean, dtype=float)
    mean = f"{series.mean():.{digits}f}"
    return mean if len(clean) == 1 else f"{mean} ± {series.std(ddof=1):.{digits}f}"


def _header(name: str, info: dict[str, Any]) -> str:
    label = info.get("label", name)
    unit = info.get("unit", "")
    return f"{label} ({unit})" if unit and unit != "%" else label


def _gap(ok: pd.DataFrame, row: Any) -> float | None:
    """Mean |metric - retrain's| over the gap metrics for one record (same seed and setting)."""
    same = ok[
        (ok.reference_role == GAP_REFERENCE)
        & (ok.seed == row.seed)
        & (ok.pruner == row.pruner)
        & (ok.sparsity_target == row.sparsity_target)
        & (ok.forget_set == row.forget_set)
    ]
    if same.empty:
        return None
    ref = same.iloc[0].metrics
    names = row.gap_metrics
    gaps = [
        abs(row.metrics[m] - ref[m])
        for m in names
        if row.metrics.get(m) is not None and ref.get(m) is not None
    ]
    return sum(gaps) / len(gaps) if names and len(gaps) == len(names) else None


def _frame(records: Iterable[dict[str, Any]], roles: Roles) -> pd.DataFrame:
    typed = [ResultRecord.from_dict(r) for r in records]
    frame = pd.DataFrame([r.to_dict() for r in typed])
    if not frame.empty:
        frame["reference_role"] = [_reference(r, roles) for r in typed]
        frame["gap_metrics"] = [_gap_metrics(r, roles) for r in typed]
    return frame


def row_gaps(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> dict[str, float | None]:
    """The Gap of every ok record by ``row_id``, as the leaderboard computes it."""
    frame = _frame(records, roles or Roles())
    if frame.empty:
        return {}
    ok = frame[frame.status == "ok"]
    return {row.row_id: _gap(ok, row) for row in ok.itertuples()}


def render(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> str:
    """Markdown for every group of comparable records, or a note that there are none."""
    frame = _frame(records, roles or Roles())
    if frame.empty:
        return "_No results._\n"
    failed = frame[frame.status != "ok"]
    ok = frame[frame.status == "ok"].copy()
    parts = []
    group_keys = ["protocol", "protocol_version", "protocol_hash", "forget_set", "pruner", "sparsity_target"]
    if not ok.empty:
        ok["gap"] = [_gap(ok, row) for row in ok.itertuples()]
        for key, group in ok.groupby(group_keys, sort=True):
            parts.append(_render_group(dict(zip(group_keys, key, strict=True)), group))
    if not failed.empty:
        lines = ["### Failed rows", ""]
        for row in failed.itertuples():
            lines.append(
                f"- {row.protocol} / {row.forget_set} / {row.pruner}@{row.sparsity_target} / {row.unlearner}"
                f"{' + un-prune' if row.unprune else ''} / seed {row.seed}: {row.error}"
            )
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _render_group(key: dict[str, Any], group: pd.DataFrame) -> str:
    info: dict[str, Any] = {}
    for row_info in group.metric_info:
        info.update(row_info or {})
    metric_names: list[str] = []  # the protocol's order (records store metric_info sorted by name)
    for names in group.get("metric_names", pd.Series([list(info)] * len(group))):
        metric_names += [
            n for n in (names if isinstance(names, list) else list(info)) if n not in metric_names
        ]
    metric_names += [n for n in info if n not in metric_names]
    table_rows = []
    is_reference = group.reference_role.map(lambda r: isinstance(r, str))
    original = set(group.unlearner[group.reference_role == ORIGINAL])
    references = set(group.unlearner[is_reference])
    mixed = group.device.nunique() > 1
    notes = []
    for (unlearner, unprune), sub in group.groupby(["unlearner", "unprune"], sort=False):
        method = unlearner + (" + un-prune" if unprune else "")
        moved: dict[str, int] = {}
        for found in sub.mask_violations:
            for stage, count in (found or {}).items():
                moved[stage] = moved.get(stage, 0) + int(count)
        if sum(moved.values()):
            stages = ", ".join(f"{n:,} in {stage}" for stage, n in sorted(moved.items()) if n)
            notes.append(f"† {method}: pruned weights left nonzero and re-masked: {stages}.")
        cells: dict[str, Any] = {
            "Method": method + (" †" if sum(moved.values()) else ""),
            "Sparsity": _fmt(list(sub.sparsity), 3),
        }
        for name in metric_names:
            cells[_header(name, info[name])] = _fmt(
                [m.get(name) for m in sub.metrics], 3 if info[name].get("unit") == "min" else 2
            )
        cells["Gap"] = _fmt([g for g in sub.gap if g is not None], 2)
        cells["Seeds"] = sub.seed.nunique()
        if mixed:
            cells["RTE device"] = "; ".join(sorted(set(sub.device)))
        order = (0 if unlearner in original else 1 if unlearner in references else 2, unlearner, unprune)
        table_rows.append((order, cells))
    table_rows.sort(key=lambda item: item[0])
    table = pd.DataFrame([cells for _, cells in table_rows])
    first = group.iloc[0]
    devices = ", ".join(sorted(set(group.device)))
    commits = ", ".join(sorted({str(c)[:12] for c in group.git}))
    title = (
        f"### {key['protocol']} v{key['protocol_version']} · forget `{key['forget_set']}` "
        f"({first.forget_kind}, {first.forget_size} examples) · {key['pruner']} @ {key['sparsity_target']}"
    )
    caption = (
        f"Protocol hash `{key['protocol_hash'][:12]}` · dataset {first.dataset} (copy `{first.data_copy}`) · "
        f"model {first.model} · device {devices} · commit {commits} · "
        f"forget-set sha256 `{first.forget_sha256[:12]}`. Mean ± std over seeds; Gap = mean |Δ| to retrain "
        f"over {', '.join(_labels(first.gap_metrics, info))}; RTE in minutes on the device "
        f"{'of each row (rows mix devices or thread counts)' if mixed else 'shown'}."
    )
    footer = "".join(f"\n{note}\n" for note in notes)
    return f"{title}\n\n{caption}\n\n{table.to_markdown(index=False)}\n{footer}"


def _labels(names: Sequence[str], info: dict[str, Any]) -> list[str]:
    return [info.get(n, {}).get("label", n) for n in names]
