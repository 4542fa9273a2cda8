"""The Python API: :func:`run` a protocol, :func:`evaluate` a model produced elsewhere, and
benchmark plain functions ``fn(model, retain, forget, validation) -> model`` as unlearners.

Both resolve the protocol exactly as the command line does (``unlearnbench run`` and
``unlearnbench evaluate`` with the same options), so they share its artifact store: what one
computed the other reuses. Both write ``OUT/results.jsonl`` and ``OUT/leaderboard.md`` (the table
of every row in ``OUT``, so an external model stands beside the built-ins of an earlier run into
the same folder) and return :class:`Results`.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnbench.errors import InvalidValueError
from unlearnbench.report.record import ResultRecord

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

    from unlearnbench.config.protocol import Protocol
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.report.leaderboard import Roles
    from unlearnbench.run.context import RunSettings
    from unlearnbench.run.external import ExternalModel, ModelFactory

DEFAULT_PROTOCOL = "digits-quickstart"
Unlearners = Sequence[str] | Mapping[str, Callable[..., Any] | None]
"""Names (``+NAME`` adds to the protocol's list, plain names replace it, as ``--unlearner``), or
a mapping from such names to a plain function (benchmarked as that unlearner) or None (a
registered unlearner)."""


@dataclass(frozen=True)
class Results:
    """The records a call produced (``records``), where they are (``out``: ``results.jsonl``,
    ``leaderboard.md``) and the rendered leaderboard of every row in ``out``."""

    records: tuple[ResultRecord, ...]
    out: Path
    leaderboard: str

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ResultRecord]:
        return iter(self.records)

    @property
    def results_path(self) -> Path:
        return self.out / "results.jsonl"

    @property
    def failed(self) -> tuple[ResultRecord, ...]:
        return tuple(r for r in self.records if not r.ok)

    @property
    def external(self) -> tuple[ResultRecord, ...]:
        """The rows that scored an external model."""
        return tuple(r for r in self.records if r.external is not None)

    def row(self, method: str, *, forget_set: str | None = None, seed: int | None = None) -> ResultRecord:
        """The one record whose method label (``ft``, ``ft + reprune``, ``external:mine``) is
        ``method`` (narrowed by forget set and seed), or an error listing the labels."""
        found = [
            r
            for r in self.records
            if r.method == method
            and (forget_set is None or r.forget_set == forget_set)
            and (seed is None or r.seed == seed)
        ]
        if len(found) != 1:
            labels = sorted({r.method for r in self.records})
            raise LookupError(f"{len(found)} rows match {method!r}; methods: {', '.join(labels)}")
        return found[0]

    def to_frame(self) -> pd.DataFrame:
        """One row per record: its identifying fields, ``method``, ``external_sha256`` and one
        column per metric (``metric.<name>``)."""
        return records_frame(r.to_dict() for r in self.records)


def records_frame(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A flat DataFrame of result records (one column per metric, ``metric.<name>``)."""
    import pandas as pd

    columns = (
        "row_id", "protocol", "protocol_version", "protocol_hash", "dataset", "data_copy", "model",
        "forget_set", "forget_kind", "pruner", "sparsity_target", "sparsity", "unlearner", "unprune",
        "unpruner", "seed", "reference", "status", "error", "device",
    )  # fmt: skip
    rows = []
    for record in records:
        typed = ResultRecord.from_dict(record)
        row = {c: getattr(typed, c) for c in columns}
        row["method"] = typed.method
        row["external_sha256"] = None if typed.external is None else typed.external.get("sha256")
        row.update({f"metric.{n}": v for n, v in typed.metrics.items()})
        rows.append(row)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
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
    from unlearnbench.cli_options import load_run
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.registry.host import create_host

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
    prepared: Prepared, *, progress: Any = None, rerun: Sequence[str] = (), force: bool = False
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


def evaluate(
    model: nn.Module | Path | str,
    protocol: str = DEFAULT_PROTOCOL,
    *,
    name: str | None = None,
    model_factory: str | Callable[..., Any] | None = None,
    forget: str | None = None,
    pruner: str | None = None,
    sparsity: float | None = None,
    seed: int | None = None,
    out: Path | str = "unlearnbench-out",
    unlearners: Unlearners = (),
    metrics: Sequence[str] | None = None,
    sets: Mapping[str, Any] | None = None,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    data_root: Path | str | None = None,
    artifacts: Path | str | None = None,
    original: Path | str | None = None,
) -> Results:
    """Score ``model`` (a state_dict file, or an ``nn.Module``) on one forget set, pruner,
    sparsity and seed of ``protocol``, against the same cached references (``original``,
    ``retrain``, ``gold`` ...) and with the same metrics as a run, as ``unlearnbench evaluate``.

    The row is labelled ``external:<name>`` (``name``: the file's stem, or the module's class
    name); its record's ``external`` names the file and its sha256. A module is saved to
    ``OUT/external/<name>-<sha12>.pt`` first. ``model_factory`` builds the architecture when it is
    not the protocol's: ``module:attr``, or a callable (for a module given, a copy of it is the
    factory when its weights do not fit the protocol's model). ``unlearners`` (default none) adds
    built-in or function rows beside it; ``forget``, ``pruner``, ``sparsity`` and ``seed`` must be
    given when the protocol has several."""
    file, factories, factory_name, factory_source = _model_file(model, name, model_factory, Path(out))
    if name is None and not isinstance(model, str | Path):
        name = type(model).__name__
    options = _evaluate_options(
        protocol,
        out,
        unlearners=unlearners,
        pruner=pruner,
        sparsity=sparsity,
        seed=seed,
        metrics=metrics,
        sets=sets,
        limit=limit,
        device=device,
        threads=threads,
        data_root=data_root,
        artifacts=artifacts,
        original=original,
    )
    _, functions = _split_unlearners(unlearners)

    def attempt(factory: str | None) -> Results:
        prepared = prepare_evaluate(
            options,
            file,
            name=name,
            factory=factory,
            factories=factories,
            forget=forget,
            functions=functions,
            factory_source=factory_source,
        )
        return execute(prepared)

    if isinstance(model, str | Path) or model_factory is not None:
        return attempt(factory_name)
    from unlearnbench.run.external import ArchitectureMismatch

    try:  # a module of the protocol's architecture is scored as one (its rows compare masks by name)
        return attempt(None)
    except ArchitectureMismatch:
        return attempt(factory_name)


def _evaluate_options(protocol: str, out: Path | str, **given: Any) -> dict[str, Any]:
    names, _ = _split_unlearners(given.pop("unlearners"))
    return _options(
        protocol,
        out,
        unlearner_names=names,
        pruners=given.pop("pruner"),
        sparsities=given.pop("sparsity"),
        seeds=given.pop("seed"),
        unprune=False,
        **given,
    )


def prepare_evaluate(
    options: Mapping[str, Any],
    file: Path,
    *,
    name: str | None,
    factory: str | None,
    factories: Mapping[str, ModelFactory] | None = None,
    forget: str | None = None,
    functions: Mapping[str, Callable[..., Any]] | None = None,
    factory_source: str | None = None,
) -> Prepared:
    """The run that scores ``file`` (``evaluate``): the protocol's reference rows for one forget
    set, pruner, sparsity and seed, the unlearners selected (none unless given) and the external
    row. Each of those must be unique (given, or the protocol has one)."""
    from unlearnbench.run.external import external_model, source_of

    first, chosen = _one_row(options, forget, functions, factories)
    p = first.protocol
    source = factory_source
    if factory is not None and source is None:
        built = (factories or {}).get(factory)
        source = source_of(built if built is not None else _imported(factory))
    external = external_model(
        file,
        name=name,
        factory=factory,
        factory_source=source,
        forget=[chosen],
        pruners=p.prune.pruners,
        sparsities=p.prune.sparsities,
        seeds=p.seeds,
    )
    settings = replace(first.settings, externals=(external,), forget=(chosen,))
    return Prepared(first.registry, p, settings, first.factories)


def _one_row(
    options: Mapping[str, Any],
    forget: str | None,
    functions: Mapping[str, Callable[..., Any]] | None,
    factories: Mapping[str, ModelFactory] | None = None,
) -> tuple[Prepared, str]:
    """The prepared run of one forget set, pruner, sparsity and seed (each given, or the
    protocol's only one; else one clear error), with no built-in rows unless selected."""
    options = dict(options)
    if not options["unlearners"]:  # no built-in rows unless asked for: the references and this model
        options["sets"] = (*options["sets"], "unlearn.unlearners=[]")
    first = prepare(options, functions=functions, factories=factories, writes=True)
    p = first.protocol
    forget_names = [f.name for f in p.forget]
    if forget is None and len(forget_names) > 1:
        raise InvalidValueError(
            f"evaluate scores one forget set: protocol {p.name} has {', '.join(forget_names)}; "
            "give --forget NAME"
        )
    if forget is not None and forget not in forget_names:
        raise InvalidValueError(f"unknown forget set {forget!r}; valid choices: {', '.join(forget_names)}")
    for what, values, flag in (
        ("pruner", p.prune.pruners, "--pruner"),
        ("sparsity", p.prune.sparsities, "--sparsity"),
        ("seed", p.seeds, "--seed"),
    ):
        if len(values) != 1:
            shown = ", ".join(str(v) for v in values)
            raise InvalidValueError(
                f"evaluate scores one {what}: protocol {p.name} selects {shown}; give one {flag}"
            )
    return first, forget or forget_names[0]


def _imported(factory: str) -> Any:
    from unlearnbench.run.external import import_factory

    return import_factory(factory)


def _model_file(
    model: nn.Module | Path | str, name: str | None, model_factory: str | Callable[..., Any] | None, out: Path
) -> tuple[Path, dict[str, ModelFactory], str | None, str | None]:
    """The state_dict file to score, the in-process factories, the factory's name and the
    sha256 of its source file."""
    import torch
    from torch import nn

    from unlearnbench.run.external import check_name, file_digest, source_of

    factories: dict[str, ModelFactory] = {}
    factory_name: str | None = None
    source: str | None = None
    if callable(model_factory) and not isinstance(model_factory, str):
        factory_name = f"python:{model_factory.__module__}.{model_factory.__qualname__}"
        factories[factory_name] = model_factory
        source = source_of(model_factory)
    elif isinstance(model_factory, str):
        factory_name = model_factory
    if isinstance(model, str | Path):
        return Path(model), factories, factory_name, source
    if not isinstance(model, nn.Module):
        raise InvalidValueError(
            f"evaluate: model is a {type(model).__name__}; give an nn.Module or a file path"
        )
    label = check_name(name or type(model).__name__)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    folder = out / "external"
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, suffix=".pt", delete=False) as handle:
        torch.save(state, handle)
    tmp = Path(handle.name)
    final = folder / f"{label}-{file_digest(tmp)[:12]}.pt"
    tmp.replace(final)
    final.chmod(0o644)
    if factory_name is None:  # used when its weights do not fit the protocol's model
        template = copy.deepcopy(model).cpu()
        factory_name = f"python:{type(model).__module__}.{type(model).__qualname__}"
        factories[factory_name] = _copier(template)
        source = source_of(type(model))
    return final, factories, factory_name, source


def _copier(template: nn.Module) -> Callable[[], nn.Module]:
    """A factory returning a fresh copy of ``template``."""

    def build() -> nn.Module:
        return copy.deepcopy(template)

    return build


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnlearningTask:
    """What a row's unlearner starts from, for unlearning outside the suite: the row's pruned
    original (``model``, on the run's device), its ``mask`` (None when dense) and the NeurIPS
    2023 challenge's ``retain``, ``forget`` and ``validation`` DataLoaders (as a function
    unlearner gets them, see :mod:`unlearnbench.run.functions`)."""

    model: nn.Module
    mask: Any
    retain: Any
    forget: Any
    validation: Any
    forget_set: str
    pruner: str
    sparsity: float
    seed: int


def unlearning_task(
    protocol: str = DEFAULT_PROTOCOL,
    *,
    forget: str | None = None,
    pruner: str | None = None,
    sparsity: float | None = None,
    seed: int | None = None,
    out: Path | str = "unlearnbench-out",
    sets: Mapping[str, Any] | None = None,
    limit: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    data_root: Path | str | None = None,
    artifacts: Path | str | None = None,
    original: Path | str | None = None,
    batch_size: int | None = None,
) -> UnlearningTask:
    """The starting point of one row (forget set, pruner, sparsity, seed) of ``protocol``: its
    pruned original, trained (or read from ``OUT``'s store, where a run put it) exactly as a run
    would, and the challenge loaders. Unlearn it with any code, then score the result with
    :func:`evaluate` given the same options."""
    from unlearnbench.run.artifacts import ArtifactStore
    from unlearnbench.run.context import RunContext
    from unlearnbench.run.functions import CHALLENGE_BATCH_SIZE, challenge_loaders
    from unlearnbench.run.graph import Graph, Row, RowPlan
    from unlearnbench.run.plan import ORIGINAL, Planner
    from unlearnbench.run.runner import LocalExecutor, read_output
    from unlearnbench.run.stages.common import unlearn_task

    options = _evaluate_options(
        protocol,
        out,
        unlearners=(),
        pruner=pruner,
        sparsity=sparsity,
        seed=seed,
        metrics=None,
        sets=sets,
        limit=limit,
        device=device,
        threads=threads,
        data_root=data_root,
        artifacts=artifacts,
        original=original,
    )
    prepared, chosen = _one_row(options, forget, None)
    p = prepared.protocol
    ctx = RunContext(p, prepared.registry, replace(prepared.settings, forget=(chosen,)))
    planner = Planner(p, ctx.plan_inputs())
    row = Row(p.seeds[0], p.prune.pruners[0], p.prune.sparsities[0], chosen, ORIGINAL, False)
    key = planner.topology(row.seed, row.pruner, row.sparsity)
    graph = Graph(dict(planner.nodes), (RowPlan(row, key, key, (), ORIGINAL),))
    store = ArtifactStore(ctx.settings.artifacts)
    for outcome in LocalExecutor(ctx, store).execute(graph):
        if outcome.error is not None:
            raise InvalidValueError(f"the original of this row failed: {outcome.error}")
    stored = store.get(graph.nodes[key].stage, key)
    assert stored is not None
    start = read_output(stored)
    model = ctx.load_model(row.seed, start.state)  # type: ignore[union-attr]
    node = graph.nodes[key]
    task = unlearn_task(ctx, replace(node, forget=chosen), start.mask, None, None)  # type: ignore[union-attr]
    retain, forget_loader, validation = challenge_loaders(task, batch_size or CHALLENGE_BATCH_SIZE)
    return UnlearningTask(
        model,
        start.mask,
        retain,
        forget_loader,
        validation,
        chosen,
        row.pruner,
        row.sparsity,
        row.seed,  # type: ignore[union-attr]
    )
