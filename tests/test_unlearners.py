"""The unlearner roster on real data (scikit-learn digits, small-cnn on the CPU): each test checks
a property that fails when the method is implemented wrongly."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_unlearners import unlearnbench_register_unlearners
from unlearnbench_unlearners.boundary import BoundaryExpanding, boundary_labels
from unlearnbench_unlearners.fisher import FisherForgetting, fisher_diagonal
from unlearnbench_unlearners.influence import InfluenceUnlearning
from unlearnbench_unlearners.neggrad import NegGradPlus
from unlearnbench_unlearners.noop import NoOp
from unlearnbench_unlearners.per_sample import (
    hooks_apply,
    per_sample_grads,
    per_sample_grads_hooks,
    per_sample_grads_loop,
    per_sample_grads_vmap,
)
from unlearnbench_unlearners.random_label import RandomLabel
from unlearnbench_unlearners.retrain import Retrain
from unlearnbench_unlearners.salun import SalUn
from unlearnbench_unlearners.scrub import Scrub, distill_kl

from unlearnbench.config.protocol import ForgetSpec
from unlearnbench.data.forget import draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.registry.components import PruneTask, UnlearnTask
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import scope_parameter_names

SEED = 0
PerSample = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
FAST = {"epochs": 2, "batch_size": 64}


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class World:
    engine: Engine
    recipe: TrainRecipe
    model: nn.Module
    mask: Mask
    pruned: nn.Module
    forget: ImageSplit
    retain: ImageSplit

    def task(self, mask: Mask | None = None, start: nn.Module | None = None, **kw: object) -> UnlearnTask:
        start = self.model if start is None else start
        return UnlearnTask(
            forget=self.forget,
            retain=self.retain,
            mask=mask,
            engine=self.engine,
            recipe=self.recipe,
            new_model=new_model,
            num_classes=10,
            seed=SEED,
            original=lambda: copy.deepcopy(start),
            **kw,  # type: ignore[arg-type]
        )

    def class_task(self) -> UnlearnTask:
        """Class-wise forgetting of class 0 over the same pool."""
        images = torch.cat([self.forget.images, self.retain.images])
        labels = torch.cat([self.forget.labels, self.retain.labels])
        pool = ImageSplit(images, labels)
        return dataclasses.replace(
            self.task(),
            forget=pool.subset(torch.nonzero(labels == 0).flatten()),
            retain=pool.subset(torch.nonzero(labels != 0).flatten()),
            forget_kind="class",
            forgotten_classes=(0,),
        )


def new_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)


@pytest.fixture(scope="module")
def world() -> World:
    data = Digits().load(None, download=False)
    pool = limit_split(data.train, 600, SEED)
    engine = Engine("cpu", data.mean, data.std)
    recipe = TrainRecipe(epochs=8, batch_size=64, lr=0.05, schedule="cosine", augment=False, milestones=())
    model = new_model()
    engine.fit(model, pool, recipe, seed=SEED)
    scope = scope_parameter_names(model, "conv")
    omp = OneShotMagnitude(OneShotMagnitude.Params(rewind=False, retrain=False))
    outcome = omp.prune(
        copy.deepcopy(model), PruneTask(0.8, scope, pool, engine, recipe, new_model, None, SEED)
    )
    forget_set = draw_forget_set(ForgetSpec("random10", "random", fraction=0.1, seed=SEED), pool, 10)
    return World(
        engine,
        recipe,
        model,
        outcome.mask,
        outcome.model,
        pool.subset(forget_set.indices),
        pool.subset(retain_indices(len(pool), forget_set)),
    )


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def ce(world: World, model: nn.Module, split: ImageSplit) -> float:
    return float(F.cross_entropy(world.engine.logits(model, split), split.labels))


# --------------------------------------------------------------------------------------------
# RL and SalUn
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "method", [RandomLabel(RandomLabel.Params(**FAST, lr=0.05)), SalUn(SalUn.Params(**FAST, lr=0.05))]
)
def test_rl_and_salun_lower_the_forget_accuracy(world: World, method: RandomLabel | SalUn) -> None:
    task = world.class_task()
    before = world.engine.accuracy(world.model, task.forget)
    out = method.unlearn(copy.deepcopy(world.model), task)
    assert world.engine.accuracy(out, task.forget) < before - 10


def test_salun_changes_no_weight_outside_its_saliency_mask(world: World) -> None:
    method = SalUn(SalUn.Params(**FAST))
    start = copy.deepcopy(world.model)
    salient = method.saliency_mask(copy.deepcopy(start), world.task())
    kept = sum(int(s.sum()) for s in salient.values())
    assert kept == round(0.5 * sum(s.numel() for s in salient.values()))
    before = weights(start)
    after = weights(method.unlearn(start, world.task()))
    for name, keep in salient.items():
        assert torch.equal(after[name][~keep], before[name][~keep]), name
    assert any(not torch.equal(after[n][k], before[n][k]) for n, k in salient.items())
    # The published pre-fix behaviour lets weight decay and momentum move non-salient weights.
    leaky = weights(
        SalUn(SalUn.Params(**FAST, pre_fix=True)).unlearn(copy.deepcopy(world.model), world.task())
    )
    assert any(not torch.equal(leaky[n][~k], before[n][~k]) for n, k in salient.items())


# --------------------------------------------------------------------------------------------
# FF
# --------------------------------------------------------------------------------------------
def test_ff_perturbs_less_where_the_fisher_is_large(world: World) -> None:
    method = FisherForgetting(FisherForgetting.Params(alpha=1e-6))
    model = copy.deepcopy(world.model)
    fisher = fisher_diagonal(model, world.engine, world.retain, 32)
    variance = method.variance(model, fisher, world.task())
    name = "1.weight"  # a BatchNorm weight: per-entry variance, no averaging over a dimension
    f = fisher[name]
    assert float(f.max()) > 2 * float(f.min()) >= 0
    draws = []
    for i in range(200):
        copy_ = copy.deepcopy(model)
        method.perturb(copy_, variance, world.task(), torch.Generator().manual_seed(i))
        draws.append(
            dict(copy_.named_parameters())[name].detach() - dict(model.named_parameters())[name].detach()
        )
    spread = torch.stack(draws).std(dim=0)
    assert float(spread[f.argmax()]) < float(spread[f.argmin()])
    order = torch.argsort(f)
    assert torch.all(variance[name][order][1:] <= variance[name][order][:-1])


# --------------------------------------------------------------------------------------------
# IU
# --------------------------------------------------------------------------------------------
def assert_equals_the_loop(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batched: torch.Tensor) -> None:
    looped = per_sample_grads_loop(model, x, y)
    assert batched.shape == looped.shape == (len(x), sum(p.numel() for p in model.parameters()))
    assert float(looped.abs().max()) > 1e-2
    assert float((batched - looped).abs().max()) <= 1e-10


def digits64(world: World, n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = next(world.engine.batches(world.retain, n, None, shuffle=False))
    return x.double(), y  # float64: kernel rounding differences vanish


def with_running_stats(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, then eval mode."""
    with torch.no_grad():
        model.train()(x)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


@pytest.mark.parametrize("method", [per_sample_grads_vmap, per_sample_grads_hooks])
def test_iu_batched_per_sample_grads_equal_a_batch_size_one_loop(world: World, method: PerSample) -> None:
    model = copy.deepcopy(world.model).eval().double()
    x, y = digits64(world)
    assert hooks_apply(model)
    assert_equals_the_loop(model, x, y, method(model, x, y))


def test_iu_hook_path_handles_strided_padded_dilated_convs_with_bias(world: World) -> None:
    torch.manual_seed(SEED)
    x, y = digits64(world)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, stride=2, padding=1),  # 8x8 -> 4x4
        nn.BatchNorm2d(4),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 6, (3, 2), stride=(1, 2), padding=(2, 0), dilation=(2, 1)),  # 4x4 -> 4x2
        nn.ReLU(),
        nn.Flatten(),
        nn.BatchNorm1d(48),
        nn.Linear(48, 10),
    ).double()
    model = with_running_stats(model, x)
    assert hooks_apply(model)
    assert_equals_the_loop(model, x, y, per_sample_grads_hooks(model, x, y))


class Twice(nn.Module):
    """One Linear applied twice: its parameters are shared between two calls."""

    def __init__(self) -> None:
        super().__init__()
        self.flat, self.inner, self.head = nn.Flatten(), nn.Linear(64, 64), nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.inner(torch.tanh(self.inner(self.flat(x))))))


def grouped_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, groups=2),  # unsupported: grouped
        nn.Flatten(),
        nn.Linear(144, 10),
    )


@pytest.mark.parametrize("build", [grouped_cnn, Twice])
def test_iu_per_sample_grads_fall_back_to_vmap_where_hooks_do_not_apply(
    world: World, build: Callable[[], nn.Module]
) -> None:
    torch.manual_seed(SEED)
    model = build().double().eval()
    x, y = digits64(world)
    with pytest.raises(ValueError, match="per_sample_grads_hooks"):
        per_sample_grads_hooks(model, x, y)
    assert_equals_the_loop(model, x, y, per_sample_grads(model, x, y))


def test_iu_moves_a_convex_model_toward_the_retrained_optimum(world: World) -> None:
    engine = world.engine

    def fit_logistic(split: ImageSplit) -> nn.Module:
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        x, y = next(engine.batches(split, len(split), None, shuffle=False))
        opt = torch.optim.LBFGS(model.parameters(), max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12)

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y) + 1e-2 * sum(p.pow(2).sum() for p in model.parameters())
            loss.backward()
            return loss

        opt.step(closure)
        return model

    full = ImageSplit(
        torch.cat([world.forget.images, world.retain.images]),
        torch.cat([world.forget.labels, world.retain.labels]),
    )
    original, retrained = fit_logistic(full), fit_logistic(world.retain)

    def distance(model: nn.Module) -> float:
        return float(
            sum(
                (a - b).detach().pow(2).sum()
                for a, b in zip(model.parameters(), retrained.parameters(), strict=True)
            )
        )

    task = dataclasses.replace(world.task(), num_classes=10)
    unlearned = InfluenceUnlearning(InfluenceUnlearning.Params(alpha=1.0)).unlearn(
        copy.deepcopy(original), task
    )
    assert distance(unlearned) < distance(original)


# --------------------------------------------------------------------------------------------
# BS, BE
# --------------------------------------------------------------------------------------------
def test_bs_relabels_every_forget_example_to_a_wrong_class(world: World) -> None:
    x, y = next(world.engine.batches(world.forget, len(world.forget), None, shuffle=False))
    labels = boundary_labels(copy.deepcopy(world.model), world.engine, x, y, 0.1)
    assert labels.shape == y.shape
    assert not bool((labels == y).any())


def test_be_returns_a_model_with_k_outputs(world: World) -> None:
    start = copy.deepcopy(world.model)
    shapes = {n: p.shape for n, p in start.named_parameters()}
    out = BoundaryExpanding(BoundaryExpanding.Params(**FAST)).unlearn(start, world.task())
    assert world.engine.logits(out, world.forget).shape == (len(world.forget), 10)
    assert {n: p.shape for n, p in out.named_parameters()} == shapes
    head = "12.weight"  # the classifier: trained through its widened copy
    assert not torch.equal(dict(out.named_parameters())[head], dict(world.model.named_parameters())[head])


# --------------------------------------------------------------------------------------------
# SCRUB, NegGrad+, no-op
# --------------------------------------------------------------------------------------------
def test_scrub_moves_away_from_the_teacher_on_the_forget_set_only(world: World) -> None:
    task = world.class_task()
    params = Scrub.Params(lr=0.005, forget_batch_size=16, batch_size=64)
    out = Scrub(params).unlearn(copy.deepcopy(world.model), task)
    teacher = world.model

    def kl(split: ImageSplit) -> float:
        return float(distill_kl(world.engine.logits(out, split), world.engine.logits(teacher, split), 1.0))

    assert kl(task.forget) > 0.5
    assert kl(task.retain) < 0.3
    assert kl(task.forget) > 5 * kl(task.retain)
    names = {e.name for e in task.log.entries}
    assert names == {"kl_forget", "kl_retain"}
    assert [e.epoch for e in task.log.entries if e.name == "kl_forget"] == [1, 2]


def test_neggrad_plus_raises_the_forget_loss_and_keeps_retain_accuracy(world: World) -> None:
    task = world.task()
    out = NegGradPlus(NegGradPlus.Params(epochs=3, alpha=0.95)).unlearn(copy.deepcopy(world.model), task)
    assert ce(world, out, world.forget) > ce(world, world.model, world.forget)
    assert world.engine.accuracy(out, world.retain) >= world.engine.accuracy(world.model, world.retain) - 5.0
    assert [e.epoch for e in task.log.entries] == [1, 2, 3]


def test_noop_leaves_the_weights_bitwise_identical(world: World) -> None:
    start = copy.deepcopy(world.model)
    out = NoOp().unlearn(start, world.task())
    assert all(
        torch.equal(a, b)
        for a, b in zip(out.state_dict().values(), world.model.state_dict().values(), strict=True)
    )


# --------------------------------------------------------------------------------------------
# Every registered unlearner under a mask
# --------------------------------------------------------------------------------------------
SHORT = {"epochs": 1, "batch_size": 64, "forget_batch_size": 32, "samples": 64, "noise_copies": 4}


@pytest.mark.parametrize("cls", unlearnbench_register_unlearners(), ids=lambda c: c.name)
def test_every_unlearner_keeps_pruned_weights_exactly_zero(world: World, cls: type) -> None:
    fields = {f.name for f in dataclasses.fields(cls.Params)}
    params = cls.Params(**{k: v for k, v in SHORT.items() if k in fields})
    out = cls(params).unlearn(copy.deepcopy(world.pruned), world.task(world.mask, start=world.pruned))
    found = dict(out.named_parameters())
    for name, keep in world.mask.tensors.items():
        assert int((found[name].detach()[~keep] != 0).sum()) == 0, f"{cls.name}: {name}"
    assert all(torch.isfinite(p).all() for p in out.parameters())


# --------------------------------------------------------------------------------------------
# Retrain
# --------------------------------------------------------------------------------------------
def test_retrain_with_the_protocol_recipe_is_the_protocols_training_on_the_retain_set(world: World) -> None:
    recipe = dataclasses.replace(world.recipe, epochs=2)
    task = dataclasses.replace(world.task(world.mask), recipe=recipe)
    expected = world.engine.prepare(new_model())
    world.engine.fit(expected, world.retain, recipe, seed=SEED, mask=world.mask)
    same = Retrain(Retrain.Params(protocol_recipe=True)).unlearn(world.pruned, task)
    own = Retrain(Retrain.Params(epochs=2, lr=0.01)).unlearn(world.pruned, task)
    for name, value in weights(expected).items():
        assert torch.equal(weights(same)[name], value), name
    assert any(not torch.equal(weights(own)[n], v) for n, v in weights(expected).items())
    assert sum(world.mask.violations(same).values()) == 0
