"""Hyperparameter search for an unlearner, on data the benchmark never reports.

The reference authors tuned each method's learning rate (and alpha) per setting. ``tune`` does it
honestly: every grid point runs the protocol with

- the test metrics read from the validation hold-out (``data.eval_split = "val"``; a protocol
  without a hold-out gets ``holdout_fraction = 0.1`` for tuning), never the test set;
- a *validation forget set* of the same kind and size as each protocol forget set but never the
  reported one: a random set is drawn with ``seed + 1000``, a class-wise set forgets the next
  class (``c + 1 mod K``);

and is scored by the gap to retrain ("Disparity Ave.", Jia et al. 2023: mean |difference of the
seed means| over the gap metrics, averaged over forget sets, pruners and sparsities). The chosen
values go to a TOML override file that ``unlearnbench run --overrides FILE`` applies; its
``[tuning.<unlearner>]`` table (grid, scores, chosen point, tuning protocol hash) is copied into
every record of that unlearner, so a tuned result says how it was tuned.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.config.protocol import Protocol, load_protocol, parse_override_value
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.catalog import Registry
from unlearnbench.report import compare, noise

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

log = logging.getLogger(__name__)

VALIDATION_FORGET_SEED_OFFSET = 1000

RunPoint = Callable[[Protocol, Path], list[dict[str, Any]]]
"""Runs a protocol into an output folder and returns its records (the CLI passes the runner)."""


@dataclass(frozen=True)
class PointScore:
    """One grid point: its parameter values and its gap to retrain (None when it failed)."""

    values: Mapping[str, Any]
    gap: float | None


@dataclass(frozen=True)
class TuneResult:
    unlearner: str
    points: tuple[PointScore, ...]
    chosen: Mapping[str, Any]
    chosen_gap: float
    tuning_protocol_hash: str


def parse_grid(specs: Sequence[str], registry: Registry, unlearner: str) -> list[dict[str, Any]]:
    """``["lr=1e-3,1e-2", "alpha=1e-4"]`` -> the cartesian product as a list of dicts."""
    valid = registry.param_names("unlearner", unlearner)
    axes: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, values = spec.partition("=")
        name = name.strip()
        if not sep or not values.strip():
            raise InvalidValueError(f"--grid {spec!r} is not NAME=V1,V2,... (e.g. --grid lr=1e-3,1e-2)")
        if name not in valid:
            listed = ", ".join(valid) or "(none)"
            raise InvalidValueError(
                f"--grid {spec!r}: {unlearner} has no parameter {name!r}; valid choices: {listed}"
            )
        axes[name] = [parse_override_value(v.strip()) for v in values.split(",") if v.strip()]
    if not axes:
        raise InvalidValueError("give at least one --grid NAME=V1,V2,...")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def validation_overrides(protocol: Protocol, num_classes: int) -> list[tuple[str, Any]]:
    """Overrides that move a protocol onto validation data (see the module docstring)."""
    out: list[tuple[str, Any]] = [("data.eval_split", "val")]
    if protocol.data.holdout_fraction == 0.0:
        out.append(("data.holdout_fraction", 0.1))
    for spec in protocol.forget:
        if spec.kind == "random":
            out.append((f"forget.{spec.name}.seed", spec.seed + VALIDATION_FORGET_SEED_OFFSET))
        else:
            out.append((f"forget.{spec.name}.classes", [(c + 1) % num_classes for c in spec.classes]))
    return out


def gap_to_retrain(
    records: Sequence[Mapping[str, Any]], unlearner: str, gap_metrics: Sequence[str]
) -> float | None:
    """Mean over row groups of :func:`compare.gap` between the unlearner's and retrain's means over
    ``gap_metrics`` (each a mean of train-seed means); None when a group lacks either side."""
    groups: dict[tuple[Any, ...], dict[str, list[Mapping[str, Any]]]] = {}
    for r in records:
        if r.get("status") != "ok" or r.get("unprune"):
            continue
        key = (r["forget_set"], r["pruner"], r["sparsity_target"])
        groups.setdefault(key, {}).setdefault(r["unlearner"], []).append(r)
    gaps = []
    for by_method in groups.values():
        if unlearner not in by_method or "retrain" not in by_method:
            return None
        means = [
            {m: noise.summary_mean(noise.observations(by_method[name], m)) for m in gap_metrics}
            for name in (unlearner, "retrain")
        ]
        found = compare.gap(means[0], means[1], gap_metrics)
        if found is None:
            return None
        gaps.append(found)
    return sum(gaps) / len(gaps) if gaps else None


def tune(
    registry: Registry,
    protocol_path: Path,
    base_overrides: Sequence[tuple[str, Any]],
    unlearner: str,
    grid: Sequence[Mapping[str, Any]],
    num_classes: int,
    out: Path,
    run_point: RunPoint,
    gap_metrics: Sequence[str],
) -> TuneResult:
    """Run every grid point on validation data and pick the one with the smallest gap."""
    base = load_protocol(protocol_path, base_overrides, registry)
    fixed = [
        *base_overrides,
        *validation_overrides(base, num_classes),
        ("unlearn.unlearners", ["retrain", unlearner]),
        ("unprune.modes", [False]),
        ("evaluate.metrics", list(gap_metrics)),
    ]
    shared = out / "artifacts"
    shared.mkdir(parents=True, exist_ok=True)
    scores = []
    protocol_hash = ""
    for number, values in enumerate(grid):
        point = [*fixed, *((f"unlearn.params.{unlearner}.{k}", v) for k, v in values.items())]
        protocol = load_protocol(protocol_path, point, registry)
        folder = out / f"point-{number:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        link = folder / "artifacts"
        if not link.exists():
            link.symlink_to(shared.resolve(), target_is_directory=True)  # original and retrain once
        records = run_point(protocol, folder)
        gap = gap_to_retrain(records, unlearner, gap_metrics)
        log.info("tune %s %s: gap %s", unlearner, values, gap)
        scores.append(PointScore(dict(values), gap))
        protocol_hash = protocol_hash or protocol.hash
    scored = [s for s in scores if s.gap is not None]
    if not scored:
        raise InvalidValueError(f"every grid point of {unlearner} failed; see {out}")
    best = min(scored, key=lambda s: s.gap)  # type: ignore[arg-type, return-value]
    return TuneResult(unlearner, tuple(scores), best.values, float(best.gap), protocol_hash)  # type: ignore[arg-type]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def _toml_key(parts: Sequence[str]) -> str:
    """A dotted TOML key, quoting the parts that are not bare keys (e.g. ``neggrad+``)."""
    bare = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    return ".".join(p if p and set(p) <= bare else json.dumps(p) for p in parts)


def read_override_file(path: Path) -> tuple[list[tuple[str, Any]], dict[str, Any]]:
    """The dotted overrides of an override file and its ``tuning`` table (by unlearner)."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidValueError(f"cannot read override file {path}: {exc}") from exc
    tuning = data.pop("tuning", {})
    if not isinstance(tuning, dict) or not all(isinstance(v, dict) for v in tuning.values()):
        raise InvalidValueError(
            f"override file {path}: tuning must be a table of [tuning.<unlearner>] tables "
            f"(as `unlearnbench tune` writes), got {tuning!r}"
        )
    pairs: list[tuple[str, Any]] = []

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            dotted = f"{prefix}.{key}" if prefix else key
            if isinstance(value, dict):
                walk(dotted, value)
            else:
                pairs.append((dotted, value))

    walk("", data)
    return pairs, tuning


def write_override_file(
    path: Path,
    result: TuneResult,
    grid_specs: Sequence[str],
    protocol: str,
    base_overrides: Sequence[tuple[str, Any]] = (),
) -> None:
    """Merge ``result`` into the override file at ``path`` (other unlearners' entries kept)."""
    pairs, tuning = read_override_file(path) if path.exists() else ([], {})
    params = {k: v for k, v in pairs if k.startswith("unlearn.params.")}
    for key in [k for k in params if k.startswith(f"unlearn.params.{result.unlearner}.")]:
        del params[key]
    params.update({f"unlearn.params.{result.unlearner}.{k}": v for k, v in result.chosen.items()})
    tuning[result.unlearner] = {
        "protocol": protocol,
        "tuning_protocol_hash": result.tuning_protocol_hash,
        "grid": list(grid_specs),
        "base_overrides": [f"{k}={json.dumps(v)}" for k, v in base_overrides],
        "scored_by": "gap to retrain on a validation forget set, test metrics on the validation split",
        "points": [
            json.dumps({"values": dict(s.values), "gap": s.gap}, sort_keys=True) for s in result.points
        ],
        "chosen_gap": result.chosen_gap,
    }
    lines = [f"# unlearnbench tune output for protocol {protocol}; apply with `run --overrides {path.name}`"]
    tables: dict[str, list[str]] = {}
    for key, value in sorted(params.items()):
        table, _, leaf = key.rpartition(".")
        tables.setdefault(_toml_key(table.split(".")), []).append(
            f"{_toml_key([leaf])} = {_toml_value(value)}"
        )
    for name, table in sorted(tuning.items()):
        tables[_toml_key(["tuning", name])] = [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for table, rows in tables.items():
        lines += ["", f"[{table}]", *rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
