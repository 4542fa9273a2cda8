"""The Python API: :func:`run` a protocol, :func:`evaluate` a model produced elsewhere, and
benchmark plain functions ``fn(model, retain, forget, validation) -> model`` as unlearners.

Both resolve the protocol exactly as the command line does (``unlearnbench run`` and
``unlearnbench evaluate`` with the same options), so they share its artifact store: what one
computed the other reuses. Both write ``OUT/results.jsonl`` and ``OUT/leaderboard.md`` (the table
of every row in ``OUT``, so an external model stands beside the built-ins of an earlier run into
the same folder) and return :class:`Results`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnbench.api_results import Results
from unlearnbench.errors import InvalidValueError
from unlearnbench.report.record import ResultRecord

if TYPE_CHECKING:
    from unlearnbench.config.protocol import Protocol
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.report.leaderboard import Roles
    from unlearnbench.run.context import RunSettings
    from unlearnbench.run.external import ExternalModel, ModelFactory

__all__ = ["Results", "run"]

DEFAULT_PROTOCOL = "digits-quickstart"
Unlearners = Sequence[str] | Mapping[str, Callable[..., Any] | None]
"""Names (``+NAME`` adds to the protocol's list, plain names replace it, as ``--unlearner``), or
a mapping from such names to a plain function (benchmarked as that unlearner) or None (a
registered unlearner)."""


def _split_unlearners(unlearners: Unlearners | None) -> tuple[list[str], dict[str, Callable[..., Any]]]:
    if unlearners is None:
        return [], {}
    if isinstance(unlearners, str):
        raise InvalidValueError(f"unlearners={unlearners!r}: give a list of names, e.g. [{unlearners!r}]")
    if isinstance(unlearners, Mapping):
        functions = {n.removeprefix("+"): fn for n, fn in unlearners.items() if fn is not None}
        return list(unlearners), functions
    return list(unlearners), {}


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float):
        return [str(value)]
    return [str(v) for v in value]


def _options(protocol: str, out: Path | str, **given: Any) -> dict[str, Any]:
    """The option dict ``unlearnbench run`` builds from its command line."""
    sets = given.get("sets") or {}
    from unlearnbench.hashing import canonical_json

    return {
        "protocol": protocol,
        "pruners": tuple(_as_list(given.get("pruners"))),
        "sparsities": tuple(_as_list(given.get("sparsities"))),
        "unlearners": tuple(given.get("unlearner_names") or ()),
        "unpruners": tuple(_as_list(given.get("unpruners"))),
        "metrics": tuple(_as_list(given.get("metrics"))),
        "unprune": given.get("unprune"),
        "seeds": tuple(_as_list(given.get("seeds"))),
        "device": given.get("device", "auto"),
        "data_root": None if given.get("data_root") is None else Path(given["data_root"]),
        "download": given.get("download", True),
        "out": Path(out),
        "artifact_root": None if given.get("artifacts") is None else str(given["artifacts"]),
        "limit": given.get("limit"),
        "sets": tuple(f"{k}={v if isinstance(v, str) else canonical_json(v)}" for k, v in sets.items()),
        "executor": "local",
        "ray_address": None,
        "override_file": given.get("overrides"),
        "threads": given.get("threads"),
        "rerun": tuple(given.get("rerun") or ()),
        "force": bool(given.get("force")),
        "original": None if given.get("original") is None else str(given["original"]),
    }


def roles_of(registry: Registry) -> Roles:
    """Which unlearners' rows are references and which metrics make the Gap column."""
    from unlearnbench.report.leaderboard import Roles

    references = {n: e.cls.reference for n, e in registry.entries("unlearner").items() if e.cls.reference}
    gap = tuple(n for n, e in registry.entries("metric").items() if e.cls.gap)
    return Roles(references, gap)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Prepared:
    """A run as resolved from options: registry, protocol, settings, in-process factories."""

    registry: Registry
    protocol: Protocol
    settings: RunSettings
    factories: Mapping[str, ModelFactory]


def prepare(
    options: Mapping[str, Any],
    *,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    externals: Sequence[ExternalModel] = (),
    factories: Mapping[str, ModelFactory] | None = None,
    forget: Sequence[str] = (),
    writes: bool = True,
) -> Prepared:
    """Resolve ``options`` (the CLI's) into what :func:`execute` runs; ``functions`` become
    registered unlearners (see :mod:`unlearnbench.run.functions`)."""
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.registry.host import create_host
    from unlearnbench.run.request import load_run

    plugins = []
    if functions:
        from unlearnbench.run.functions import function_plugin

        plugins.append(function_plugin(functions))
    registry = Registry(create_host(plugins=plugins))
    if functions:
        for name in functions:
            if registry.entries("unlearner")[name].plugin != "unlearnbench_functions":
                raise InvalidValueError(
                    f"unlearner {name!r} is already registered; give the function another name"
                )
    protocol, settings = load_run(registry, dict(options), writes=writes)
    settings = replace(settings, externals=tuple(externals), forget=tuple(forget))
    return Prepared(registry, protocol, settings, dict(factories or {}))


def execute(
    prepared: Prepared,
    *,
    progress: Any = None,
    rerun: Sequence[str] = (),
    force: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
) -> Results:
    """Run the prepared graph, write ``OUT/leaderboard.md`` and return the results."""
    from unlearnbench.report.leaderboard import render
    from unlearnbench.run.artifacts import write_text_atomic
    from unlearnbench.run.pipeline import Pipeline

    pipeline = Pipeline(
        prepared.protocol,
        prepared.registry,
        prepared.settings,
        progress=progress,
        rerun=rerun,
        force=force,
        factories=prepared.factories,
        executor=executor,
        ray_address=ray_address,
    )
    records = tuple(ResultRecord.from_dict(r) for r in pipeline.run())
    text = render(pipeline.results.records(), roles_of(prepared.registry))
    write_text_atomic(Path(prepared.settings.out) / "leaderboard.md", text)
    return Results(records, Path(prepared.settings.out), text)


# --------------------------------------------------------------------------------------------
def run(
    protocol: str = DEFAULT_PROTOCOL,
    *,
    out: Path | str = "unlearnbench-out",
    unlearners: Unlearners | None = None,
    pruners: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    metrics: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    unpruners: Sequence[str] | None = None,
    unprune: bool | None = None,
    forget: Sequence[str] | str | None = None,
    sets: Mapping[str, Any] | None = None,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    data_root: Path | str | None = None,
    artifacts: Path | str | None = None,
    original: Path | str | None = None,
    rerun: Sequence[str] = (),
    force: bool = False,
) -> Results:
    """Run ``protocol`` as ``unlearnbench run`` does with the same options and return its rows.

    ``unlearners`` may map names to plain functions ``fn(model, retain, forget, validation) ->
    model`` (the NeurIPS 2023 challenge signature), each benchmarked as that unlearner;
    ``forget`` narrows the rows to those forget sets (the protocol hash is unchanged);
    ``original`` is a pretrained original (file, exported folder or ``hf:OWNER/REPO``); ``sets``
    are ``--set`` overrides (``{"train.epochs": 3}``); ``threads`` sets torch's CPU threads."""
    names, functions = _split_unlearners(unlearners)
    options = _options(
        protocol,
        out,
        unlearner_names=names,
        pruners=pruners,
        sparsities=sparsities,
        metrics=metrics,
        seeds=seeds,
        unpruners=unpruners,
        unprune=unprune,
        sets=sets,
        limit=limit,
        device=device,
        threads=threads,
        data_root=data_root,
        artifacts=artifacts,
        original=original,
    )
    prepared = prepare(options, functions=functions, forget=_as_list(forget))
    return execute(prepared, rerun=rerun, force=force)
