"""The run context: the configured components, the data (loaded once), the forget sets and their
splits, one seeded model factory and the engine (built once, after the data is loaded).

Every stage reads what it needs from here; a Ray worker rebuilds the same context from the
protocol and the settings (:func:`context_for`, cached per worker process).
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnbench.config.protocol import Protocol
from unlearnbench.config.typed_config import to_dict
from unlearnbench.data.fingerprint import splits_sha256
from unlearnbench.data.forget import ForgetSet, draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import PreparedData, prepare
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.files import write_text_atomic
from unlearnbench.paths import inside
from unlearnbench.progress import NullProgress, ProgressSink
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import Component, Metric, Pruner, Unlearner, Unpruner
from unlearnbench.run.external import (
    ModelFactory,
    call_factory,
    import_factory,
    load_into,
    load_state,
)
from unlearnbench.run.plan import ORIGINAL, REFERENCE_ROWS, ComponentInfo, PlanInputs
from unlearnbench.run.settings import RunSettings, apply_compute
from unlearnbench.training.engine import Engine
from unlearnbench.training.pruning import check_sparsity, scope_parameter_names

log = logging.getLogger(__name__)


class RunContext:
    """Components, data, forget sets, splits, model factory and engine of one protocol run."""

    def __init__(
        self,
        protocol: Protocol,
        registry: Registry,
        settings: RunSettings,
        *,
        progress: ProgressSink | None = None,
        factories: Mapping[str, ModelFactory] | None = None,
    ) -> None:
        self.protocol = protocol
        self.registry = registry
        self.settings = settings
        self.progress = progress or NullProgress()
        apply_compute(settings)
        self.factories: dict[str, ModelFactory] = dict(factories or {})
        """In-process model factories by the name external models give (the Python API's
        ``evaluate(module)``); other names are imported as ``module:attr``."""
        p = protocol
        # Every component is built first, so a bad name or parameter fails before any work.
        self.dataset_plugin = registry.create("dataset", p.data.dataset, p.data.params)
        self.model_plugin = registry.create("model", p.model.name, p.model.params)
        self.pruners: dict[str, Pruner] = {
            n: self._create("pruner", n, p.prune.params) for n in p.prune.pruners
        }
        for reserved in (ORIGINAL, *REFERENCE_ROWS):
            if reserved in p.unlearn.unlearners:
                raise ValueError(f"{reserved!r} is reserved for the reference row")
        registered = registry.entries("unlearner")
        for name in p.unprune.skip:  # checked against the registry: --unlearner may narrow the list
            if name not in registered:
                raise UnknownChoiceError("unlearner in unprune.skip", name, registered)
        references = [n for n, e in registered.items() if getattr(e.cls, "reference", None)]
        self.unlearners: dict[str, Unlearner] = {
            n: self._create("unlearner", n, p.unlearn.params)
            for n in dict.fromkeys([*p.unlearn.unlearners, *references])
        }
        self.unpruners: dict[str, Unpruner] = {}
        if True in p.unprune.modes:
            self.unpruners = {n: self._create("unpruner", n, p.unprune.params) for n in p.unprune.unpruners}
        self.metrics: dict[str, Metric] = {
            n: self._create("metric", n, p.evaluate.params) for n in p.evaluate.metrics
        }
        tables = {"pruner": p.prune.params, "unlearner": p.unlearn.params, "unpruner": p.unprune.params}
        for kind, table in {**tables, "metric": p.evaluate.params}.items():
            for name, params in table.items():
                registry.create(kind, name, params)
        for sparsity in p.prune.sparsities:
            check_sparsity(sparsity)
        splits = self.dataset_plugin.load(settings.data_root, download=settings.download)  # type: ignore[attr-defined]
        log.info("dataset %s: copy %s read from %s", p.data.dataset, splits.copy, splits.location)
        self.data_sha256 = splits_sha256(splits)
        """The copy's content fingerprint in storage order (computed once per context)."""
        prepared = prepare(splits, p.data.holdout_fraction, p.data.split_seed, p.data.limit)
        bf16 = {"auto": None, "bf16": True, "fp32": False}[settings.precision]
        self.engine = Engine(
            settings.device,
            splits.mean,
            splits.std,
            progress=self.progress,
            bf16=bf16,
            deterministic=settings.deterministic,
        )
        device = self.engine.device
        self.data = PreparedData(
            prepared.dataset, prepared.pool.to(device), prepared.val.to(device), prepared.test.to(device)
        )
        self.forget_sets = {
            s.name: draw_forget_set(s, self.data.pool, self.data.dataset.num_classes) for s in p.forget
        }
        self._splits = {name: self._build_splits(f) for name, f in self.forget_sets.items()}
        self.scope = scope_parameter_names(self.new_model_factory(p.seeds[0])(), p.prune.scope)
        self.reference_logits: dict[tuple[str, str], torch.Tensor] = {}
        """Logits of reference models, (reference id, split) -> tensor (see ``EvalContext``): the
        evaluate nodes of one process share a reference's (e.g. gold's) outputs."""
        self._check_selection_and_models()

    def _check_selection_and_models(self) -> None:
        """Refuse, before any work, an unknown ``forget`` selection and external models whose
        label is taken, whose selection names what the protocol lacks or whose file does not
        load into its architecture; a pretrained original must load into the protocol's model."""
        p, s = self.protocol, self.settings
        names = [f.name for f in p.forget]
        for name in s.forget:
            if name not in names:
                raise UnknownChoiceError("forget set", name, names)
        labels = [e.label for e in s.externals]
        if len(set(labels)) != len(labels):
            raise InvalidValueError(f"external model names must differ: {', '.join(labels)}")
        for ext in s.externals:
            for what, chosen, valid in (
                ("forget set", ext.forget, names),
                ("pruner", ext.pruners, p.prune.pruners),
                ("sparsity", ext.sparsities, p.prune.sparsities),
                ("seed", ext.seeds, p.seeds),
            ):
                for value in chosen:
                    if value not in valid:
                        valid_names = [str(v) for v in valid]
                        raise UnknownChoiceError(f"{what} of {ext.label}", str(value), valid_names)
            self.load_file_model(ext.file, ext.factory, f"model file {ext.file}")
        if s.original is not None:
            self.load_file_model(s.original.file, None, f"original {s.original.source}")

    def load_file_model(self, file: str, factory: str | None, where: str) -> nn.Module:
        """The model of a state_dict file, built by ``factory`` (None: the protocol's model)."""
        state = load_state(Path(file).read_bytes(), where)
        model = self.model_skeleton(self.protocol.seeds[0], factory)
        architecture = f"model {self.protocol.model.name}" if factory is None else f"factory {factory}"
        load_into(model, state, where, architecture)
        return model

    def model_skeleton(self, seed: int, factory: str | None) -> nn.Module:
        """A seeded model of the protocol's architecture, or of ``factory`` (on the device)."""
        if factory is None:
            return self.new_model_factory(seed)()
        build = self.factories.get(factory) or import_factory(factory)
        dataset = self.data.dataset
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = call_factory(build, dataset.num_classes, dataset.in_channels, dataset.image_size)
        if not isinstance(model, nn.Module):
            raise InvalidValueError(f"factory {factory} returned a {type(model).__name__}, not an nn.Module")
        return self.engine.prepare(model)

    def _create(self, kind: str, name: str, params: dict[str, dict[str, Any]]) -> Any:
        return self.registry.create(kind, name, params.get(name))

    # --- identity -----------------------------------------------------------------------------
    def data_id(self) -> dict[str, Any]:
        d = self.data
        return {
            "dataset": {
                "name": self.dataset_plugin.name,
                "version": self.dataset_plugin.version,
                "params": to_dict(self.dataset_plugin.params),
            },
            "copy": d.dataset.copy,
            "content": self.data_sha256,
            "holdout_fraction": self.protocol.data.holdout_fraction,
            "split_seed": self.protocol.data.split_seed,
            "limit": self.protocol.data.limit,
            "sizes": [len(d.pool), len(d.val), len(d.test)],
        }

    def compute_id(self) -> dict[str, Any]:
        """What of the computation's settings changes its numbers, part of every node's key: the
        training precision, on a CPU the thread count (it changes reduction order), and the
        deterministic mode when on."""
        found: dict[str, Any] = {"precision": "bf16-autocast" if self.engine.bf16 else "fp32"}
        if self.engine.device.type == "cpu":
            found["threads"] = torch.get_num_threads()
        if self.settings.deterministic:
            found["deterministic"] = True
        return found

    def info(self, component: Component) -> ComponentInfo:
        """The planner's view of ``component``, with the distribution that registered it."""
        entry = self.registry.entries(component.kind).get(component.name)
        plugin = {i.name: i for i in self.registry.host.infos()}.get(entry.plugin) if entry else None
        dist = (plugin.distribution, plugin.version) if plugin else (None, None)
        return ComponentInfo.of(component, dist)

    def plan_inputs(self) -> PlanInputs:
        components: list[Component] = [
            self.dataset_plugin,
            self.model_plugin,
            *self.pruners.values(),
            *self.unlearners.values(),
            *self.metrics.values(),
            *self.unpruners.values(),
        ]
        s = self.settings
        return PlanInputs(
            data_id=self.data_id(),
            forget_sha256={n: f.sha256 for n, f in self.forget_sets.items()},
            forget_size={n: len(f.indices) for n, f in self.forget_sets.items()},
            components={(c.kind, c.name): self.info(c) for c in components},
            compute=self.compute_id(),
            externals={e.label: e.plan_entry() for e in s.externals},
            original=None if s.original is None else s.original.plan_entry(),
            forget_selection=tuple(s.forget),
        )

    # --- forget sets and splits ---------------------------------------------------------------
    def save_forget_sets(self) -> list[Path]:
        """Write each forget set's pool indices and sha256 to ``OUT/forget_sets/`` (once)."""
        paths = []
        for forget in self.forget_sets.values():
            name = f"{self.protocol.name}-{forget.spec.name}-{forget.sha256[:12]}.json"
            path = inside(Path(self.settings.out) / "forget_sets", name)
            if not path.exists():
                payload = {
                    "protocol": self.protocol.name,
                    "data": self.data_id(),
                    "spec": to_dict(forget.spec),
                    "sha256": forget.sha256,
                    "indices": forget.indices.tolist(),
                }
                write_text_atomic(path, json.dumps(payload, sort_keys=True))
            paths.append(path)
        return paths

    def splits(self, forget: str) -> dict[str, ImageSplit]:
        """The forget, retain, test and forgotten-class test splits of forget set ``forget``."""
        return self._splits[forget]

    def eval_test(self) -> ImageSplit:
        """The split metrics call ``test``: the test set, or the hold-out for ``eval_split = 'val'``."""
        test = self.data.val if self.protocol.data.eval_split == "val" else self.data.test
        if len(test) == 0:
            raise InvalidValueError(
                "data.eval_split = 'val' needs a validation hold-out (data.holdout_fraction > 0)"
            )
        return test

    def test_indices(self, forget: ForgetSet) -> dict[str, torch.Tensor]:
        """Indices into :meth:`eval_test` of the ``test`` split of ``forget`` (the examples not of
        a forgotten class) and of its ``forget_test`` split (those of a forgotten class)."""
        test = self.eval_test()
        classes = torch.tensor(forget.forgotten_classes or [], dtype=torch.int64, device=test.labels.device)
        gone = torch.isin(test.labels, classes)
        return {"test": torch.nonzero(~gone).flatten(), "forget_test": torch.nonzero(gone).flatten()}

    def _build_splits(self, forget: ForgetSet) -> dict[str, ImageSplit]:
        pool, test = self.data.pool, self.eval_test()
        device = pool.labels.device
        forget_split = pool.subset(forget.indices.to(device))
        retain_split = pool.subset(retain_indices(len(pool), forget).to(device))
        parts = {name: test.subset(index) for name, index in self.test_indices(forget).items()}
        return {"forget": forget_split, "retain": retain_split, **parts}

    def training_data(self, forget: str | None) -> ImageSplit:
        """The pool (``forget`` None), or the retain set of forget set ``forget``."""
        return self.data.pool if forget is None else self.splits(forget)["retain"]

    # --- models -------------------------------------------------------------------------------
    def new_model_factory(self, seed: int) -> Callable[[], nn.Module]:
        dataset = self.data.dataset

        def build() -> nn.Module:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                model = self.model_plugin.build(  # type: ignore[attr-defined]
                    num_classes=dataset.num_classes,
                    in_channels=dataset.in_channels,
                    image_size=dataset.image_size,
                )
            return self.engine.prepare(model)

        return build

    def load_model(self, seed: int, state: dict[str, torch.Tensor], factory: str | None = None) -> nn.Module:
        model = self.model_skeleton(seed, factory) if factory is not None else self.new_model_factory(seed)()
        model.load_state_dict(state)
        return model


@functools.lru_cache(maxsize=4)
def _cached_context(blob: bytes) -> RunContext:
    from unlearnbench.registry.host import create_host

    protocol, settings = pickle.loads(blob)
    return RunContext(protocol, Registry(create_host()), settings)


def context_for(protocol: Protocol, settings: RunSettings) -> RunContext:
    """The context of ``protocol`` and ``settings``, built once per process (Ray workers)."""
    return _cached_context(pickle.dumps((protocol, settings)))
