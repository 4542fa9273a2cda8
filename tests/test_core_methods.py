"""The built-in methods on real data (scikit-learn digits, a small CNN on the CPU): what each
unlearner changes, exact zeros under a mask (also through the pipeline's enforcement), OMP's
kept count, un-pruning toward the retain-set topology, and the SVC membership attack."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_metrics.mia import MIAEfficacy, svc_attack_nonmember_rate, true_label_confidence
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_unlearners.finetune import FineTune, L1Sparse, l1_norm
from unlearnbench_unlearners.gradient_ascent import GradientAscent
from unlearnbench_unlearners.retrain import Retrain
from unlearnbench_unpruners.reprune import RelaxUnlearnReprune

from unlearnbench import hookimpl
from unlearnbench.config.protocol import ForgetSpec, load_protocol
from unlearnbench.data.forget import draw_forget_set, retain_indices
from unlearnbench.data.images import DatasetSplits, ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import PruneTask, Unlearner, UnlearnTask, UnpruneTask
from unlearnbench.registry.host import ONLY_PLUGINS_ENV, create_host
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import kept_count, scope_parameter_names

SPARSITY = 0.9
SEED = 0


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# A tiny, real setting: digits, small-cnn width 8, a dense model trained for 5 epochs
# --------------------------------------------------------------------------------------------
@dataclass
class World:
    data: DatasetSplits
    pool: ImageSplit
    engine: Engine
    recipe: TrainRecipe
    new_model: Callable[[], nn.Module]
    dense: nn.Module
    rewind: dict[str, torch.Tensor]
    scope: frozenset[str]
    mask: Mask
    pruned: nn.Module
    forget: ImageSplit
    retain: ImageSplit

    def task(
        self, mask: Mask | None = None, *, forget: ImageSplit | None = None, retain: ImageSplit | None = None
    ) -> UnlearnTask:
        return UnlearnTask(
            forget=self.forget if forget is None else forget,
            retain=self.retain if retain is None else retain,
            mask=mask,
            engine=self.engine,
            recipe=self.recipe,
            new_model=self.new_model,
            num_classes=10,
            seed=SEED,
        )

    def prune_task(self, data: ImageSplit, rewind: dict[str, torch.Tensor] | None = None) -> PruneTask:
        return PruneTask(
            sparsity=SPARSITY,
            scope=self.scope,
            data=data,
            engine=self.engine,
            recipe=self.recipe,
            new_model=self.new_model,
            rewind_state=rewind,
            seed=SEED,
        )


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def forget_loss(world: World, model: nn.Module, split: ImageSplit | None = None) -> float:
    split = world.forget if split is None else split
    return float(F.cross_entropy(world.engine.logits(model, split), split.labels))


@pytest.fixture(scope="module")
def world() -> World:
    data = Digits().load(None, download=False)
    pool = limit_split(data.train, 800, SEED)
    engine = Engine("cpu", data.mean, data.std)
    recipe = TrainRecipe(
        epochs=5, batch_size=64, lr=0.05, schedule="cosine", augment=False, rewind_epoch=1, milestones=()
    )

    def new_model() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)

    dense = new_model()
    rewind: dict[str, torch.Tensor] = {}

    def keep_rewind(epoch: int, m: nn.Module) -> None:
        if epoch == recipe.rewind_epoch:
            rewind.update(state(m))

    engine.fit(dense, pool, recipe, seed=SEED, on_epoch_end=keep_rewind)
    scope = scope_parameter_names(dense, "conv")
    omp = OneShotMagnitude(OneShotMagnitude.Params(rewind=False, retrain=False))
    prune_task = PruneTask(SPARSITY, scope, pool, engine, recipe, new_model, None, SEED)
    outcome = omp.prune(copy.deepcopy(dense), prune_task)
    forget_set = draw_forget_set(ForgetSpec("random10", "random", fraction=0.1, seed=SEED), pool, 10)
    return World(
        data=data,
        pool=pool,
        engine=engine,
        recipe=recipe,
        new_model=new_model,
        dense=dense,
        rewind=rewind,
        scope=scope,
        mask=outcome.mask,
        pruned=outcome.model,
        forget=pool.subset(forget_set.indices),
        retain=pool.subset(retain_indices(len(pool), forget_set)),
    )


@pytest.fixture(scope="module")
def dense_results(world: World) -> dict[str, nn.Module]:
    """FT, GA, l1-sparse (and l1-sparse without penalty) on the dense model, same budget."""
    methods: dict[str, Unlearner] = {
        "ft": FineTune(FineTune.Params(epochs=3, lr=0.01)),
        "ga": GradientAscent(GradientAscent.Params(epochs=3, lr=1e-2)),
        "l1-sparse": L1Sparse(L1Sparse.Params(epochs=3, lr=0.01)),
        "l1-sparse-alpha0": L1Sparse(L1Sparse.Params(epochs=3, lr=0.01, alpha=0.0)),
    }
    return {name: m.unlearn(copy.deepcopy(world.dense), world.task()) for name, m in methods.items()}


# --------------------------------------------------------------------------------------------
# OMP
# --------------------------------------------------------------------------------------------
def test_omp_keeps_exactly_the_largest_magnitudes(world: World) -> None:
    mask, pruned, dense = world.mask, world.pruned, world.dense
    params = dict(dense.named_parameters())
    total = sum(params[n].numel() for n in world.scope)
    assert mask.scope == world.scope == {"0.weight", "3.weight", "7.weight"}
    assert mask.total() == total
    assert mask.kept() == kept_count(total, SPARSITY)
    assert mask.sparsity() == pytest.approx(1 - kept_count(total, SPARSITY) / total, abs=0)
    kept = torch.cat([params[n].detach().abs()[mask.tensors[n]] for n in sorted(world.scope)])
    dropped = torch.cat([params[n].detach().abs()[~mask.tensors[n]] for n in sorted(world.scope)])
    assert float(kept.min()) >= float(dropped.max())
    after = dict(pruned.named_parameters())
    for name, keep in mask.tensors.items():
        assert torch.equal(after[name][~keep], torch.zeros(int((~keep).sum())))
        assert torch.equal(after[name][keep], params[name][keep])
    # Parameters outside the scope (BatchNorm, the classifier) are untouched.
    for name, value in params.items():
        if name not in world.scope:
            assert torch.equal(after[name], value)


def test_omp_with_rewind_and_retrain_keeps_the_exact_count(world: World) -> None:
    model = copy.deepcopy(world.dense)
    short = dataclasses.replace(world.recipe, epochs=2)
    task = dataclasses.replace(world.prune_task(world.pool, world.rewind), recipe=short)
    outcome = OneShotMagnitude().prune(model, task)
    assert outcome.mask.kept() == world.mask.kept() == kept_count(world.mask.total(), SPARSITY)
    # The mask is chosen on the trained weights, before rewinding.
    for name in world.scope:
        assert torch.equal(outcome.mask.tensors[name], world.mask.tensors[name])
    assert outcome.mask.violations(outcome.model) == {}
    nonzero = sum(int(p.ne(0).sum()) for n, p in outcome.model.named_parameters() if n in world.scope)
    assert nonzero <= outcome.mask.kept()
    # The surviving weights were retrained, not kept.
    name = "3.weight"
    keep = world.mask.tensors[name]
    assert not torch.equal(
        dict(outcome.model.named_parameters())[name][keep], world.pruned.state_dict()[name][keep]
    )


# --------------------------------------------------------------------------------------------
# Unlearners
# --------------------------------------------------------------------------------------------
def test_ga_raises_the_forget_loss(world: World, dense_results: dict[str, nn.Module]) -> None:
    before = forget_loss(world, world.dense)
    after = forget_loss(world, dense_results["ga"])
    assert after > before
    assert math.isfinite(after)


def test_ft_keeps_retain_accuracy_and_raises_the_forget_loss_less_than_ga(
    world: World, dense_results: dict[str, nn.Module]
) -> None:
    engine = world.engine
    retain_before = engine.accuracy(world.dense, world.retain)
    retain_after = engine.accuracy(dense_results["ft"], world.retain)
    assert retain_after >= retain_before - 1.0
    before = forget_loss(world, world.dense)
    ft_rise = forget_loss(world, dense_results["ft"]) - before
    ga_rise = forget_loss(world, dense_results["ga"]) - before
    assert ft_rise < ga_rise


def test_l1_sparse_has_a_smaller_l1_norm_than_ft_with_the_same_budget(
    world: World, dense_results: dict[str, nn.Module]
) -> None:
    ft, l1 = dense_results["ft"], dense_results["l1-sparse"]
    with torch.no_grad():
        assert float(l1_norm(l1)) < float(l1_norm(ft))
    # Without the penalty l1-sparse is exactly FT (same batches, same optimiser): the gap is the penalty.
    assert same_weights(dense_results["l1-sparse-alpha0"], ft)


def test_l1_sparse_penalty_schedule() -> None:
    method = L1Sparse(L1Sparse.Params(epochs=10, alpha=1e-3, no_l1_epochs=2))
    gammas = [method.gamma(epoch) for epoch in range(10)]
    assert gammas[0] == pytest.approx(1e-3)
    assert gammas[4] == pytest.approx(1e-3 * (1 - 4 / 8))
    assert all(a > b for a, b in itertools.pairwise(gammas[:8]))
    assert gammas[8] == gammas[9] == 0.0


def test_retrain_depends_only_on_the_retain_set_and_the_seed(world: World) -> None:
    retrain = Retrain(Retrain.Params(epochs=2))
    n = len(world.forget) + 7
    garbage = ImageSplit(
        torch.full((n, 1, 8, 8), 255, dtype=torch.uint8),
        torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(1)),
    )
    real = retrain.unlearn(copy.deepcopy(world.dense), world.task())
    # Other forget images, another starting model: the very same weights.
    swapped = retrain.unlearn(copy.deepcopy(world.pruned), world.task(forget=garbage))
    assert same_weights(real, swapped)
    # It did train (not the fresh initialisation) ...
    assert not same_weights(real, world.new_model())
    # ... and the comparison has teeth: one retain example less changes the weights,
    retain_less = world.retain.head(len(world.retain) - 1)
    assert not same_weights(real, retrain.unlearn(copy.deepcopy(world.dense), world.task(retain=retain_less)))
    # while GA, which reads the forget set, changes with the swapped forget set.
    ga = GradientAscent(GradientAscent.Params(epochs=1, lr=1e-2))
    assert not same_weights(
        ga.unlearn(copy.deepcopy(world.dense), world.task()),
        ga.unlearn(copy.deepcopy(world.dense), world.task(forget=garbage)),
    )


UNLEARNERS: dict[str, Callable[[], Unlearner]] = {
    "ft": lambda: FineTune(FineTune.Params(epochs=2, lr=0.01)),
    "ga": lambda: GradientAscent(GradientAscent.Params(epochs=2, lr=1e-2)),
    "l1-sparse": lambda: L1Sparse(L1Sparse.Params(epochs=2, lr=0.01, alpha=1e-3)),
    "retrain": lambda: Retrain(Retrain.Params(epochs=2)),
}


def assert_pruned_entries_zero(model: nn.Module, mask: Mask) -> None:
    params = dict(model.named_parameters())
    for name, keep in mask.tensors.items():
        dropped = params[name].detach()[~keep]
        assert int((dropped != 0).sum()) == 0, f"{name}: {int((dropped != 0).sum())} pruned entries nonzero"
    assert mask.violations(model) == {}


@pytest.mark.parametrize("name", sorted(UNLEARNERS))
def test_a_pruned_weight_stays_exactly_zero_through_every_unlearner(world: World, name: str) -> None:
    start = copy.deepcopy(world.pruned)
    out = UNLEARNERS[name]().unlearn(start, world.task(world.mask))
    assert_pruned_entries_zero(out, world.mask)
    # The kept weights did move (the unlearner ran).
    params = dict(out.named_parameters())
    before = world.pruned.state_dict()
    assert any(
        not torch.equal(params[n][world.mask.tensors[n]], before[n][world.mask.tensors[n]])
        for n in world.scope
    )


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True to a scalar")
def test_a_pruned_weight_stays_exactly_zero_when_ga_diverges(world: World) -> None:
    ga = GradientAscent(GradientAscent.Params(epochs=3, lr=1e6))
    out = ga.unlearn(copy.deepcopy(world.pruned), world.task(world.mask))
    assert_pruned_entries_zero(out, world.mask)


def test_mask_apply_zeroes_non_finite_pruned_weights() -> None:
    layer = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, float("inf"), 2.0], [float("nan"), 3.0, -float("inf")]]))
    keep = torch.tensor([[True, False, True], [False, True, False]])
    mask = Mask({"weight": keep}, frozenset({"weight"}))
    mask.apply_(layer)
    assert torch.equal(layer.weight.detach()[~keep], torch.zeros(3))


# --------------------------------------------------------------------------------------------
# The pipeline re-masks what a third-party unlearner leaves nonzero
# --------------------------------------------------------------------------------------------
class Vandal(Unlearner):
    """Writes ``fill`` into every pruned weight (a broken third-party unlearner)."""

    name = "core-vandal"
    fill: ClassVar[float] = 0.5
    seen: ClassVar[list[int]] = []

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        assert task.mask is not None
        params = dict(model.named_parameters())
        with torch.no_grad():
            for name, keep in task.mask.tensors.items():
                params[name][~keep.to(params[name].device)] = self.fill
        type(self).seen.append(sum(task.mask.violations(model).values()))
        return model


class VandalNaN(Vandal):
    """Writes NaN into every pruned weight."""

    name = "core-vandal-nan"
    fill: ClassVar[float] = float("nan")
    seen: ClassVar[list[int]] = []


def vandal_plugin() -> types.ModuleType:
    plugin = types.ModuleType("ub_core_vandal_plugin")

    @hookimpl
    def unlearnbench_register_unlearners() -> list[type]:
        return [Vandal, VandalNaN]

    plugin.unlearnbench_register_unlearners = unlearnbench_register_unlearners  # type: ignore[attr-defined]
    return plugin


@dataclass
class VandalRun:
    out: Path
    records: list[dict[str, Any]]
    artifacts: dict[str, list[tuple[dict[str, torch.Tensor], Mask]]]


@pytest.fixture(scope="module")
def vandal_run(tmp_path_factory: pytest.TempPathFactory) -> VandalRun:
    Vandal.seen.clear()
    VandalNaN.seen.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        registry = Registry(create_host(autoload=True, plugins=[vandal_plugin()]))
    overrides = [
        ("data.limit", 300),
        ("train.epochs", 2),
        ("unlearn.unlearners", ["core-vandal", "core-vandal-nan"]),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ra"]),
    ]
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    out = tmp_path_factory.mktemp("vandal")
    records = list(Pipeline(protocol, registry, RunSettings(out=out, device="cpu")).run())
    artifacts: dict[str, list[tuple[dict[str, torch.Tensor], Mask]]] = {}
    for folder in sorted((out / "artifacts" / "unlearn").iterdir()):
        meta = json.loads((folder / "meta.json").read_text())
        weights = torch.load(folder / "model.pt", weights_only=True)
        artifacts.setdefault(meta["component"], []).append((weights, Mask.load(folder / "mask.pt")))
    return VandalRun(out, records, artifacts)


def test_pipeline_re_masks_nonzero_pruned_weights(vandal_run: VandalRun) -> None:
    rows = [r for r in vandal_run.records if r["unlearner"] == "core-vandal"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    # The vandal really did leave nonzero pruned weights behind ...
    assert len(Vandal.seen) == 2 and all(count > 0 for count in Vandal.seen)
    # ... and what the pipeline stored has them exactly zero again, at the target sparsity.
    stored = vandal_run.artifacts["core-vandal"]
    assert len(stored) == 2
    for weights, mask in stored:
        assert mask.kept() == kept_count(mask.total(), SPARSITY)
        for name, keep in mask.tensors.items():
            assert int((weights[name][~keep] != 0).sum()) == 0
            assert bool(weights[name][keep].ne(0).any())
    for row in rows:
        assert row["sparsity"] == stored[0][1].sparsity()


def test_pipeline_re_masks_nan_pruned_weights(vandal_run: VandalRun) -> None:
    assert len(VandalNaN.seen) == 2 and all(count > 0 for count in VandalNaN.seen)
    for weights, mask in vandal_run.artifacts["core-vandal-nan"]:
        for name, keep in mask.tensors.items():
            assert int((weights[name][~keep] != 0).sum()) == 0


# --------------------------------------------------------------------------------------------
# Un-pruning
# --------------------------------------------------------------------------------------------
def test_unpruning_moves_the_mask_toward_the_retain_topology(world: World) -> None:
    labels = world.pool.labels
    forget = world.pool.subset(torch.nonzero(labels == 0).flatten())
    retain = world.pool.subset(torch.nonzero(labels != 0).flatten())
    omp = OneShotMagnitude(OneShotMagnitude.Params(rewind=False, retrain=False))
    # The retain-set topology: train on the retain set, prune with the same pruner.
    on_retain = world.new_model()
    world.engine.fit(on_retain, retain, world.recipe, seed=SEED)
    retain_topology = omp.make_mask(on_retain, world.prune_task(retain))

    task = UnpruneTask(
        dense_model=copy.deepcopy(world.dense),
        pruned_model=copy.deepcopy(world.pruned),
        mask=world.mask,
        pruner=omp,
        retain_prune_task=world.prune_task(retain),
        # Retrain at the world's training recipe (its own default is the reference's 160 epochs).
        unlearner=Retrain(Retrain.Params(epochs=5, batch_size=64, lr=0.05, schedule="cosine")),
        unlearn_task=world.task(forget=forget, retain=retain),
    )
    outcome = RelaxUnlearnReprune(RelaxUnlearnReprune.Params(finetune_epochs=1)).unprune(task)

    before = world.mask.iou(retain_topology)
    after = outcome.mask.iou(retain_topology)
    assert before < 1.0
    assert after > before
    assert outcome.mask.kept() == world.mask.kept()
    assert_pruned_entries_zero(outcome.model, outcome.mask)


# --------------------------------------------------------------------------------------------
# The SVC membership-inference attack
# --------------------------------------------------------------------------------------------
@dataclass
class Overfit:
    engine: Engine
    model: nn.Module
    train: ImageSplit
    unseen: ImageSplit


@pytest.fixture(scope="module")
def overfit(world: World) -> Overfit:
    """small-cnn trained 60 epochs on 100 digits: it is far more confident on them than on new ones."""
    train = limit_split(world.data.train, 100, 1)
    model = world.new_model()
    recipe = TrainRecipe(
        epochs=60, batch_size=20, lr=0.05, schedule="cosine", augment=False, weight_decay=0.0
    )
    world.engine.fit(model, train, recipe, seed=SEED)
    return Overfit(world.engine, model, train, world.data.test)


def confidences(o: Overfit, split: ImageSplit) -> Any:
    return true_label_confidence(o.engine.logits(o.model, split), split.labels.cpu())


def test_svc_attack_separates_training_data_from_unseen_data(overfit: Overfit) -> None:
    members = confidences(overfit, overfit.train)
    nonmembers = confidences(overfit, overfit.unseen)
    half = len(members) // 2
    # Fit on one half of each, attack the other halves.
    shadow_in, target_in = members[:half], members[half:]
    shadow_out, target_out = nonmembers[:half], nonmembers[half:]
    predicted_out_of_members = svc_attack_nonmember_rate(
        shadow_in, shadow_out, target_in, c=3.0, gamma="auto"
    )
    predicted_out_of_unseen = svc_attack_nonmember_rate(
        shadow_in, shadow_out, target_out, c=3.0, gamma="auto"
    )
    member_rate_train = 1.0 - predicted_out_of_members
    member_rate_unseen = 1.0 - predicted_out_of_unseen
    assert member_rate_train > member_rate_unseen + 0.15
    assert member_rate_train > 0.5


def test_mia_efficacy_is_higher_for_unseen_forget_data(overfit: Overfit) -> None:
    half = len(overfit.train) // 2
    shadow_members = overfit.train.head(half)
    held_members = overfit.train.subset(torch.arange(half, len(overfit.train)))
    shadow_nonmembers = overfit.unseen.head(half)
    unseen_targets = overfit.unseen.subset(torch.arange(half, 2 * half))

    def efficacy(forget: ImageSplit) -> float | None:
        ctx = EvalContext(
            model=overfit.model,
            mask=None,
            splits={
                "forget": forget,
                "retain": shadow_members,
                "test": shadow_nonmembers,
                "forget_test": forget.head(0),
            },
            engine=overfit.engine,
            references={"original": lambda: Reference(overfit.model, None)},
            runtime_s=None,
            forget_kind="random",
        )
        return MIAEfficacy().compute(ctx)

    trained_on = efficacy(held_members)
    never_seen = efficacy(unseen_targets)
    assert trained_on is not None and never_seen is not None
    assert 0.0 <= trained_on <= 100.0 and 0.0 <= never_seen <= 100.0
    assert never_seen > trained_on + 15.0
    assert efficacy(held_members.head(0)) is None
