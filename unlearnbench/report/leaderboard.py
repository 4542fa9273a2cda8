"""Leaderboard tables rendered from result records only (pandas + tabulate).

One table per (protocol, version, hash, forget set, pruner, sparsity): reference rows first
(the ``original`` row, then rows that provide a reference), every metric as mean +- std over
seeds, the number of seeds, and the average gap to the ``retrain`` reference ("Disparity Ave.",
Jia et al. 2023) over the gap metrics where all are present: per metric |seed mean - retrain's seed
mean|, averaged (as the paper computes it from its mean columns, not the mean of per-seed gaps).
When the table has a ``gold`` reference row (un-pruning's target), un-prune rows also get
``Gap-gold``, the same average gap to the gold row. Un-prune rows are labelled ``<unlearner> +
<un-pruner>`` and sorted so that each stands beside the same unlearner's other un-pruners (e.g.
its ``control``). Which rows are references and which metrics make the gap come from the records
(``reference``, ``metric_info[name]["gap"]``); for records written before they held it, from
:class:`Roles` (the CLI reads them from the registry).
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

from unlearnbench.report.record import ResultRecord, method_label
from unlearnbench.run.plan import GAP_REFERENCE, ORIGINAL, UNPRUNE_GAP_REFERENCE


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


_CELL_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "\n": " ", "\r": " "}
)


def escape(value: Any) -> str:
    """``value`` as text that stays one markdown table cell and no HTML: ``&``, ``<``, ``>``, ``|``
    and backticks become entities, line breaks spaces."""
    return str(value).translate(_CELL_ESCAPES)


def _fmt(values: Sequence[float], digits: int) -> str:
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return "-"
    series = pd.Series(clean, dtype=float)
    mean = f"{series.mean():.{digits}f}"
    return mean if len(clean) == 1 else f"{mean} ± {series.std(ddof=1):.{digits}f}"


def _header(name: str, info: dict[str, Any]) -> str:
    label = escape(info.get("label", name))
    unit = escape(info.get("unit", ""))
    return f"{label} ({unit})" if unit and unit != "%" else label


def _mean(values: Iterable[Any]) -> float | None:
    clean = [float(v) for v in values if v is not None and not math.isnan(v)]
    return sum(clean) / len(clean) if clean else None


def _gap(sub: pd.DataFrame, reference: pd.DataFrame) -> float | None:
    """Mean over the gap metrics of |mean over ``sub``'s seeds - mean over ``reference``'s seeds|
    (as the paper computes it from its mean columns; not the mean of per-seed gaps); None unless
    every gap metric the reference has a mean for has one in ``sub`` too. A gap metric missing on
    the reference (failed, non-finite) is left out of every row's Gap rather than blanking them all
    (the caption names it, :func:`_gap_names`)."""
    names = _gap_names(sub.iloc[0].gap_metrics, reference)
    if not names:
        return None
    gaps = []
    for name in names:
        ours = _mean(m.get(name) for m in sub.metrics)
        ref = _mean(m.get(name) for m in reference.metrics)
        if ours is None or ref is None:
            return None
        gaps.append(abs(ours - ref))
    return sum(gaps) / len(gaps)


def _gap_names(names: Sequence[str], reference: pd.DataFrame) -> tuple[str, ...]:
    """The gap metrics that the ``reference`` rows have a mean for."""
    if reference.empty:
        return ()
    return tuple(n for n in names if _mean(m.get(n) for m in reference.metrics) is not None)


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
    same = ["protocol_hash", "data_copy", "seed", "pruner", "sparsity_target", "forget_set"]
    gaps: dict[str, float | None] = {}
    for index, row in ok.iterrows():
        reference = ok[(ok.reference_role == GAP_REFERENCE) & (ok[same] == row[same]).all(axis=1)]
        gaps[row.row_id] = _gap(ok.loc[[index]], reference)
    return gaps


def render(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> str:
    """Markdown for every group of comparable records, or a note that there are none."""
    frame = _frame(records, roles or Roles())
    if frame.empty:
        return "_No results._\n"
    failed = frame[frame.status != "ok"]
    ok = frame[frame.status == "ok"].copy()
    parts = []
    group_keys = [
        "protocol",
        "protocol_version",
        "protocol_hash",
        "data_copy",
        "forget_set",
        "pruner",
        "sparsity_target",
    ]
    if not ok.empty:
        ok["unpruner"] = ok["unpruner"].fillna("") if "unpruner" in ok else ""
        for key, group in ok.groupby(group_keys, sort=True):
            parts.append(_render_group(dict(zip(group_keys, key, strict=True)), group))
    if not failed.empty:
        lines = ["### Failed rows", ""]
        for row in failed.itertuples():
            unpruner = row.unpruner if isinstance(row.unpruner, str) else None
            method = row.unlearner + method_label("", row.unprune, unpruner)
            lines.append(
                f"- {escape(row.protocol)} / {escape(row.forget_set)} / "
                f"{escape(row.pruner)}@{row.sparsity_target} / {escape(method)} / seed {row.seed}: "
                f"{escape(row.error)}"
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
    gap_reference = group[group.reference_role == GAP_REFERENCE]
    gold_reference = group[group.reference_role == UNPRUNE_GAP_REFERENCE]
    has_gold = not gold_reference.empty
    mixed = group.device.nunique() > 1
    notes = []
    for (unlearner, unprune, unpruner), sub in group.groupby(
        ["unlearner", "unprune", "unpruner"], sort=False
    ):
        method = escape(method_label(unlearner, unprune, unpruner or None))
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
        gap = _gap(sub, gap_reference)
        cells["Gap"] = "-" if gap is None else f"{gap:.2f}"
        if has_gold:
            gap_gold = _gap(sub, gold_reference) if unprune else None
            cells["Gap-gold"] = "-" if gap_gold is None else f"{gap_gold:.2f}"
        cells["Seeds"] = sub.seed.nunique()
        if mixed:
            cells["RTE device"] = escape("; ".join(sorted(set(sub.device))))
        rank = 0 if unlearner in original else 1 if unlearner in references else 2
        order = (rank, unlearner, unprune, unpruner)
        table_rows.append((order, cells))
    table_rows.sort(key=lambda item: item[0])
    table = pd.DataFrame([cells for _, cells in table_rows])
    first = group.iloc[0]
    used = _gap_names(first.gap_metrics, gap_reference)
    left_out = [n for n in first.gap_metrics if n not in used]
    devices = escape(", ".join(sorted(set(group.device))))
    commits = escape(", ".join(sorted({str(c)[:12] for c in group.git})))
    title = (
        f"### {escape(key['protocol'])} v{key['protocol_version']} · forget `{escape(key['forget_set'])}` "
        f"({escape(first.forget_kind)}, {first.forget_size} examples) · {escape(key['pruner'])} @ "
        f"{key['sparsity_target']}"
    )
    caption = (
        f"Protocol hash `{escape(key['protocol_hash'][:12])}` · dataset {escape(first.dataset)} "
        f"(copy `{escape(first.data_copy)}`) · model {escape(first.model)} · device {devices} · "
        f"commit {commits} · "
        f"forget-set sha256 `{escape(first.forget_sha256[:12])}`. Mean ± std over seeds; Gap = mean over "
        f"{', '.join(_labels(used or first.gap_metrics, info))} of |seed mean - retrain's seed mean|"
        + (f" ({', '.join(_labels(left_out, info))}: no value on retrain)" if used and left_out else "")
        + ("; Gap-gold = the same to the gold row, for un-prune rows" if has_gold else "")
        + "; RTE in minutes on the device "
        + ("of each row (rows mix devices or thread counts)." if mixed else "shown.")
    )
    footer = "".join(f"\n{note}\n" for note in notes)
    return f"{title}\n\n{caption}\n\n{table.to_markdown(index=False)}\n{footer}"


def _labels(names: Sequence[str], info: dict[str, Any]) -> list[str]:
    return [escape(info.get(n, {}).get("label", n)) for n in names]
