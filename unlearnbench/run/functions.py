"""A plain Python function as an unlearner: ``fn(model, retain, forget, validation) -> model``.

This is the signature of the NeurIPS 2023 Machine Unlearning challenge (Triantafillou et al.,
2024, "Are we making progress in unlearning?", arXiv 2406.09073; the Kaggle starting kit's
``unlearning(net, retain_loader, forget_loader, val_loader)``): ``retain``, ``forget`` and
``validation`` are ``torch.utils.data.DataLoader``\\ s of ``(images, labels)`` batches. The
defaults follow the starting kit: batch size 128, retain and forget shuffled, validation in
order. Here the batches are normalised float tensors on the run's device (channels-last where
the engine uses it), exactly what the model was trained on; shuffling is seeded with the row's
seed. ``validation`` is the protocol's validation hold-out, empty when it holds none out (never
the test set). Deviations: the function cannot see the mask, so the harness re-masks whatever it
returns (pruned weights it moved are counted in ``mask_violations``, marked † in the tables).

:func:`function_unlearner` turns ``fn`` into a registered :class:`~unlearnbench.api.Unlearner`
whose identity (the ``source_sha256`` parameter, in every cache key) is the sha256 of the
function's qualified name, its source text and its source file, so editing the function
recomputes its rows; :func:`function_plugin` registers several through the plugin host.
"""

from __future__ import annotations

import hashlib
import inspect
import marshal
import types
from collections.abc import Callable, Mapping
from dataclasses import field, make_dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from unlearnbench.data.augment import normalize
from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.components import Unlearner, UnlearnTask
from unlearnbench.registry.hookspecs import hookimpl
from unlearnbench.run.external import check_name
from unlearnbench.run.graph import source_sha256
from unlearnbench.training.engine import Engine

UnlearnFn = Callable[[nn.Module, DataLoader, DataLoader, DataLoader], nn.Module]
CHALLENGE_BATCH_SIZE = 128
"""The starting kit's DataLoader batch size."""


def function_sha256(fn: Callable[..., Any]) -> str:
    """sha256 of ``fn``'s qualified name, source text (its compiled code when it has no source)
    and the sha256 of the file defining it."""
    digest = hashlib.sha256(f"{fn.__module__}.{getattr(fn, '__qualname__', repr(fn))}".encode())
    try:
        digest.update(inspect.getsource(fn).encode())
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        digest.update(marshal.dumps(code) if code is not None else repr(fn).encode())
    digest.update((source_sha256(fn) or "").encode())  # type: ignore[arg-type]
    return digest.hexdigest()


class _SplitBatches(Dataset):  # type: ignore[type-arg]
    """A split indexed by lists of indices (one batch each), normalised as the engine does."""

    def __init__(self, split: ImageSplit, engine: Engine) -> None:
        self.split, self.engine = split.to(engine.device), engine

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        at = torch.as_tensor(index, device=self.split.images.device, dtype=torch.int64)
        x = normalize(self.split.images[at], self.engine.mean, self.engine.std, torch.float32)
        if self.engine.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.split.labels[at]


def split_loader(
    split: ImageSplit, engine: Engine, batch_size: int, *, shuffle: bool, seed: int
) -> DataLoader:
    """A DataLoader of ``(images, labels)`` batches of ``split`` (seeded when ``shuffle``)."""
    data = _SplitBatches(split, engine)
    generator = torch.Generator()
    generator.manual_seed(seed)
    order = RandomSampler(data, generator=generator) if shuffle else SequentialSampler(data)
    return DataLoader(data, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None)


def challenge_loaders(task: UnlearnTask, batch_size: int) -> tuple[DataLoader, DataLoader, DataLoader]:
    """``retain``, ``forget`` and ``validation`` loaders of ``task`` (see the module docstring)."""
    empty = ImageSplit(task.retain.images[:0], task.retain.labels[:0])
    validation = task.val if task.val is not None else empty
    return (
        split_loader(task.retain, task.engine, batch_size, shuffle=True, seed=task.seed),
        split_loader(task.forget, task.engine, batch_size, shuffle=True, seed=task.seed + 1),
        split_loader(validation, task.engine, batch_size, shuffle=False, seed=task.seed),
    )


class FunctionUnlearner(Unlearner):
    """Base of the unlearners made by :func:`function_unlearner` (``fn`` is the function)."""

    fn: Callable[..., Any]

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        retain, forget, validation = challenge_loaders(task, self.params.batch_size)  # type: ignore[attr-defined]
        found = type(self).fn(model, retain, forget, validation)
        if not isinstance(found, nn.Module):
            raise TypeError(
                f"unlearner {self.name}: {type(self).fn.__qualname__} returned a {type(found).__name__}, "
                "expected the unlearned nn.Module"
            )
        return found


def function_unlearner(
    name: str, fn: UnlearnFn, *, batch_size: int = CHALLENGE_BATCH_SIZE, version: int = 1
) -> type[Unlearner]:
    """An :class:`~unlearnbench.api.Unlearner` class named ``name`` that runs ``fn``."""
    check_name(name)
    if not callable(fn):
        raise InvalidValueError(f"unlearner {name!r}: {fn!r} is not callable")
    try:
        inspect.signature(fn).bind(None, None, None, None)
    except TypeError:
        raise InvalidValueError(
            f"unlearner {name!r}: {getattr(fn, '__qualname__', fn)!r} must take (model, retain, forget, "
            "validation)"
        ) from None
    except ValueError:
        pass  # a builtin without a signature: called as is
    params = make_dataclass(
        "Params",
        [
            ("batch_size", int, field(default=batch_size)),
            ("source_sha256", str, field(default=function_sha256(fn))),
        ],
        frozen=True,
    )
    doc = (
        f"The plain function {fn.__module__}.{getattr(fn, '__qualname__', fn)} as an unlearner, called as "
        "fn(model, retain, forget, validation) -> model (NeurIPS 2023 challenge signature; see "
        "unlearnbench.run.functions)."
    )
    attrs = {"name": name, "version": version, "Params": params, "fn": staticmethod(fn), "__doc__": doc}
    return type(f"FunctionUnlearner[{name}]", (FunctionUnlearner,), attrs)


def function_plugin(functions: Mapping[str, UnlearnFn]) -> types.ModuleType:
    """A plugin object registering one :func:`function_unlearner` per name."""
    classes = [function_unlearner(name, fn) for name, fn in functions.items()]
    plugin = types.ModuleType("unlearnbench_functions")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        return list(classes)

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    return plugin
