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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnbench.config.protocol import Protocol
from unlearnbench.config.typed_config import to_dict
from unlearnbench.data.forget import ForgetSet, draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import PreparedData, prepare
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.paths import inside
from unlearnbench.progress import NullProgress, ProgressSink
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import Component, Metric, Pruner, Unlearner, Unpruner
from unlearnbench.run.artifacts import write_text_atomic
from unlearnbench.run.plan import ORIGINAL, REFERENCE_ROWS, ComponentInfo, PlanInputs
from unlearnbench.training.engine import Engine
from unlearnbench.training.pruning import check_sparsity, scope_parameter_names

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSettings:
    """Where and how to run: output folder, device, data root, whether to download, and the
    artifact store (a folder or an fsspec URL that every node of a cluster can reach; default
    ``OUT/artifacts``)."""

    out: Path
    device: str = "cpu"
    data_root: Path | None = None
    download: bool = True
    artifact_root: str | None = None
    tuning: Mapping[str, Any] = field(default_factory=dict)
    """How unlearners' parameters were tuned (``unlearnbench tune``), copied into their records."""
    timeouts: Mapping[str, float] = field(default_factory=dict)
    """Seconds a node of a stage may run before it fails naming the component it was in (``--timeout``)."""

    @property
    def artifacts(self) -> str:
        """The artifact store root."""
        return self.artifact_root or str(Path(self.out) / "artifacts")


class RunContext:
    """Components, data, forget sets, splits, model factory and engine of one protocol run."""

    def __init__(
        self,
        protocol: Protocol,
        registry: Registry,
        settings: RunSettings,
        *,
        progress: ProgressSink | None = None,
    ) -> None:
        self.protocol = protocol
        self.registry = registry
        self.settings = settings
        self.progress = progress or NullProgress()
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
        prepared = prepare(splits, p.data.holdout_fraction, p.data.split_seed, p.data.limit)
        self.engine = Engine(settings.device, splits.mean, splits.std, progress=self.progress)
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
            "holdout_fraction": self.protocol.data.holdout_fraction,
            "split_seed": self.protocol.data.split_seed,
            "limit": self.protocol.data.limit,
            "sizes": [len(d.pool), len(d.val), len(d.test)],
        }

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
        return PlanInputs(
            data_id=self.data_id(),
            forget_sha256={n: f.sha256 for n, f in self.forget_sets.items()},
            forget_size={n: len(f.indices) for n, f in self.forget_sets.items()},
            components={(c.kind, c.name): self.info(c) for c in components},
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

    def load_model(self, seed: int, state: dict[str, torch.Tensor]) -> nn.Module:
        model = self.new_model_factory(seed)()
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
