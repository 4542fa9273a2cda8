"""The roster past the anchors (SSD, LFSSD, ASSD, bad teacher, UNSIR, JiT, SCAR, CF-k, EU-k,
amnesiac) on real data (scikit-learn digits, small-cnn on the CPU), and the unchanged-row flag.
Each test checks the method's core step against an independent computation or a property that
fails when that step is wrong."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_unlearners.amnesiac import Amnesiac, wrong_labels
from unlearnbench_unlearners.bad_teacher import BadTeacher, bad_teacher_loss
from unlearnbench_unlearners.jit import JiT, lipschitz_ratio
from unlearnbench_unlearners.last_layers import (
    CatastrophicForgettingK,
    ExactUnlearningK,
    last_k,
    weight_layers,
)
from unlearnbench_unlearners.scar import Scar, embed, mahalanobis
from unlearnbench_unlearners.ssd import (
    AdaptiveSSD,
    LossFreeSSD,
    SelectiveSynapticDampening,
    adaptive_percentile,
    importances,
)
from unlearnbench_unlearners.unsir import Unsir, noise_loss

from unlearnbench.config.protocol import ForgetSpec, load_protocol
from unlearnbench.data.forget import draw_forget_set, retain_indices
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.components import PruneTask, UnlearnTask
from unlearnbench.registry.host import ONLY_PLUGINS_ENV, create_host
from unlearnbench.report.leaderboard import render
from unlearnbench.report.record import ResultRecord
from unlearnbench.run.pipeline import Pipeline, RunSettings
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import scope_parameter_names

SEED = 0
pytestmark = pytest.mark.usefixtures("one_thread")


def new_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)


@dataclass
class World:
    engine: Engine
    model: nn.Module
    mask: Mask
    pruned: nn.Module
    forget: ImageSplit
    retain: ImageSplit
    recipe: TrainRecipe

    def task(self, mask: Mask | None = None, start: nn.Module | None = None) -> UnlearnTask:
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
        )

    def class_task(self) -> UnlearnTask:
        pool = ImageSplit(
            torch.cat([self.forget.images, self.retain.images]),
            torch.cat([self.forget.labels, self.retain.labels]),
        )
        return dataclasses.replace(
            self.task(),
            forget=pool.subset(torch.nonzero(pool.labels == 0).flatten()),
            retain=pool.subset(torch.nonzero(pool.labels != 0).flatten()),
            forget_kind="class",
            forgotten_classes=(0,),
        )


@pytest.fixture(scope="module")
def world() -> World:
    data = Digits().load(None, download=False)
    pool = limit_split(data.train, 500, SEED)
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
        model,
        outcome.mask,
        outcome.model,
        pool.subset(forget_set.indices),
        pool.subset(retain_indices(len(pool), forget_set)),
        recipe,
    )


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone() for n, t in model.state_dict().items()}


# --------------------------------------------------------------------------------------------
# SSD, LFSSD, ASSD
# --------------------------------------------------------------------------------------------
def reference_importance(
    model: nn.Module, engine: Engine, split: ImageSplit, batch: int, label_free: bool
) -> dict[str, torch.Tensor]:
    """An independent calc_importance: zero_grad, backward, accumulate, divide by the batches."""
    model.eval()
    total = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    count = 0
    for x, y in engine.batches(split, batch, None, shuffle=False):
        model.zero_grad()
        out = model(x)
        loss = torch.norm(out, p="fro", dim=1).pow(2).mean() if label_free else nn.CrossEntropyLoss()(out, y)
        loss.backward()
        for n, p in model.named_parameters():
            total[n] += p.grad.abs() if label_free else p.grad.pow(2)
        count += 1
    model.zero_grad()
    return {n: t / count for n, t in total.items()}


def full_data(world: World) -> ImageSplit:
    return ImageSplit(
        torch.cat([world.retain.images, world.forget.images]),
        torch.cat([world.retain.labels, world.forget.labels]),
    )


@pytest.mark.parametrize("alpha, lam", [(2.0, 0.5), (2.0, 5.0)], ids=["damped", "bounded-by-1"])
@pytest.mark.parametrize("cls", [SelectiveSynapticDampening, LossFreeSSD], ids=["ssd", "lfssd"])
def test_ssd_dampens_exactly_the_selected_parameters_by_the_stated_factor(
    world: World, cls: type, alpha: float, lam: float
) -> None:
    label_free = cls is LossFreeSSD
    start = copy.deepcopy(world.model)
    i_f = reference_importance(copy.deepcopy(start), world.engine, world.forget, 128, label_free)
    i_d = reference_importance(copy.deepcopy(start), world.engine, full_data(world), 128, label_free)
    before = weights(start)
    task = world.task()
    out = cls(cls.Params(alpha=alpha, dampening=lam)).unlearn(start, task)
    after = weights(out)
    selected_total, bounded = 0, 0
    for n, p in before.items():
        selected = i_f[n] > alpha * i_d[n]
        selected_total += int(selected.sum())
        factor = torch.clamp(lam * i_d[n] / i_f[n], max=1.0)
        bounded += int((factor[selected] == 1.0).sum())
        assert torch.equal(after[n][~selected], p[~selected]), n
        torch.testing.assert_close(after[n][selected], p[selected] * factor[selected], rtol=1e-4, atol=1e-7)
    assert 0 < selected_total < sum(p.numel() for p in before.values())
    # lambda > alpha: some selected entries have lambda I_D / I_Df > 1 and are bounded to 1.
    assert (bounded > 0) == (lam > alpha)
    logged = {e.name: e.value for e in task.log.entries}
    assert logged["dampened"] == selected_total


def test_lfssd_reads_no_labels(world: World) -> None:
    shuffled = dataclasses.replace(
        world.task(), forget=ImageSplit(world.forget.images, torch.zeros_like(world.forget.labels))
    )
    a = LossFreeSSD(LossFreeSSD.Params(alpha=2.0)).unlearn(copy.deepcopy(world.model), world.task())
    b = LossFreeSSD(LossFreeSSD.Params(alpha=2.0)).unlearn(copy.deepcopy(world.model), shuffled)
    assert all(torch.equal(x, y) for x, y in zip(weights(a).values(), weights(b).values(), strict=True))
    # ... while SSD's importance does depend on them.
    i_true = importances(world.model, world.engine, world.forget, 128)
    i_zero = importances(world.model, world.engine, shuffled.forget, 128)
    assert any(not torch.equal(i_true[n], i_zero[n]) for n in i_true)


def test_ssd_that_selects_nothing_returns_the_model_unchanged_and_says_so(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    start = copy.deepcopy(world.model)
    task = world.task()
    with caplog.at_level(logging.WARNING):
        out = SelectiveSynapticDampening(SelectiveSynapticDampening.Params(alpha=1e12)).unlearn(start, task)
    assert all(
        torch.equal(a, b) for a, b in zip(state(out).values(), state(world.model).values(), strict=True)
    )
    assert {e.name: e.value for e in task.log.entries}["dampened"] == 0
    assert "selected no parameter" in caplog.text


def test_ssd_never_selects_a_pruned_weight_and_keeps_it_zero(world: World) -> None:
    task = world.task(world.mask, start=world.pruned)
    out = SelectiveSynapticDampening(SelectiveSynapticDampening.Params(alpha=0.0)).unlearn(
        copy.deepcopy(world.pruned), task
    )
    kept = world.mask.kept(frozenset(world.mask.tensors))
    others = sum(p.numel() for n, p in world.pruned.named_parameters() if n not in world.mask.tensors)
    # alpha 0 selects every entry with a nonzero forget importance: never more than the kept ones.
    assert 0 < {e.name: e.value for e in task.log.entries}["dampened"] <= kept + others
    assert world.mask.violations(out) == {}


def test_assd_selects_above_the_length_based_percentile_of_the_importance_ratios(world: World) -> None:
    start = copy.deepcopy(world.model)
    i_f = reference_importance(copy.deepcopy(start), world.engine, world.forget, 128, False)
    i_r = reference_importance(copy.deepcopy(start), world.engine, world.retain, 128, False)
    ratios = torch.cat([(i_f[n] / i_r[n]).reshape(-1) for n in i_f])
    ratios = ratios[torch.isfinite(ratios)].double().numpy()
    p = 100 - math.log(1 + 100 * len(world.forget) / (len(world.forget) + len(world.retain)))
    assert adaptive_percentile(len(world.forget), len(world.forget) + len(world.retain)) == pytest.approx(p)
    alpha = float(np.percentile(ratios, p))
    task = world.task()
    before = weights(start)
    after = weights(AdaptiveSSD().unlearn(start, task))
    expected = 0
    for n, w in before.items():
        selected = i_f[n] > alpha * i_r[n]
        expected += int(selected.sum())
        assert torch.equal(after[n][~selected], w[~selected]), n
        factor = torch.clamp(0.1 * i_r[n] / i_f[n], max=1.0)
        torch.testing.assert_close(after[n][selected], w[selected] * factor[selected], rtol=1e-4, atol=1e-7)
    dampened = {e.name: e.value for e in task.log.entries}["dampened"]
    assert dampened == expected
    # About (100 - p)% of the finite ratios lie above the percentile.
    assert 0 < dampened <= math.ceil(len(ratios) * (100 - p) / 100) + 1


# --------------------------------------------------------------------------------------------
# Bad teacher
# --------------------------------------------------------------------------------------------
def test_bad_teacher_loss_picks_the_teacher_by_the_flag() -> None:
    torch.manual_seed(0)
    student, good, bad = torch.randn(3, 6, 5).unbind(0)
    flags = torch.tensor([1, 0, 1, 0, 0, 1])
    target = torch.where(flags[:, None] == 1, F.softmax(bad, 1), F.softmax(good, 1))
    expected = F.kl_div(F.log_softmax(student, 1), target, reduction="sum") / student.numel()
    torch.testing.assert_close(bad_teacher_loss(student, flags, good, bad, 1.0), expected)


def kl_to(engine: Engine, model: nn.Module, teacher: nn.Module, split: ImageSplit) -> float:
    s, t = engine.logits(model, split), engine.logits(teacher, split)
    return float(F.kl_div(F.log_softmax(s, 1), F.softmax(t, 1), reduction="batchmean"))


def test_bad_teacher_moves_forget_outputs_towards_the_incompetent_teacher(world: World) -> None:
    engine, start = world.engine, copy.deepcopy(world.model)
    incompetent = new_model().eval()
    before_forget = kl_to(engine, start, incompetent, world.forget)
    out = BadTeacher(BadTeacher.Params(epochs=3, lr=1e-3, batch_size=64)).unlearn(start, world.task())
    after_forget = kl_to(engine, out, incompetent, world.forget)
    assert after_forget < 0.75 * before_forget
    # On retain data the student stays close to the competent teacher (much closer than to the bad one).
    assert kl_to(engine, out, world.model, world.retain) < kl_to(engine, out, incompetent, world.retain)


# --------------------------------------------------------------------------------------------
# UNSIR
# --------------------------------------------------------------------------------------------
def test_unsir_noise_raises_the_forget_class_loss(world: World) -> None:
    task = world.class_task()
    method = Unsir()
    trained = method.noise(copy.deepcopy(world.model), task, 0, world.engine.generator(SEED))
    shape = trained.shape
    start = torch.randn(shape, generator=world.engine.generator(SEED))
    model = copy.deepcopy(world.model).eval()
    target = torch.zeros(shape[0], dtype=torch.long)
    with torch.no_grad():
        assert F.cross_entropy(model(trained), target) > F.cross_entropy(model(start), target) + 1.0
        # The objective it minimised went down, l2 penalty included.
        assert noise_loss(model, trained, 0, 0.1) < noise_loss(model, start, 0, 0.1)
    # Training the noise leaves the model's weights and buffers alone.
    assert all(
        torch.equal(a, b) for a, b in zip(state(model).values(), state(world.model).values(), strict=True)
    )


def test_unsir_lowers_the_forget_class_accuracy(world: World) -> None:
    task = world.class_task()
    before = world.engine.accuracy(world.model, task.forget)
    method = Unsir(Unsir.Params(lr=1e-3))
    out = method.unlearn(copy.deepcopy(world.model), task)
    assert world.engine.accuracy(out, task.forget) < before - 30
    assert world.engine.accuracy(out, task.retain) > 50


# --------------------------------------------------------------------------------------------
# JiT
# --------------------------------------------------------------------------------------------
def mean_ratio(model: nn.Module, engine: Engine, split: ImageSplit, sigma: float) -> float:
    model.eval()
    g = torch.Generator().manual_seed(123)
    ratios = []
    with torch.no_grad():
        for x, _ in engine.batches(split, 256, None, shuffle=False):
            for _ in range(10):
                x2 = torch.clamp(x + sigma * torch.randn(x.shape, generator=g), x.min(), x.max())
                ratios.append(lipschitz_ratio(model(x), model(x2), x, x2))
    return float(torch.cat(ratios).mean())


def test_jit_lowers_the_lipschitz_ratio_on_forget_samples(world: World) -> None:
    engine = world.engine
    before = mean_ratio(world.model, engine, world.forget, 0.1)
    out = JiT(JiT.Params(lr=1e-3, epochs=3)).unlearn(copy.deepcopy(world.model), world.task())
    assert mean_ratio(out, engine, world.forget, 0.1) < 0.8 * before
    # The BatchNorm statistics were not touched (eval mode).
    bn = [k for k in world.model.state_dict() if "running" in k]
    assert all(torch.equal(out.state_dict()[k], world.model.state_dict()[k]) for k in bn)


# --------------------------------------------------------------------------------------------
# SCAR
# --------------------------------------------------------------------------------------------
def test_scar_pulls_forget_embeddings_to_another_class(world: World) -> None:
    # The push alone (no distillation), so that the test sees the Mahalanobis step.
    method = Scar(Scar.Params(batch_size=64, forget_batch_size=64, lr=0.05, epochs=2, distill_weight=0.0))
    task = world.task()
    classes, means, invs, assigned = method.targets(copy.deepcopy(world.model), task)
    assert classes == list(range(10))
    assert not bool((torch.tensor(classes)[assigned] == world.forget.labels).any())

    def distance(model: nn.Module) -> float:
        model.eval()
        head = model[-1]
        with torch.no_grad():
            x = next(world.engine.batches(world.forget, 1000, None, shuffle=False))[0]
            d = mahalanobis(embed(model, head, x)[0], means, invs, 0.5)
        return float(d.gather(1, assigned[:, None]).mean())

    before = distance(world.model)
    out = method.unlearn(copy.deepcopy(world.model), task)
    assert distance(out) < 0.8 * before
    assert world.engine.accuracy(out, world.forget) < world.engine.accuracy(world.model, world.forget) - 10
    # With the distillation (the default weight) the retain accuracy stays up.
    kept = Scar(Scar.Params(batch_size=64, forget_batch_size=64, lr=0.05)).unlearn(
        copy.deepcopy(world.model), task
    )
    assert world.engine.accuracy(kept, world.retain) > 85


# --------------------------------------------------------------------------------------------
# CF-k and EU-k
# --------------------------------------------------------------------------------------------
def test_weight_layers_group_batch_norm_with_the_layer_before() -> None:
    layers = weight_layers(new_model())
    assert layers == [["0", "1"], ["3", "4"], ["7", "8"], ["12"]]
    assert last_k(new_model(), 2) == ["7", "8", "12"]


def changed_modules(a: nn.Module, b: nn.Module) -> set[str]:
    sa, sb = a.state_dict(), b.state_dict()
    return {k.rsplit(".", 1)[0] for k in sa if not torch.equal(sa[k], sb[k])}


def test_cf_k_changes_only_the_last_k_layers(world: World) -> None:
    out = CatastrophicForgettingK(CatastrophicForgettingK.Params(k=2, epochs=2, batch_size=64)).unlearn(
        copy.deepcopy(world.model), world.task()
    )
    changed = changed_modules(out, world.model)
    assert changed and changed <= {"7", "8", "12"}
    assert "12" in changed and "7" in changed
    assert all(p.requires_grad for p in out.parameters())


def test_eu_k_reinitialises_the_last_k_layers(world: World) -> None:
    fresh = new_model().state_dict()
    task = world.task(world.mask, start=world.pruned)
    out = ExactUnlearningK(ExactUnlearningK.Params(k=2, epochs=0)).unlearn(copy.deepcopy(world.pruned), task)
    got, old = out.state_dict(), world.pruned.state_dict()
    for key in got:
        module = key.rsplit(".", 1)[0]
        if module in {"7", "8", "12"}:
            expected = fresh[key]
            if key in world.mask.tensors:
                expected = expected.masked_fill(~world.mask.tensors[key], 0.0)
            assert torch.equal(got[key], expected), key
        else:
            assert torch.equal(got[key], old[key]), key
    # With training, the re-initialised layers learn again and the others stay.
    trained = ExactUnlearningK(ExactUnlearningK.Params(k=2, epochs=3, batch_size=64)).unlearn(
        copy.deepcopy(world.pruned), world.task(world.mask, start=world.pruned)
    )
    assert changed_modules(trained, world.pruned) <= {"7", "8", "12"}
    assert world.engine.accuracy(trained, world.retain) > 50


# --------------------------------------------------------------------------------------------
# Amnesiac
# --------------------------------------------------------------------------------------------
def test_amnesiac_labels_are_always_wrong_and_cover_the_other_classes() -> None:
    labels = torch.arange(10).repeat(200)
    drawn = wrong_labels(labels, 10, torch.Generator().manual_seed(0))
    assert not bool((drawn == labels).any())
    assert all(set(drawn[labels == c].tolist()) == set(range(10)) - {c} for c in range(10))


def test_amnesiac_lowers_the_forget_accuracy(world: World) -> None:
    task = world.class_task()
    before = world.engine.accuracy(world.model, task.forget)
    out = Amnesiac(Amnesiac.Params(lr=1e-3, batch_size=64)).unlearn(copy.deepcopy(world.model), task)
    assert world.engine.accuracy(out, task.forget) < before - 30
    assert world.engine.accuracy(out, task.retain) > 80


# --------------------------------------------------------------------------------------------
# A row whose unlearner returned its start model is flagged (noop exempt)
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unchanged_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ONLY_PLUGINS_ENV, raising=False)
        registry = Registry(create_host(autoload=True))
    overrides = [
        ("data.limit", 300),
        ("train.epochs", 2),
        ("unlearn.unlearners", ["noop", "ssd", "ft"]),
        ("unlearn.params.ssd.alpha", 1e12),
        ("unlearn.params.ft.epochs", 1),
        ("unprune.modes", [False]),
        ("evaluate.metrics", ["ra"]),
    ]
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    out = tmp_path_factory.mktemp("unchanged")
    return out, list(Pipeline(protocol, registry, RunSettings(out=out, device="cpu")).run())


def test_a_row_whose_unlearner_returned_its_input_is_flagged(unchanged_run: tuple[Path, list[dict]]) -> None:
    _, records = unchanged_run
    by = {}
    for r in records:
        by.setdefault(r["unlearner"], []).append(r)
    assert all(r["status"] == "ok" for r in records)
    assert all(r["unchanged"] is True for r in by["ssd"])
    assert all(r["unchanged"] is False for r in by["noop"] + by["ft"])
    table = render(records)
    assert "ssd ‡" in table and "noop ‡" not in table and "ft ‡" not in table
    assert "‡ ssd: returned its start model unchanged in 1 of 1 rows." in table


def test_records_without_the_unchanged_field_still_load(unchanged_run: tuple[Path, list[dict]]) -> None:
    _, records = unchanged_run
    old = {k: v for k, v in records[0].items() if k != "unchanged"}
    assert ResultRecord.from_dict(old).unchanged is False
    assert "‡" not in render([old])
