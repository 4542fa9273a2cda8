"""Models from outside the run: an externally unlearned model scored as a row (``evaluate``), and
a pretrained original loaded in place of the trained one (``run --original``).

An :class:`ExternalModel` is a state_dict file (``torch.save``, read with ``weights_only=True``)
for the protocol's model, or for a user architecture built by a factory (``module:attr``, called
with ``num_classes``, ``in_channels`` and ``image_size`` when it takes them). Its row is labelled
``external:<name>``; its graph node is a leaf keyed by the file's sha256 and the architecture, so
moving or renaming the file recomputes nothing and changing one byte recomputes its rows. The
mask of an external model on a sparse row is its zero pattern over the names the row's pruned
original masks (over the prune scope for a user architecture); on a dense row it has none.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unlearnbench.errors import InvalidValueError

EXTERNAL_PREFIX = "external:"
"""Row labels of external models: ``external:<name>``."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")

ModelFactory = Callable[..., Any]
"""Builds a freshly initialised ``nn.Module`` (keywords ``num_classes``, ``in_channels`` and
``image_size`` when it accepts them)."""


def file_digest(path: Path) -> str:
    from unlearnbench.run.artifacts import file_sha256

    return file_sha256(path)


def _readable_file(path: Path, what: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise InvalidValueError(f"{what} {path} does not exist")
    if not path.is_file():
        raise InvalidValueError(f"{what} {path} is not a file (expected a state_dict saved with torch.save)")
    return path.resolve()


class ArchitectureMismatch(InvalidValueError):
    """A state_dict that does not fit the architecture it is loaded into."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise InvalidValueError(
            f"model name {name!r}: use 1-64 letters, digits, '.', '_', '+' or '-', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class ExternalModel:
    """A model file scored as a row; the selections (empty: every value) say which rows it joins."""

    name: str
    file: str
    sha256: str
    factory: str | None = None
    """``module:attr`` of the architecture's factory (None: the protocol's model)."""
    factory_source: str | None = None
    """sha256 of the factory's source file (part of the node key: editing it recomputes)."""
    forget: tuple[str, ...] = ()
    pruners: tuple[str, ...] = ()
    sparsities: tuple[float, ...] = ()
    seeds: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return EXTERNAL_PREFIX + self.name

    def plan_entry(self) -> dict[str, Any]:
        """What the planner reads (:attr:`unlearnbench.run.graph.PlanInputs.externals`)."""
        return {
            "sha256": self.sha256,
            "file": self.file,
            "factory": self.factory,
            "factory_source": self.factory_source,
            "forget": list(self.forget),
            "pruners": list(self.pruners),
            "sparsities": list(self.sparsities),
            "seeds": list(self.seeds),
        }

    def record_entry(self) -> dict[str, Any]:
        """The record's ``external`` field: which file (and architecture) the row scored."""
        return {
            "name": self.name,
            "file": self.file,
            "sha256": self.sha256,
            "factory": self.factory,
            "factory_source": self.factory_source,
        }


def external_model(
    path: Path | str,
    *,
    name: str | None = None,
    factory: str | None = None,
    factory_source: str | None = None,
    forget: Sequence[str] = (),
    pruners: Sequence[str] = (),
    sparsities: Sequence[float] = (),
    seeds: Sequence[int] = (),
) -> ExternalModel:
    """The :class:`ExternalModel` of file ``path`` (hashed now); ``name`` defaults to its stem.
    ``factory`` is imported now (``module:attr``) unless ``factory_source`` is given."""
    file = _readable_file(Path(path), "model file")
    if factory is not None and factory_source is None:
        factory_source = source_of(import_factory(factory))
    return ExternalModel(
        name=check_name(name or file.stem),
        file=str(file),
        sha256=file_digest(file),
        factory=factory,
        factory_source=factory_source,
        forget=tuple(forget),
        pruners=tuple(pruners),
        sparsities=tuple(float(s) for s in sparsities),
        seeds=tuple(int(s) for s in seeds),
    )


def import_factory(spec: str) -> ModelFactory:
    """The callable named ``module:attr`` (``attr`` may be dotted), or one clear error."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise InvalidValueError(f"--model-factory {spec!r} is not module:factory (e.g. my_models:build)")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidValueError(f"--model-factory {spec!r}: cannot import {module_name!r} ({exc})") from None
    for part in attr.split("."):
        if not hasattr(found, part):
            raise InvalidValueError(f"--model-factory {spec!r}: {module_name} has no attribute {attr!r}")
        found = getattr(found, part)
    if not callable(found):
        raise InvalidValueError(f"--model-factory {spec!r} is not callable")
    return found  # type: ignore[no-any-return]


def source_of(obj: Any) -> str | None:
    """sha256 of the source file defining ``obj`` (None when it has none)."""
    from unlearnbench.run.graph import source_sha256

    return source_sha256(obj)


def call_factory(factory: ModelFactory, num_classes: int, in_channels: int, image_size: int) -> Any:
    """``factory()`` with the dataset's shape keywords it accepts."""
    given = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return factory(**given)
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return factory(**given)
    return factory(**{k: v for k, v in given.items() if k in params})


def load_state(data: bytes, where: str) -> dict[str, Any]:
    """A state_dict from ``torch.save`` bytes, read with ``weights_only=True``; anything else
    (a pickled module, a checkpoint dict without tensors) is one clear error."""
    import torch

    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidValueError(
            f"{where} is not a state_dict that torch.load(weights_only=True) reads: {first}"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if (
        not isinstance(state, Mapping)
        or not state
        or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items())
    ):
        raise InvalidValueError(
            f"{where} holds a {type(state).__name__}, not a state_dict (parameter names -> tensors); "
            "save it with torch.save(model.state_dict(), path)"
        )
    return dict(state)


def read_checked(file: str, sha256: str, where: str) -> dict[str, Any]:
    """The state_dict in ``file``, refused when its bytes no longer hash to ``sha256``."""
    import hashlib

    data = Path(file).read_bytes()
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise InvalidValueError(
            f"{where} changed since the run was planned (sha256 {found[:12]}, not {sha256[:12]})"
        )
    return load_state(data, where)


def load_into(model: Any, state: Mapping[str, Any], where: str, architecture: str) -> None:
    """Load ``state`` strictly into ``model``, or one error naming missing/unexpected keys."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    shapes = [k for k in ours if k in state and tuple(state[k].shape) != tuple(ours[k].shape)]
    if missing or unexpected or shapes:

        def show(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"missing {show(missing)}"] if missing else []
        parts += [f"unexpected {show(unexpected)}"] if unexpected else []
        parts += [f"other shapes {show(shapes)}"] if shapes else []
        raise ArchitectureMismatch(
            f"{where} does not fit {architecture}: {'; '.join(parts)} "
            "(give the matching --model-factory module:factory)"
        )
    model.load_state_dict(dict(state))


@dataclass(frozen=True)
class PretrainedOriginal:
    """A pretrained original (``run --original``): its weights file, their sha256, where it came
    from (a file, an exported folder or ``hf:REPO``) and an optional rewind-state file."""

    source: str
    file: str
    sha256: str
    rewind_file: str | None = None
    rewind_sha256: str | None = None

    def plan_entry(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "file": self.file,
            "sha256": self.sha256,
            "rewind_sha256": self.rewind_sha256,
        }

    def record_entry(self) -> dict[str, Any]:
        entry = {"source": self.source, "file": self.file, "sha256": self.sha256}
        return {**entry, "rewind": self.rewind_file is not None}
