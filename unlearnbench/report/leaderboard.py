"""Leaderboard tables rendered from result records only (pandas + tabulate).

One table per (protocol, version, hash, data copy, forget set, pruner, sparsity): reference rows
first (the ``original`` row, then rows that provide a reference), every metric as its mean with
the 95% interval over train seeds and the design ``n`` = train seeds x unlearning repetitions x
evaluation repetitions (:mod:`unlearnbench.report.noise`), and the gap to the ``retrain``
reference ("Disparity Ave.", Jia et al. 2023) over the gap metrics: the mean over train seeds of
the per-seed gap, with its interval; a method whose paired difference to retrain holds 0 on every
gap metric is marked ≈. Under a table whose rows have repetitions, the variance shares of
training, unlearning and evaluation. When the table has a ``gold`` reference row (un-pruning's
target), un-prune rows also get ``Gap-gold``, the same gap to the gold row. Un-prune rows are
labelled ``<unlearner> + <un-pruner>`` and sorted so that each stands beside the same unlearner's
other un-pruners (e.g. its ``control``). Which rows are references and which metrics make the gap
come from the records (``reference``, ``metric_info[name]["gap"]``); for records written before
they held it, from :class:`Roles` (the CLI reads them from the registry).
Each table is labelled with the data copy, hardware and commit; when its rows were computed on
different devices or thread counts (the record's ``device``, from the artifacts' provenance) an
``RTE device`` column names each row's, and a method whose component moved pruned weights is
marked † with the count (``mask_violations``) under the table; one whose unlearner returned its
start model unchanged (the record's ``unchanged``) is marked ‡ with the number of seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from unlearnbench.reference_names import GAP_REFERENCE, ORIGINAL, UNPRUNE_GAP_REFERENCE
from unlearnbench.report import compare, noise
from unlearnbench.report.record import ResultRecord, method_label
from unlearnbench.report.table import Table, escape


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


def _fmt(summary: noise.Summary | None, digits: int) -> str:
    """``mean ± half-width`` of the 95% interval over train seeds (the mean alone with one train
    seed), ``-`` for no value."""
    if summary is None:
        return "-"
    mean = f"{summary.mean:.{digits}f}"
    return mean if summary.half_width is None else f"{mean} ± {summary.half_width:.{digits}f}"


def _header(name: str, info: dict[str, Any]) -> str:
    label = info.get("label", name)
    unit = info.get("unit", "")
    return f"{label} ({unit})" if unit and unit != "%" else label


def _summary(sub: pd.DataFrame, name: str) -> noise.Summary | None:
    return noise.summarize(noise.observations(sub.to_dict("records"), name))


def _gaps(sub: pd.DataFrame, reference: pd.DataFrame) -> dict[int, float]:
    """Train seed -> the gap of ``sub``'s train-seed means to ``reference``'s (:func:`compare.gap`)."""
    names = sub.iloc[0].gap_metrics
    if reference.empty or not names:
        return {}
    return compare.train_seed_gaps(sub.to_dict("records"), reference.to_dict("records"), names)


Means = Mapping[str, Mapping[int, float]]
"""Gap metric -> train seed -> the rows' mean at that seed (over their repetitions)."""


def _train_means(rows: pd.DataFrame, names: Sequence[str]) -> dict[str, dict[int, float]]:
    records = rows.to_dict("records")
    return {n: noise.train_means(noise.observations(records, n)) for n in names}


def _gap_estimate(ours: Means, reference: Means, names: Sequence[str]) -> compare.GapEstimate | None:
    """The paper's gap of our mean columns to the reference's, with its bootstrap interval; a gap
    metric with no value on the reference is left out."""
    used = [n for n in names if reference.get(n)]
    return compare.gap_estimate(ours, reference, used) if used else None


def _like_reference(ours: Means, reference: Means, names: Sequence[str]) -> bool:
    """Whether, on every gap metric, the 95% interval of the paired (train-seed) difference to the
    reference holds 0: the rows are indistinguishable from the reference at this many seeds."""
    if not names:
        return False
    for name in names:
        diff = compare.paired(ours[name], reference.get(name, {}))
        if diff.half_width is None or abs(diff.mean) > diff.half_width:
            return False
    return True


def _frame(records: Iterable[dict[str, Any]], roles: Roles) -> pd.DataFrame:
    typed = [ResultRecord.from_dict(r) for r in records]
    frame = pd.DataFrame([r.to_dict() for r in typed])
    if not frame.empty:
        frame["reference_role"] = [_reference(r, roles) for r in typed]
        frame["gap_metrics"] = [_gap_metrics(r, roles) for r in typed]
    return frame


def row_gaps(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> dict[str, float | None]:
    """The gap of every ok record by ``row_id``: its own values against the retrain rows'
    train-seed means at its train seed and setting."""
    frame = _frame(records, roles or Roles())
    if frame.empty:
        return {}
    ok = frame[frame.status == "ok"]
    same = ["protocol_hash", "data_copy", "pruner", "sparsity_target", "forget_set"]
    gaps: dict[str, float | None] = {}
    for index, row in ok.iterrows():
        reference = ok[(ok.reference_role == GAP_REFERENCE) & (ok[same] == row[same]).all(axis=1)]
        train = noise.record_seeds(row)[0]
        found = _gaps(ok.loc[[index]], reference)
        gaps[row.row_id] = found.get(train)
    return gaps


GROUP_KEYS = (
    "protocol",
    "protocol_version",
    "protocol_hash",
    "data_copy",
    "forget_set",
    "pruner",
    "sparsity_target",
)
"""What a table holds fixed: results of different protocol hashes or data copies never share one."""


def tables(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> tuple[list[Table], list[str]]:
    """Every group of comparable ok records as a :class:`Table`, and one line per failed row."""
    frame = _frame(records, roles or Roles())
    if frame.empty:
        return [], []
    ok = frame[frame.status == "ok"].copy()
    found = []
    if not ok.empty:
        ok["unpruner"] = ok["unpruner"].fillna("") if "unpruner" in ok else ""
        keys = list(GROUP_KEYS)
        for key, group in ok.groupby(keys, sort=True):
            found.append(_group_table(dict(zip(keys, key, strict=True)), group))
    lines = []
    for row in frame[frame.status != "ok"].itertuples():
        unpruner = row.unpruner if isinstance(row.unpruner, str) else None
        lines.append(
            f"{row.protocol} / {row.forget_set} / {row.pruner}@{row.sparsity_target} / {row.unlearner}"
            f"{method_label('', row.unprune, unpruner)} / seed {row.seed}: {row.error}"
        )
    return found, lines


def render(records: Iterable[dict[str, Any]], roles: Roles | None = None) -> str:
    """Markdown for every group of comparable records, or a note that there are none."""
    found, failed = tables(records, roles)
    if not found and not failed:
        return "_No results._\n"
    parts = [table.markdown() for table in found]
    if failed:
        parts.append("\n".join(["### Failed rows", "", *(f"- {escape(line)}" for line in failed)]) + "\n")
    return "\n".join(parts)


def _group_table(key: dict[str, Any], group: pd.DataFrame) -> Table:
    info: dict[str, Any] = {}
    for row_info in group.metric_info:
        info.update(row_info or {})
    metric_names: list[str] = []  # the protocol's order (records store metric_info sorted by name)
    for names in group.get("metric_names", pd.Series([list(info)] * len(group))):
        metric_names += [
            n for n in (names if isinstance(names, list) else list(info)) if n not in metric_names
        ]
    metric_names += [n for n in info if n not in metric_names]
    headers = {name: _header(name, info[name]) for name in metric_names}
    table_rows = []
    is_reference = group.reference_role.map(lambda r: isinstance(r, str))
    original = set(group.unlearner[group.reference_role == ORIGINAL])
    references = set(group.unlearner[is_reference])
    gap_reference = group[group.reference_role == GAP_REFERENCE]
    gold_reference = group[group.reference_role == UNPRUNE_GAP_REFERENCE]
    has_gold = not gold_reference.empty
    mixed = group.device.nunique() > 1
    notes = []
    shares: dict[str, dict[str, str]] = {}
    gap_names = tuple(dict.fromkeys(n for names in group.gap_metrics for n in names))
    retrain_means = _train_means(gap_reference, gap_names)  # once per table, not per row
    gold_means = _train_means(gold_reference, gap_names)
    for (unlearner, unprune, unpruner), sub in group.groupby(
        ["unlearner", "unprune", "unpruner"], sort=False
    ):
        method = method_label(unlearner, unprune, unpruner or None)
        moved: dict[str, int] = {}
        for found in sub.mask_violations:
            for stage, count in (found or {}).items():
                moved[stage] = moved.get(stage, 0) + int(count)
        if sum(moved.values()):
            stages = ", ".join(f"{n:,} in {stage}" for stage, n in sorted(moved.items()) if n)
            notes.append(f"† {method}: pruned weights left nonzero and re-masked: {stages}.")
        unchanged = int(sub.unchanged.fillna(False).astype(bool).sum()) if "unchanged" in sub else 0
        if unchanged:
            notes.append(f"‡ {method}: returned its start model unchanged in {unchanged} of {len(sub)} rows.")
        summaries = {name: _summary(sub, name) for name in metric_names}
        is_approximate = unlearner not in original and unlearner not in references
        names = sub.iloc[0].gap_metrics
        ours = _train_means(sub, names)
        gap = _gap_estimate(ours, retrain_means, names)
        same = is_approximate and gap is not None and _like_reference(ours, retrain_means, names)
        sparsity = _mean_only(noise.summarize(_sparsities(sub)))
        cells: dict[str, Any] = {
            "Method": method + (" †" if sum(moved.values()) else "") + (" ‡" if unchanged else ""),
            "Sparsity": _fmt(sparsity, 3),
        }
        for name in metric_names:
            cells[headers[name]] = _fmt(summaries[name], 3 if info[name].get("unit") == "min" else 2)
        cells["Gap"] = ("-" if gap is None else gap.text()) + (" ≈" if same else "")
        if has_gold:
            gap_gold = _gap_estimate(ours, gold_means, names) if unprune else None
            cells["Gap-gold"] = "-" if gap_gold is None else gap_gold.text()
        design = next((x for x in summaries.values() if x is not None), None)
        cells["n"] = design.design() if design is not None else f"{sub.seed.nunique()}x1x1"
        if mixed:
            cells["RTE device"] = "; ".join(sorted(set(sub.device)))
        values: dict[str, float | None] = {c: None for c in cells}
        values["Sparsity"] = _value(sparsity)
        values.update({headers[name]: _value(summaries[name]) for name in metric_names})
        values["Gap"] = None if gap is None else gap.value
        if has_gold:
            values["Gap-gold"] = None if cells["Gap-gold"] == "-" else gap_gold.value  # type: ignore[union-attr]
        values["n"] = None if design is None else float(design.n[0])
        rank = 0 if unlearner in original else 1 if unlearner in references else 2
        table_rows.append(((rank, unlearner, unprune, unpruner), cells, values))
        shares[method] = {
            headers[name]: text
            for name, x in summaries.items()
            if x is not None and (text := noise.share_text(x)) != "-"
        }
    table_rows.sort(key=lambda item: item[0])
    first = group.iloc[0]
    devices = ", ".join(sorted(set(group.device)))
    commits = ", ".join(sorted({str(c)[:12] for c in group.git}))
    e = {k: escape(v) for k, v in key.items()}
    gap_labels = ", ".join(escape(x) for x in _labels(first.gap_metrics, info))
    left_out = [n for n in first.gap_metrics if not gap_reference.empty and not retrain_means.get(n)]
    title = (
        f"{e['protocol']} v{e['protocol_version']} · forget `{e['forget_set']}` "
        f"({escape(first.forget_kind)}, {first.forget_size} examples) · {e['pruner']} @ "
        f"{e['sparsity_target']}"
    )
    caption = (
        f"Protocol hash `{e['protocol_hash'][:12]}` · dataset {escape(first.dataset)} "
        f"(copy `{escape(first.data_copy)}`) · model {escape(first.model)} · device {escape(devices)} · "
        f"commit {escape(commits)} · forget-set sha256 `{escape(first.forget_sha256[:12])}`. Mean ± "
        "half-width of the 95% t-interval over train seeds (a train seed's value: its mean over unlearning "
        "and evaluation repetitions; no ± with one train seed); n = train seeds x unlearning repetitions x "
        f"evaluation repetitions. Gap = mean over {gap_labels} "
        "of |mean - retrain's mean| (the paper's, from the mean columns; a gap metric with no value on "
        "retrain is left out) [95% paired bootstrap interval over train seeds]; ≈ marks a method whose "
        "paired difference to retrain holds 0 in its 95% interval on every one of them (indistinguishable "
        "at these seeds)"
        + (
            f" ({', '.join(escape(x) for x in _labels(left_out, info))}: no value on retrain)"
            if left_out
            else ""
        )
        + ("; Gap-gold = the same to the gold row, for un-prune rows" if has_gold else "")
        + "; RTE in minutes on the device "
        + ("of each row (rows mix devices or thread counts)." if mixed else "shown.")
    )
    columns = tuple(dict.fromkeys(c for _, cells, _ in table_rows for c in cells))
    return Table(
        key=key,
        title=title,
        caption=caption,
        columns=columns,
        rows=tuple(cells for _, cells, _ in table_rows),
        values=tuple(values for _, _, values in table_rows),
        metrics=tuple(headers.items()),
        shares=shares,
        notes=tuple(notes),
    )


def _value(summary: noise.Summary | None) -> float | None:
    return None if summary is None else summary.mean


def _mean_only(summary: noise.Summary | None) -> noise.Summary | None:
    return None if summary is None else replace(summary, half_width=None)


def _sparsities(sub: pd.DataFrame) -> list[noise.Observation]:
    found = [(r, r.get("sparsity")) for r in sub.to_dict("records")]
    return [
        noise.Observation(*noise.record_seeds(r), float(v)) for r, v in found if isinstance(v, int | float)
    ]


def _labels(names: Sequence[str], info: dict[str, Any]) -> list[str]:
    return [info.get(n, {}).get("label", n) for n in names]
