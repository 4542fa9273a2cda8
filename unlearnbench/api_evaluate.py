"""The Python API's evaluation of models produced elsewhere: :func:`evaluate` (as ``unlearnbench
evaluate``) and :func:`prepare_evaluate` (what both run)."""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from unlearnbench.api_results import Results
from unlearnbench.errors import InvalidValueError
from unlearnbench.run.python_api import (
    DEFAULT_PROTOCOL,
    Prepared,
    Unlearners,
    _options,
    _split_unlearners,
    execute,
    prepare,
)

if TYPE_CHECKING:
    from torch import nn

    from unlearnbench.run.external import ModelFactory


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
    from unlearnbench.run.outdir import check_output_dir

    check_output_dir(out)
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
