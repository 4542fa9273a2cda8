"""The run: prepare data and forget sets -> train the original -> prune -> references ->
unlearn -> un-prune -> evaluate, every stage cached as an artifact keyed by its inputs.

Rows are (seed, pruner, sparsity, forget set, unlearner, un-prune). A component that raises
turns the rows that depend on it into failed rows; every other row and every finished artifact
survives, and a second run recomputes nothing already done.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from unlearnbench.config.protocol import Protocol
from unlearnbench.config.typed_config import to_dict
from unlearnbench.data.forget import ForgetSet, draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import PreparedData, prepare
from unlearnbench.progress import NullProgress, ProgressSink
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import (
    Component,
    Metric,
    Pruner,
    PruneTask,
    Unlearner,
    UnlearnTask,
    Unpruner,
    UnpruneTask,
)
from unlearnbench.registry.events import ResultReady
from unlearnbench.report.results import ResultsFile, environment_info, software_versions
from unlearnbench.run.artifacts import ArtifactStore, artifact_key, write_text_atomic
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.run.stages import ModelArtifact, StageCache
from unlearnbench.training.engine import Engine
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import check_sparsity, scope_parameter_names

log = logging.getLogger(__name__)

ORIGINAL = "original"
RESULT_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RunSettings:
    """Where and how to run: output folder, device, data root, whether to download."""

    out: Path
    device: str = "cpu"
    data_root: Path | None = None
    download: bool = True


@dataclass(frozen=True)
class Row:
    seed: int
    pruner: str
    sparsity: float
    forget: str
    unlearner: str
    unprune: bool


def component_id(component: Component) -> dict[str, Any]:
    """What identifies a configured component in cache keys and results."""
    return {"name": component.name, "version": component.version, "params": to_dict(component.params)}


class Pipeline:
    """Runs one protocol's row matrix; construct, then iterate :meth:`run` or call it."""

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
        self.hook = registry.host.hook
        self.stages = StageCache(ArtifactStore(settings.out / "artifacts"), registry.host.hook)
        self.results = ResultsFile(settings.out / "results.jsonl")
        self._memo: dict[tuple[Any, ...], Any] = {}
        # Build every component first, so a bad name or parameter fails before any work.
        p = protocol
        self.dataset_plugin = registry.create("dataset", p.data.dataset, p.data.params)
        self.model_plugin = registry.create("model", p.model.name, p.model.params)
        self.pruners: dict[str, Pruner] = {
            n: registry.create("pruner", n, p.prune.params.get(n)) for n in p.prune.pruners
        }  # type: ignore[misc]
        self.unlearners: dict[str, Unlearner] = {
            n: registry.create("unlearner", n, p.unlearn.params.get(n)) for n in p.unlearn.unlearners
        }  # type: ignore[misc]
        if ORIGINAL in self.unlearners:
            raise ValueError(f"{ORIGINAL!r} is reserved for the reference row")
        self.unpruner: Unpruner | None = None
        if True in p.unprune.modes:
            self.unpruner = registry.create(
                "unpruner", p.unprune.unpruner, p.unprune.params.get(p.unprune.unpruner)
            )  # type: ignore[assignment]
        self.metrics: dict[str, Metric] = {
            n: registry.create("metric", n, p.evaluate.params.get(n)) for n in p.evaluate.metrics
        }  # type: ignore[misc]
        for kind, table in (
            ("pruner", p.prune.params),
            ("unlearner", p.unlearn.params),
            ("unpruner", p.unprune.params),
            ("metric", p.evaluate.params),
        ):
            for name, params in table.items():
                registry.create(kind, name, params)
        for sparsity in p.prune.sparsities:
            check_sparsity(sparsity)
        self.engine = Engine(settings.device, (0.0,), (1.0,), progress=self.progress)
        self._data: PreparedData | None = None

    # ------------------------------------------------------------------------------------------
    # data
    # ------------------------------------------------------------------------------------------
    @property
    def data(self) -> PreparedData:
        if self._data is None:
            p = self.protocol
            root = self.settings.data_root
            splits = self.dataset_plugin.load(root, download=self.settings.download)  # type: ignore[attr-defined]
            log.info("dataset %s: copy %s read from %s", p.data.dataset, splits.copy, splits.location)
            prepared = prepare(splits, p.data.holdout_fraction, p.data.split_seed, p.data.limit)
            device = self.engine.device
            self._data = PreparedData(
                prepared.dataset, prepared.pool.to(device), prepared.val.to(device), prepared.test.to(device)
            )
            self.engine = Engine(device, splits.mean, splits.std, progress=self.progress)
        return self._data

    def data_id(self) -> dict[str, Any]:
        d = self.data
        return {
            "dataset": component_id(self.dataset_plugin),
            "copy": d.dataset.copy,
            "holdout_fraction": self.protocol.data.holdout_fraction,
            "split_seed": self.protocol.data.split_seed,
            "limit": self.protocol.data.limit,
            "sizes": [len(d.pool), len(d.val), len(d.test)],
        }

    def forget_set(self, name: str) -> ForgetSet:
        key = ("forget", name)
        if key not in self._memo:
            spec = next(s for s in self.protocol.forget if s.name == name)
            self._memo[key] = draw_forget_set(spec, self.data.pool, self.data.dataset.num_classes)
        return self._memo[key]

    def save_forget_set(self, forget: ForgetSet) -> Path:
        """Write the forget set's pool indices and sha256 to ``OUT/forget_sets/`` (once)."""
        path = (
            self.settings.out
            / "forget_sets"
            / f"{self.protocol.name}-{forget.spec.name}-{forget.sha256[:12]}.json"
        )
        if not path.exists():
            payload = {
                "protocol": self.protocol.name,
                "data": self.data_id(),
                "spec": to_dict(forget.spec),
                "sha256": forget.sha256,
                "indices": forget.indices.tolist(),
            }
            write_text_atomic(path, json.dumps(payload, sort_keys=True))
        return path

    def splits_for(self, forget: ForgetSet) -> dict[str, ImageSplit]:
        """The forget, retain, test and forgotten-class test splits of a forget set (built once)."""
        key = ("splits", forget.sha256, forget.forgotten_classes)
        if key not in self._memo:
            self._memo[key] = self._build_splits(forget)
        return self._memo[key]

    def _build_splits(self, forget: ForgetSet) -> dict[str, ImageSplit]:
        pool, test = self.data.pool, self.data.test
        device = pool.labels.device
        forget_split = pool.subset(forget.indices.to(device))
        retain_split = pool.subset(retain_indices(len(pool), forget).to(device))
        if forget.forgotten_classes:
            gone = torch.isin(test.labels, torch.tensor(forget.forgotten_classes, device=device))
            kept_test = test.subset(torch.nonzero(~gone).flatten())
            forget_test = test.subset(torch.nonzero(gone).flatten())
        else:
            kept_test, forget_test = test, test.head(0)
        return {"forget": forget_split, "retain": retain_split, "test": kept_test, "forget_test": forget_test}

    # ------------------------------------------------------------------------------------------
    # models and artifacts
    # ------------------------------------------------------------------------------------------
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

    def scope(self, seed: int) -> frozenset[str]:
        key = ("scope",)
        if key not in self._memo:
            self._memo[key] = scope_parameter_names(self.new_model_factory(seed)(), self.protocol.prune.scope)
        return self._memo[key]

    @staticmethod
    def _state(model: nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    # --- dense training (the original, and the retain-set run for the retain topology) --------
    def _dense_inputs(self, seed: int, forget: str | None) -> dict[str, Any]:
        return {
            "data": self.data_id(),
            "model": component_id(self.model_plugin),
            "recipe": to_dict(self.protocol.recipe),
            "seed": seed,
            "trained_on": "pool" if forget is None else {"retain_of": self.forget_set(forget).sha256},
        }

    def training_data(self, forget: str | None) -> ImageSplit:
        """The pool (``forget`` None), or the retain set of forget set ``forget``."""
        return self.data.pool if forget is None else self.splits_for(self.forget_set(forget))["retain"]

    def dense(self, seed: int, forget: str | None = None) -> ModelArtifact:
        """Dense training on the pool (``forget`` None) or on the retain set of ``forget``."""
        split = self.training_data(forget)
        recipe = self.protocol.recipe

        def compute() -> ModelArtifact:
            model = self.new_model_factory(seed)()
            rewind: dict[str, dict[str, torch.Tensor]] = {}
            if recipe.rewind_epoch == 0:
                rewind["rewind"] = self._state(model)

            def keep_rewind(epoch: int, m: nn.Module) -> None:
                if epoch == recipe.rewind_epoch:
                    rewind["rewind"] = self._state(m)

            label = "train original" if forget is None else f"train on retain ({forget})"
            val = self.data.val if len(self.data.val) else None
            self.engine.fit(
                model, split, recipe, seed=seed, description=label, on_epoch_end=keep_rewind, val=val
            )
            return ModelArtifact("", self._state(model), None, 0.0, rewind)

        stage = "original" if forget is None else "retain-dense"
        return self.stages.model(stage, self.model_plugin.name, self._dense_inputs(seed, forget), compute)

    # --- pruning -----------------------------------------------------------------------------
    def prune_task(self, seed: int, sparsity: float, data: ImageSplit, rewind: Any) -> PruneTask:
        return PruneTask(
            sparsity=sparsity,
            scope=self.scope(seed),
            data=data,
            engine=self.engine,
            recipe=self.protocol.recipe,
            new_model=self.new_model_factory(seed),
            rewind_state=rewind,
            seed=seed,
            val=self.data.val if len(self.data.val) else None,
        )

    def _prune_inputs(self, seed: int, pruner: str, sparsity: float, forget: str | None) -> dict[str, Any]:
        return {
            "parent": artifact_key(
                "original" if forget is None else "retain-dense", self._dense_inputs(seed, forget)
            ),
            "pruner": component_id(self.pruners[pruner]),
            "sparsity": sparsity,
            "scope": self.protocol.prune.scope,
        }

    def pruned(self, seed: int, pruner: str, sparsity: float, forget: str | None = None) -> ModelArtifact:
        """The pruned original (``forget`` None), or the retain-set topology of ``forget``."""
        dense = self.dense(seed, forget)
        if sparsity == 0.0:
            return dense
        data = self.training_data(forget)

        def compute() -> ModelArtifact:
            model = self.load_model(seed, dense.state)
            task = self.prune_task(seed, sparsity, data, dense.extra.get("rewind"))
            outcome = self.pruners[pruner].prune(model, task)
            outcome.mask.apply_(outcome.model)
            return ModelArtifact("", self._state(outcome.model), outcome.mask.to("cpu"), 0.0)

        stage = "prune" if forget is None else "retain-topology"
        return self.stages.model(stage, pruner, self._prune_inputs(seed, pruner, sparsity, forget), compute)

    # --- unlearning and un-pruning -------------------------------------------------------------
    def unlearn_task(
        self, seed: int, forget: str, mask: Mask | None, start: ModelArtifact | None = None
    ) -> UnlearnTask:
        """The task of unlearning ``forget``; ``start`` is the model the unlearning begins from."""
        forget_set = self.forget_set(forget)
        splits = self.splits_for(forget_set)
        dense = self.dense(seed) if start is not None and start.mask is not None else None
        return UnlearnTask(
            forget=splits["forget"],
            retain=splits["retain"],
            mask=mask,
            engine=self.engine,
            recipe=self.protocol.recipe,
            new_model=self.new_model_factory(seed),
            num_classes=self.data.dataset.num_classes,
            seed=seed,
            forget_kind=forget_set.spec.kind,
            forgotten_classes=forget_set.forgotten_classes,
            val=self.data.val if len(self.data.val) else None,
            original=None if start is None else (lambda: self.load_model(seed, start.state)),
            dense_state=None if dense is None else dense.state,
        )

    def _unlearner(self, name: str) -> Unlearner:
        if name not in self.unlearners:
            self.unlearners[name] = self.registry.create(  # type: ignore[assignment]
                "unlearner", name, self.protocol.unlearn.params.get(name)
            )
        return self.unlearners[name]

    def unlearned(self, row: Row) -> ModelArtifact:
        """The row's unlearned model, inside the pruned mask or through un-pruning."""
        start = self.pruned(row.seed, row.pruner, row.sparsity)
        unlearner = self._unlearner(row.unlearner)
        inputs = self._unlearn_inputs(row)
        mask = start.mask
        if not row.unprune:

            def compute() -> ModelArtifact:
                model = self.load_model(row.seed, start.state)
                out = unlearner.unlearn(model, self.unlearn_task(row.seed, row.forget, mask, start))
                return self._enforce(out, mask, unlearner.name)

            return self.stages.model("unlearn", unlearner.name, inputs, compute)

        assert self.unpruner is not None and mask is not None
        unpruner, pruner = self.unpruner, self.pruners[row.pruner]
        dense = self.dense(row.seed)
        inputs = {**inputs, "dense": dense.key, "unpruner": component_id(unpruner)}

        def compute_unprune() -> ModelArtifact:
            splits = self.splits_for(self.forget_set(row.forget))
            task = UnpruneTask(
                dense_model=self.load_model(row.seed, dense.state),
                pruned_model=self.load_model(row.seed, start.state),
                mask=mask,
                pruner=pruner,
                retain_prune_task=self.prune_task(row.seed, row.sparsity, splits["retain"], None),
                unlearner=unlearner,
                unlearn_task=self.unlearn_task(row.seed, row.forget, None, dense),
            )
            outcome = unpruner.unprune(task)
            return self._enforce(outcome.model, outcome.mask, unpruner.name)

        return self.stages.model("unprune", unpruner.name, inputs, compute_unprune)

    def _enforce(self, model: nn.Module, mask: Mask | None, who: str) -> ModelArtifact:
        """Re-apply ``mask`` so pruned weights are exactly zero whatever the component did."""
        fixed: dict[str, int] = {}
        if mask is not None:
            fixed = mask.violations(model)
            if fixed:
                log.warning("%s left %d pruned weights nonzero; re-masked", who, sum(fixed.values()))
            mask.apply_(model)
        return ModelArtifact("", self._state(model), None if mask is None else mask.to("cpu"), 0.0)

    # ------------------------------------------------------------------------------------------
    # evaluation and rows
    # ------------------------------------------------------------------------------------------
    def rows(self) -> list[Row]:
        p = self.protocol
        out = []
        for seed in p.seeds:
            for pruner in p.prune.pruners:
                for sparsity in p.prune.sparsities:
                    for spec in p.forget:
                        out.append(Row(seed, pruner, sparsity, spec.name, ORIGINAL, False))
                        for unlearner in p.unlearn.unlearners:
                            for mode in p.unprune.modes:
                                if mode and sparsity == 0.0:
                                    continue
                                out.append(Row(seed, pruner, sparsity, spec.name, unlearner, mode))
        return out

    def references(self, row: Row) -> dict[str, Callable[[], Reference]]:
        def original() -> Reference:
            art = self.pruned(row.seed, row.pruner, row.sparsity)
            return Reference(self.load_model(row.seed, art.state), art.mask)

        def retrain() -> Reference:
            art = self.unlearned(Row(row.seed, row.pruner, row.sparsity, row.forget, "retrain", False))
            return Reference(self.load_model(row.seed, art.state), art.mask)

        def retain_topology() -> Reference:
            if row.sparsity == 0.0:
                return Reference(None, None)
            return Reference(None, self.pruned(row.seed, row.pruner, row.sparsity, row.forget).mask)

        return {"original": original, "retrain": retrain, "retain_topology": retain_topology}

    def evaluate(self, row: Row) -> dict[str, Any]:
        if row.unlearner == ORIGINAL:
            model_art, runtime = self.pruned(row.seed, row.pruner, row.sparsity), None
        else:
            model_art = self.unlearned(row)
            runtime = model_art.runtime_s
        forget = self.forget_set(row.forget)
        inputs = {
            "model": model_art.key,
            "forget": forget.sha256,
            "data": self.data_id(),
            "metrics": [component_id(m) for m in self.metrics.values()],
            "references": self._reference_keys(row),
        }

        def compute() -> dict[str, Any]:
            ctx = EvalContext(
                model=self.load_model(row.seed, model_art.state),
                mask=model_art.mask,
                splits=self.splits_for(forget),
                engine=self.engine,
                references=self.references(row),
                runtime_s=runtime,
                forget_kind=forget.spec.kind,
                structured=self.pruners[row.pruner].structured,
            )
            values = {}
            for name, metric in self.metrics.items():
                value = metric.compute(ctx)
                values[name] = None if value is None else float(value)
            return {"metrics": values}

        artifact = self.stages.get("evaluate", "metrics", inputs, compute)
        return {"metrics": artifact.meta["payload"]["metrics"], "model": model_art, "eval_key": artifact.key}

    def _pruned_key(self, seed: int, pruner: str, sparsity: float, forget: str | None) -> str:
        """The key :meth:`pruned` gives, without computing anything."""
        if sparsity == 0.0:
            stage = "original" if forget is None else "retain-dense"
            return artifact_key(stage, self._dense_inputs(seed, forget))
        stage = "prune" if forget is None else "retain-topology"
        return artifact_key(stage, self._prune_inputs(seed, pruner, sparsity, forget))

    def _unlearn_inputs(self, row: Row) -> dict[str, Any]:
        return {
            "parent": self._pruned_key(row.seed, row.pruner, row.sparsity, None),
            "forget": self.forget_set(row.forget).sha256,
            "unlearner": component_id(self._unlearner(row.unlearner)),
            "seed": row.seed,
        }

    def _reference_keys(self, row: Row) -> dict[str, Any]:
        """Keys of every reference a metric may read, so cached metrics follow them."""
        retrain = Row(row.seed, row.pruner, row.sparsity, row.forget, "retrain", False)
        return {
            "original": self._pruned_key(row.seed, row.pruner, row.sparsity, None),
            "retrain": artifact_key("unlearn", self._unlearn_inputs(retrain)),
            "retain_topology": self._pruned_key(row.seed, row.pruner, row.sparsity, row.forget),
        }

    def record(self, row: Row) -> dict[str, Any]:
        """The result row: evaluated, or failed with the error that stopped it."""
        p = self.protocol
        forget = self.forget_set(row.forget)
        record: dict[str, Any] = {
            "schema_version": RESULT_SCHEMA_VERSION,
            "protocol": p.name,
            "protocol_version": p.version,
            "protocol_hash": p.hash,
            "dataset": p.data.dataset,
            "data_copy": self.data.dataset.copy,
            "model": p.model.name,
            "forget_set": row.forget,
            "forget_kind": forget.spec.kind,
            "forget_size": len(forget.indices),
            "forget_sha256": forget.sha256,
            "pruner": row.pruner,
            "sparsity_target": row.sparsity,
            "unlearner": row.unlearner,
            "unprune": row.unprune,
            "unpruner": self.unpruner.name if row.unprune and self.unpruner else None,
            "seed": row.seed,
        }
        record["row_id"] = artifact_key(
            "row",
            {
                k: record[k]
                for k in (
                    "protocol",
                    "protocol_version",
                    "protocol_hash",
                    "forget_set",
                    "pruner",
                    "sparsity_target",
                    "unlearner",
                    "unprune",
                    "seed",
                )
            },
        )
        record["versions"] = {**software_versions(), **self._versions(row)}
        record.update(environment_info(self.engine.device))
        try:
            evaluated = self.evaluate(row)
        except Exception as exc:
            record.update(status="failed", error=f"{type(exc).__name__}: {exc}", metrics={})
            log.debug("row failed:\n%s", traceback.format_exc())
            return record
        model_art: ModelArtifact = evaluated["model"]
        mask = model_art.mask
        record.update(
            status="ok",
            error=None,
            sparsity=0.0 if mask is None else mask.sparsity(),
            filter_sparsity=(
                mask.filter_sparsity() if mask is not None and self.pruners[row.pruner].structured else None
            ),
            metrics=evaluated["metrics"],
            metric_names=list(self.metrics),
            metric_info={
                n: {
                    "label": m.label or n,
                    "unit": m.unit,
                    "version": m.version,
                    "higher_is_better": m.higher_is_better,
                }
                for n, m in self.metrics.items()
            },
            runtime_s=self._runtimes(row),
            params=self._params(row),
        )
        return record

    def _versions(self, row: Row) -> dict[str, Any]:
        components = {
            "dataset": self.dataset_plugin,
            "model": self.model_plugin,
            "pruner": self.pruners[row.pruner],
        }
        if row.unlearner != ORIGINAL:
            components["unlearner"] = self._unlearner(row.unlearner)
        if row.unprune and self.unpruner is not None:
            components["unpruner"] = self.unpruner
        found = {k: f"{c.name}@{c.version}" for k, c in components.items()}
        found["metrics"] = {n: m.version for n, m in self.metrics.items()}
        return found

    def _params(self, row: Row) -> dict[str, Any]:
        params = {"pruner": to_dict(self.pruners[row.pruner].params)}
        if row.unlearner != ORIGINAL:
            params["unlearner"] = to_dict(self._unlearner(row.unlearner).params)
        if row.unprune and self.unpruner is not None:
            params["unpruner"] = to_dict(self.unpruner.params)
        return params

    def _runtimes(self, row: Row) -> dict[str, float]:
        times = {"original": self.dense(row.seed).runtime_s}
        if row.sparsity > 0:
            times["prune"] = self.pruned(row.seed, row.pruner, row.sparsity).runtime_s
        if row.unlearner != ORIGINAL:
            stage = "unprune" if row.unprune else "unlearn"
            times[stage] = self.unlearned(row).runtime_s
        return times

    def check_inputs(self) -> None:
        """Load the data, draw every forget set and resolve the prune scope before any training,
        so a bad data root, forget set or scope fails the run at once."""
        for spec in self.protocol.forget:
            self.save_forget_set(self.forget_set(spec.name))
        for seed in self.protocol.seeds:
            self.scope(seed)

    def run(self) -> Iterator[dict[str, Any]]:
        """Evaluate every row, writing each record to ``results.jsonl`` as it completes."""
        self.check_inputs()
        rows = self.rows()
        task = self.progress.start(f"{self.protocol.name}: rows", len(rows))
        for row in rows:
            record = self.record(row)
            self.results.put(record)
            self.hook.unlearnbench_result_ready(event=ResultReady(record, self.results.path))
            self.progress.advance(task)
            yield record
        self.progress.finish(task)
