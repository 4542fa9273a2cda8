"""The un-pruners (reprune, reprune-filter, regrow, control) on digits with a small CNN, and the
gold-reference metrics (IoU, IoM, Hamming, filter IoU, KL, error band) on hand-made masks,
distributions and scores with known values."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_metrics.gold import (
    GoldErrorBand,
    GoldFilterIoU,
    GoldHamming,
    GoldIoM,
    GoldIoU,
    GoldKLForget,
    GoldKLTest,
    error_band,
    mean_kl,
)
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners.l1_filter import L1Filter
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_pruners.snip import Snip
from unlearnbench_pruners.synflow import SynFlow
from unlearnbench_unlearners.finetune import FineTune
from unlearnbench_unpruners._common import relaxed_start
from unlearnbench_unpruners.control import KeepMaskControl
from unlearnbench_unpruners.regrow import Regrow, drop_and_grow
from unlearnbench_unpruners.reprune import RelaxUnlearnReprune
from unlearnbench_unpruners.reprune_filter import FilterReprune

from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.components import (
    Pruner,
    PruneTask,
    Unlearner,
    UnlearnTask,
    UnpruneTask,
    as_metric_value,
)
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import scope_parameter_names

SEED = 0


pytestmark = pytest.mark.usefixtures("one_thread")


class NoUnlearning(Unlearner):
    """Returns the model unchanged, so the un-pruner's own steps are all that act."""

    name = "test-none"

    def unlearn(self, model: nn.Module, task: UnlearnTask) -> nn.Module:
        return model


# --------------------------------------------------------------------------------------------
# A tiny real setting: digits, small-cnn width 8, dense model trained 4 epochs on 600 digits
# --------------------------------------------------------------------------------------------
@dataclass
class Setting:
    engine: Engine
    recipe: TrainRecipe
    new_model: Callable[[], nn.Module]
    dense: nn.Module
    rewind: dict[str, torch.Tensor]
    scope: frozenset[str]
    forget: ImageSplit
    retain: ImageSplit

    def prune_task(self, sparsity: float, data: ImageSplit | None = None) -> PruneTask:
        data = self.retain if data is None else data
        return PruneTask(
            sparsity, self.scope, data, self.engine, self.recipe, self.new_model, self.rewind, SEED
        )

    def unprune_task(
        self, pruner: Pruner, sparsity: float, unlearner: Unlearner | None = None
    ) -> UnpruneTask:
        pool = ImageSplit(
            torch.cat([self.forget.images, self.retain.images]),
            torch.cat([self.forget.labels, self.retain.labels]),
        )
        mask = pruner.make_mask(self.dense, self.prune_task(sparsity, pool))
        pruned = copy.deepcopy(self.dense)
        mask.apply_(pruned)
        return UnpruneTask(
            dense_model=copy.deepcopy(self.dense),
            pruned_model=pruned,
            mask=mask,
            pruner=pruner,
            retain_prune_task=self.prune_task(sparsity),
            unlearner=NoUnlearning() if unlearner is None else unlearner,
            unlearn_task=UnlearnTask(
                self.forget, self.retain, None, self.engine, self.recipe, self.new_model, 10, SEED
            ),
        )


@pytest.fixture(scope="module")
def setting() -> Setting:
    data = Digits().load(None, download=False)
    pool = limit_split(data.train, 600, SEED)
    engine = Engine("cpu", data.mean, data.std)
    recipe = TrainRecipe(epochs=4, batch_size=64, lr=0.05, schedule="cosine", augment=False, rewind_epoch=1)

    def new_model() -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(SEED)
            return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)

    dense = new_model()
    rewind: dict[str, torch.Tensor] = {}

    def keep_rewind(epoch: int, m: nn.Module) -> None:
        if epoch == recipe.rewind_epoch:
            rewind.update({k: v.detach().clone() for k, v in m.state_dict().items()})

    engine.fit(dense, pool, recipe, seed=SEED, on_epoch_end=keep_rewind)
    forget = torch.nonzero(pool.labels == 0).flatten()
    retain = torch.nonzero(pool.labels != 0).flatten()
    scope = scope_parameter_names(dense, "conv")
    return Setting(engine, recipe, new_model, dense, rewind, scope, pool.subset(forget), pool.subset(retain))


def value(metric, ctx):
    """The number a metric computes (without its details)."""
    return as_metric_value(metric.compute(ctx)).value


def details(metric, ctx):
    """The details a metric computes (empty when it returns no number)."""
    return dict(as_metric_value(metric.compute(ctx)).details)


def assert_pruned_zero(model: nn.Module, mask: Mask) -> None:
    params = dict(model.named_parameters())
    for name, keep in mask.tensors.items():
        assert int(params[name].detach()[~keep].ne(0).sum()) == 0, name


# --------------------------------------------------------------------------------------------
# reprune
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pruner", [SynFlow(SynFlow.Params(rounds=10)), Snip()], ids=["synflow", "snip"])
def test_reprune_scores_the_initialisation_for_prune_at_init_pruners(
    setting: Setting, pruner: Pruner
) -> None:
    task = setting.unprune_task(pruner, 0.8)
    outcome = RelaxUnlearnReprune(RelaxUnlearnReprune.Params(finetune_epochs=0)).unprune(task)
    on_init = pruner.make_mask(setting.new_model(), setting.prune_task(0.8))
    on_trained = pruner.make_mask(setting.dense, setting.prune_task(0.8))
    assert on_init.hamming(on_trained) > 0  # the check below can tell the two apart
    assert outcome.mask.hamming(on_init) == 0
    assert_pruned_zero(outcome.model, outcome.mask)


def test_reprune_rewind_relax_restarts_pruned_weights_at_the_rewind_point(setting: Setting) -> None:
    omp = OneShotMagnitude()
    task = setting.unprune_task(omp, 0.8)
    outcome = RelaxUnlearnReprune(RelaxUnlearnReprune.Params(relax="rewind", finetune_epochs=0)).unprune(task)
    # No unlearning, no fine-tuning: kept weights of the new mask that the old mask pruned carry
    # their rewind values, the others their trained values.
    weights = dict(outcome.model.named_parameters())
    trained = dict(setting.dense.named_parameters())
    revived = 0
    for name in sorted(setting.scope):
        new, old = outcome.mask.tensors[name], task.mask.tensors[name]
        came_back = new & ~old
        revived += int(came_back.sum())
        assert torch.equal(weights[name].detach()[came_back], setting.rewind[name][came_back])
        assert torch.equal(weights[name].detach()[new & old], trained[name].detach()[new & old])
    assert revived > 0
    no_rewind = copy.deepcopy(task)
    object.__setattr__(no_rewind.retain_prune_task, "rewind_state", None)
    with pytest.raises(InvalidValueError, match="rewind"):
        RelaxUnlearnReprune(RelaxUnlearnReprune.Params(relax="rewind")).unprune(no_rewind)


# --------------------------------------------------------------------------------------------
# control
# --------------------------------------------------------------------------------------------
def test_control_keeps_the_original_mask_and_fine_tunes(setting: Setting) -> None:
    task = setting.unprune_task(OneShotMagnitude(), 0.8, FineTune(FineTune.Params(epochs=1, lr=0.01)))
    outcome = KeepMaskControl(KeepMaskControl.Params(finetune_epochs=1)).unprune(task)
    assert outcome.mask.hamming(task.mask) == 0 and outcome.mask.scope == task.mask.scope
    before = dict(task.pruned_model.named_parameters())
    after = dict(outcome.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in setting.scope)
    assert_pruned_zero(outcome.model, task.mask)


# --------------------------------------------------------------------------------------------
# regrow
# --------------------------------------------------------------------------------------------
def test_drop_and_grow_swaps_the_lowest_kept_for_the_highest_pruned() -> None:
    mask = Mask({"a": torch.tensor([True, True, True, False, False, False])}, frozenset({"a"}))
    drop = {"a": torch.tensor([3.0, 1.0, 2.0, 0.0, 0.0, 0.0])}
    grow = {"a": torch.tensor([9.0, 9.0, 9.0, 0.1, 0.5, 0.3])}
    new = drop_and_grow(mask, drop, grow, 2)
    assert new.tensors["a"].tolist() == [True, False, False, False, True, True]
    assert new.kept() == mask.kept()


def test_regrow_keeps_the_sparsity_and_recovers_a_known_gold_mask(setting: Setting) -> None:
    """Gold: OMP on a model trained on D_r, fine-tuned under its mask. The sparse model regrow
    starts from lost the gold's tenth largest-magnitude kept weights, and keeps as many random
    pruned ones (at zero) instead: regrow must find lost gold weights far more often than chance."""
    sparsity = 0.8
    gold_model = setting.new_model()
    setting.engine.fit(gold_model, setting.retain, setting.recipe, seed=SEED)
    gold = OneShotMagnitude().make_mask(gold_model, setting.prune_task(sparsity))
    setting.engine.fit(gold_model, setting.retain, setting.recipe, seed=SEED, mask=gold)
    names = sorted(gold.scope)
    flat = torch.cat([gold.tensors[n].flatten() for n in names])
    params = dict(gold_model.named_parameters())
    magnitude = torch.cat([params[n].detach().abs().flatten() for n in names])
    swaps = int(flat.sum()) // 10
    free_at = torch.nonzero(~flat).flatten()
    corrupted = flat.clone()
    corrupted[torch.sort(magnitude.masked_fill(~flat, -1.0), descending=True).indices[:swaps]] = False
    generator = torch.Generator().manual_seed(1)
    corrupted[free_at[torch.randperm(len(free_at), generator=generator)[:swaps]]] = True

    def as_mask(entries: torch.Tensor) -> Mask:
        sizes = [gold.tensors[n].numel() for n in names]
        parts = torch.split(entries, sizes)
        return Mask({n: p.view(gold.tensors[n].shape) for n, p in zip(names, parts, strict=True)}, gold.scope)

    start_mask = as_mask(corrupted)
    sparse = copy.deepcopy(gold_model)
    start_mask.apply_(sparse)
    task = UnpruneTask(
        dense_model=nn.Identity(),  # regrow must not need the dense weights
        pruned_model=sparse,
        mask=start_mask,
        pruner=OneShotMagnitude(),
        retain_prune_task=setting.prune_task(sparsity),
        unlearner=NoUnlearning(),
        unlearn_task=UnlearnTask(
            setting.forget, setting.retain, None, setting.engine, setting.recipe, setting.new_model, 10, SEED
        ),
    )
    outcome = Regrow(Regrow.Params(rounds=1, drop_fraction=0.1)).unprune(task)
    assert outcome.mask.kept() == gold.kept() == start_mask.kept()
    assert_pruned_zero(outcome.model, outcome.mask)
    # Chance: the same drop, then random growth.
    params = dict(sparse.named_parameters())
    noise = {n: torch.rand(params[n].shape, generator=generator) for n in names}
    drop = {n: params[n].detach().abs() for n in names}
    chance = drop_and_grow(start_mask, drop, noise, round(0.1 * start_mask.kept()))
    before, after = start_mask.iou(gold), outcome.mask.iou(gold)
    assert after > chance.iou(gold) + 0.02 and after > before + 0.03


def test_regrow_refuses_structured_masks(setting: Setting) -> None:
    task = setting.unprune_task(L1Filter(), 0.5)
    with pytest.raises(InvalidValueError, match="structured"):
        Regrow().unprune(task)


# --------------------------------------------------------------------------------------------
# structured un-pruning
# --------------------------------------------------------------------------------------------
def assert_filter_structure(mask: Mask, original: Mask, model: nn.Module) -> None:
    """Same scope and kept filters per layer as ``original``; whole filters kept or removed; the
    BatchNorm channel follows its filter; pruned entries zero."""
    assert mask.scope == original.scope and set(mask.tensors) == set(original.tensors)
    for name in mask.scope:
        conv = mask.tensors[name].flatten(2)  # [out, in, k*k]
        kept_out, kept_in = conv.any(dim=2).any(dim=1), conv.any(dim=2).any(dim=0)
        whole = (kept_out[:, None] & kept_in[None, :])[:, :, None].expand_as(conv)
        assert torch.equal(conv, whole), f"{name} has a partly pruned filter or channel"
        assert int(mask.filter_kept(name).sum()) == int(original.filter_kept(name).sum())
        bn = name.replace(".weight", "").split(".")
        bn_weight = f"{int(bn[0]) + 1}.weight"
        assert torch.equal(mask.tensors[bn_weight], mask.filter_kept(name))
    assert mask.sparsity() == pytest.approx(original.sparsity())
    assert_pruned_zero(model, mask)


@pytest.mark.parametrize("score", ["pruner", "taylor"])
def test_filter_reprune_keeps_filter_structure_and_sparsity(setting: Setting, score: str) -> None:
    task = setting.unprune_task(L1Filter(), 0.5)
    outcome = FilterReprune(FilterReprune.Params(score=score, finetune_epochs=1)).unprune(task)
    assert_filter_structure(outcome.mask, task.mask, outcome.model)
    if score == "pruner":  # no unlearning: the L1 norms of the dense weights give the original
        assert outcome.mask.filter_iou(task.mask) == 1.0
    else:  # Taylor scores on D_r rank some filters differently
        assert outcome.mask.filter_iou(task.mask) < 1.0


def test_zero_relax_lets_removed_filters_come_back(setting: Setting) -> None:
    """With every parameter of a removed channel at zero no gradient reaches it; ``zero`` relax
    restarts them at their initial values, so dense training moves them and they can return."""
    task = setting.unprune_task(L1Filter(), 0.5)
    start = relaxed_start(task, "zero")
    init = dict(setting.new_model().named_parameters())
    params = dict(start.named_parameters())
    name = sorted(task.mask.scope)[0]
    removed = ~task.mask.filter_kept(name)
    assert bool(removed.any())
    assert torch.equal(params[name].detach()[removed], init[name].detach()[removed])
    before = params[name].detach()[removed].clone()
    FineTune(FineTune.Params(epochs=1, lr=0.01)).unlearn(start, task.unlearn_task)
    assert not torch.equal(dict(start.named_parameters())[name].detach()[removed], before)
    outcome = RelaxUnlearnReprune(RelaxUnlearnReprune.Params(relax="zero", finetune_epochs=0)).unprune(task)
    assert_filter_structure(outcome.mask, task.mask, outcome.model)


def test_filter_reprune_refuses_unstructured_pruners(setting: Setting) -> None:
    task = setting.unprune_task(OneShotMagnitude(), 0.8)
    with pytest.raises(InvalidValueError, match="structured"):
        FilterReprune().unprune(task)


# --------------------------------------------------------------------------------------------
# Gold metrics on hand-made masks, distributions and scores
# --------------------------------------------------------------------------------------------
class FixedOutput(nn.Module):
    """Returns the same logits for every input; ``a`` and ``b`` are maskable weights."""

    def __init__(
        self, logits: list[float], a: list[float] | None = None, b: list[float] | None = None
    ) -> None:
        super().__init__()
        self.out = nn.Parameter(torch.tensor(logits))
        self.a = nn.Parameter(torch.tensor(a or [0.0] * 4))
        self.b = nn.Parameter(torch.tensor(b or [0.0] * 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out.expand(x.shape[0], -1)


def masks(a: list[int], b: list[int]) -> Mask:
    return Mask({"a": torch.tensor(a).bool(), "b": torch.tensor(b).bool()}, frozenset({"a", "b"}))


def split(n: int) -> ImageSplit:
    return ImageSplit(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))


def context(
    model: nn.Module, mask: Mask | None, gold_model: nn.Module, gold: Mask | None, **kw: bool
) -> EvalContext:
    return EvalContext(
        model=model,
        mask=mask,
        splits={"forget": split(3), "retain": split(2), "test": split(0), "forget_test": split(0)},
        engine=Engine("cpu", (0.0,), (1.0,)),
        references={"gold": lambda: Reference(gold_model, gold)},
        runtime_s=None,
        forget_kind="random",
        **kw,
    )


def test_iou_iom_and_hamming_with_the_gold_mask() -> None:
    gold = masks([1, 1, 0, 0], [1, 0])
    mine = masks([1, 0, 1, 0], [1, 0])
    ctx = context(FixedOutput([0.0, 0.0]), mine, FixedOutput([0.0, 0.0]), gold)
    assert value(GoldIoU(), ctx) == pytest.approx(2 / 4)
    assert details(GoldIoU(), ctx) == pytest.approx({"a": 1 / 3, "b": 1.0})
    assert value(GoldIoM(), ctx) == pytest.approx(2 / 3)
    assert details(GoldIoM(), ctx) == pytest.approx({"a": 1 / 2, "b": 1.0})
    assert value(GoldHamming(), ctx) == 2.0
    assert details(GoldHamming(), ctx) == {"a": 2.0, "b": 0.0}
    # IoM = 1 - Hamming / 2k at equal kept counts k.
    assert value(GoldIoM(), ctx) == pytest.approx(1 - 2 / (2 * gold.kept()))
    assert value(GoldFilterIoU(), ctx) is None  # unstructured
    dense = context(FixedOutput([0.0, 0.0]), None, FixedOutput([0.0, 0.0]), gold)
    assert value(GoldIoU(), dense) is None and details(GoldHamming(), dense) == {}


def test_filter_iou_compares_kept_filters() -> None:
    gold = Mask({"w": torch.tensor([[1, 1], [0, 0], [1, 0]]).bool()}, frozenset({"w"}))
    mine = Mask({"w": torch.tensor([[0, 0], [1, 1], [1, 1]]).bool()}, frozenset({"w"}))
    ctx = context(FixedOutput([0.0]), mine, FixedOutput([0.0]), gold, structured=True)
    # kept filters: gold {0, 2}, mine {1, 2}: IoU 1/3.
    assert value(GoldFilterIoU(), ctx) == pytest.approx(1 / 3)
    assert details(GoldFilterIoU(), ctx) == pytest.approx({"w": 1 / 3})


def test_kl_to_the_gold_outputs() -> None:
    p, q = [0.5, 0.5], [0.25, 0.75]
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert mean_kl(torch.tensor([p]).log(), torch.tensor([q]).log()) == pytest.approx(expected)
    assert mean_kl(torch.tensor([p, p]).log(), torch.tensor([p, q]).log()) == pytest.approx(expected / 2)
    gold = masks([1, 0, 0, 0], [1, 0])
    ctx = context(
        FixedOutput(torch.tensor(q).log().tolist()), gold, FixedOutput(torch.tensor(p).log().tolist()), gold
    )
    assert value(GoldKLForget(), ctx) == pytest.approx(expected, rel=1e-5)
    assert value(GoldKLTest(), ctx) is None  # empty split
    same = context(FixedOutput([1.0, 2.0]), gold, FixedOutput([1.0, 2.0]), gold)
    assert value(GoldKLForget(), same) == pytest.approx(0.0, abs=1e-12)


def test_error_band_on_hand_made_scores() -> None:
    gold = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])
    kept = torch.tensor([True, True, True, False, False, False])
    # eps 0.5: |s - 3| <= 1 holds for 4, 3 and 2.
    shifted = gold + torch.tensor([0.0, -0.5, 0.3, 0.5, 0.0, -0.2])
    assert error_band(gold, shifted, kept) == (3, pytest.approx(0.5), 3.0)
    # eps 0: only the threshold weight itself.
    assert error_band(gold, gold, kept)[0] == 1
    # Through the metric: weights a (4) and b (2) of two sparse models; each mask keeps the
    # top 3 magnitudes of its own model, so every disagreement lies in the band.
    gold_model = FixedOutput([0.0], a=[5.0, -4.0, 3.0, 0.0], b=[0.0, 0.0])
    gold_mask = masks([1, 1, 1, 0], [0, 0])
    model = FixedOutput([0.0], a=[5.0, -3.2, 0.0, 0.0], b=[3.6, 0.0])
    mask = masks([1, 1, 0, 0], [1, 0])
    ctx = context(model, mask, gold_model, gold_mask)
    band = value(GoldErrorBand(), ctx)
    found = details(GoldErrorBand(), ctx)
    # eps = 3.6 (b[0]), tau = 3: |S - 3| <= 7.2 holds for all six weights.
    assert found["eps"] == pytest.approx(3.6) and found["tau"] == 3.0
    assert band == 6.0 and found["hamming"] == 2.0 <= band
    assert found["band:a"] + found["band:b"] == band
    # Over the weights both keep (a[0], a[1]): eps 0.8, |S - 3| <= 1.6 holds for 4 and 3.
    assert found["eps_shared"] == pytest.approx(0.8) and found["band_shared"] == 2.0
