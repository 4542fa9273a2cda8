"""The result record: one row of ``results.jsonl``, typed, versioned and frozen.

Schema 2 adds ``components`` (each as ``dist==version:name@version``) and ``reference`` (the
reference a row provides, e.g. ``original``; from the unlearner's ``reference`` metadata) to the
fields of schema 1, whose records still load (the new fields empty). Schema 3 adds
``provenance`` (per stage: device, threads, precision, runtime_s, computed_at of the artifact
used), ``mask_violations`` (per stage: pruned weights a component left nonzero, re-masked) and
``node_keys`` (the artifact folders the row used). Schema 4 adds ``seeds``: the row's
``train``, ``unlearn`` and ``eval`` seeds (records of schema 1 to 3 read as train = unlearn =
``seed`` and eval 0, which is what they ran with).
``unchanged`` (True where the row's unlearner returned its start model's weights unchanged) is
an additive field with a default: records without it load as False.
``node_keys`` (the artifact folders the row used). Optional fields that older records lack (read
as None): ``external`` (the row scored a model produced outside the run: ``name``, ``file``,
``sha256``, ``factory``; its label is ``external:<name>``) and ``pretrained`` (the original was
loaded from a checkpoint, ``run --original``: ``source``, ``file``, ``sha256``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from unlearnbench.hashing import sha256_json

SCHEMA_VERSION = 4
DICT_FIELDS = (
    "metrics",
    "versions",
    "metric_info",
    "metric_details",
    "metric_errors",
    "runtime_s",
    "epoch_log",
    "params",
    "components",
    "provenance",
    "mask_violations",
    "seeds",
)


ROW_ID_FIELDS = (
    "protocol",
    "protocol_version",
    "protocol_hash",
    "forget_set",
    "pruner",
    "sparsity_target",
    "unlearner",
    "unprune",
    "seed",
    "data_copy",
)
"""The fields whose hash is a row's ``row_id``; an un-prune row adds ``unpruner`` (plain rows kept
the ids they had before several un-pruners could share a run), a later unlearning or evaluation
repetition adds its seed (repetition 0 of each keeps the id a run without repetitions gives), and
``data_copy`` joined the id later (rows of two copies of a dataset are two rows; records written
before keep their stored id in the file and are re-keyed on reading,
:func:`unlearnbench.report.results.current_row_id`)."""
LEGACY_ROW_ID_FIELDS = ROW_ID_FIELDS[:-1]
"""The fields of the ``row_id`` of records written before the data copy was part of it."""


def row_id(head: Mapping[str, Any]) -> str:
    """The ``row_id`` of a record's (or record head's) fields."""
    identity = {k: head[k] for k in ROW_ID_FIELDS + (("unpruner",) if head.get("unprune") else ())}
    seeds = head.get("seeds") or {}
    if seeds.get("unlearn", head["seed"]) != head["seed"]:
        identity["unlearn_seed"] = seeds["unlearn"]
    if seeds.get("eval", 0) != 0:
        identity["eval_seed"] = seeds["eval"]
    return sha256_json({"stage": "row", **identity})


def method_label(unlearner: str, unprune: bool, unpruner: str | None) -> str:
    """``ft``, ``ft + reprune`` (an un-prune row), ``ft + un-prune`` (one whose un-pruner is unknown)."""
    return unlearner + (f" + {unpruner or 'un-prune'}" if unprune else "")


@dataclass(frozen=True)
class ResultRecord:
    """One result row; ``status`` is ``ok`` or ``failed`` (then ``error`` says why)."""

    protocol: str
    protocol_version: int
    protocol_hash: str
    dataset: str
    data_copy: str
    model: str
    forget_set: str
    forget_kind: str
    forget_size: int
    forget_sha256: str
    pruner: str
    sparsity_target: float
    unlearner: str
    unprune: bool
    seed: int
    unpruner: str | None = None
    row_id: str = ""
    status: str = "ok"
    error: str | None = None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    versions: Mapping[str, Any] = field(default_factory=dict)
    device: str = ""
    git: str | None = None
    sparsity: float | None = None
    filter_sparsity: float | None = None
    metric_names: tuple[str, ...] = ()
    metric_info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metric_details: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    metric_errors: Mapping[str, str] = field(default_factory=dict)
    runtime_s: Mapping[str, float] = field(default_factory=dict)
    provenance: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mask_violations: Mapping[str, int] = field(default_factory=dict)
    unchanged: bool = False
    node_keys: tuple[str, ...] = ()
    epoch_log: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    components: Mapping[str, str] = field(default_factory=dict)
    reference: str | None = None
    tuning: Mapping[str, Any] | None = None
    seeds: Mapping[str, int] = field(default_factory=dict)
    """``train``, ``unlearn`` and ``eval`` seeds (:mod:`unlearnbench.seeds`)."""
    external: Mapping[str, Any] | None = None
    pretrained: Mapping[str, Any] | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def method(self) -> str:
        """The row's label: the unlearner, ``+ <un-pruner>`` for an un-prune row."""
        return method_label(self.unlearner, self.unprune, self.unpruner)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written to ``results.jsonl``."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["metric_names"] = list(self.metric_names)
        out["node_keys"] = list(self.node_keys)
        for name in DICT_FIELDS:
            out[name] = dict(out[name])
        for name in ("external", "pretrained"):
            out[name] = None if out[name] is None else dict(out[name])
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ResultRecord:
        """A record read back (schema 1 to 4); unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["metric_names"] = tuple(values.get("metric_names") or ())
        values["node_keys"] = tuple(values.get("node_keys") or ())
        for name in DICT_FIELDS:
            values[name] = values.get(name) or {}
        values.setdefault("schema_version", 1)
        if not values["seeds"] and "seed" in values:
            values["seeds"] = {"train": values["seed"], "unlearn": values["seed"], "eval": 0}
        return cls(**values)
