"""Metrics as the paper computes them, on real tiny data (digits, a small CNN): MIA-Efficacy's
shadow members do not depend on storage order, evaluation runs in fp32 whatever the training
precision, Gap is |difference of seed means|, the best-validation checkpoint is kept on request,
and rewinding pruners advance the LR schedule by the rewind epoch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from test_leaderboard import record as leaderboard_record
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_metrics.mia import MIAEfficacy, seeded_draw
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners.omp import OneShotMagnitude

from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.registry.components import PruneTask
from unlearnbench.report.leaderboard import render
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.pruning import scope_parameter_names

RECIPE = TrainRecipe(epochs=3, batch_size=64, lr=0.05, schedule="cosine", augment=False, rewind_epoch=1)


pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass
class Setting:
    engine: Engine
    train: ImageSplit
    test: ImageSplit
    model: nn.Module


def new_model() -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)


@pytest.fixture(scope="module")
def setting() -> Setting:
    data = Digits().load(None, download=False)
    engine = Engine("cpu", data.mean, data.std, bf16=False)
    train = limit_split(data.train, 600, 0)
    test = limit_split(data.test, 150, 1)
    model = new_model()
    engine.fit(model, train, RECIPE, seed=0)
    return Setting(engine, train, test, model)


def by_class(split: ImageSplit) -> ImageSplit:
    """The split re-stored class by class, as an image-folder copy is."""
    return split.subset(torch.argsort(split.labels, stable=True))


def shuffled(split: ImageSplit, seed: int) -> ImageSplit:
    return split.subset(torch.randperm(len(split), generator=torch.Generator().manual_seed(seed)))


def mia(s: Setting, retain: ImageSplit, test: ImageSplit, forget: ImageSplit, seed: int = 0) -> float:
    ctx = EvalContext(
        model=s.model,
        mask=None,
        splits={"forget": forget, "retain": retain, "test": test, "forget_test": forget.head(0)},
        engine=s.engine,
        references={"original": lambda: Reference(s.model, None)},
        runtime_s=None,
        forget_kind="random",
    )
    value = MIAEfficacy(MIAEfficacy.Params(shadow_seed=seed)).compute(ctx)
    assert value is not None
    return value


# --- (a) MIA-Efficacy: shadow members independent of storage order ---------------------------
def test_mia_efficacy_does_not_depend_on_storage_order(setting: Setting) -> None:
    forget = setting.train.head(60)
    retain = setting.train.subset(torch.arange(60, len(setting.train)))
    stored = mia(setting, by_class(retain), setting.test, forget)
    for seed in (1, 2):
        assert mia(setting, shuffled(retain, seed), shuffled(setting.test, seed), forget) == stored
    assert mia(setting, retain, setting.test, shuffled(forget, 3)) == stored


def test_shadow_draw_covers_every_class_of_a_class_sorted_split(setting: Setting) -> None:
    retain = by_class(setting.train)
    n = len(setting.test)  # 150 of 600: the first 150 in stored order hold only 2-3 classes
    drawn = seeded_draw(retain.images, retain.labels, n, seed=0)
    assert len(drawn) == n and len(set(drawn.tolist())) == n
    assert retain.labels[drawn].unique().numel() == 10
    assert retain.labels[:n].unique().numel() <= 3
    other = seeded_draw(retain.images, retain.labels, n, seed=1)
    assert set(other.tolist()) != set(drawn.tolist())  # the seed matters


# --- (b) fp32 evaluation whatever the training precision -------------------------------------
def test_logits_are_fp32_under_a_bf16_engine(setting: Setting) -> None:
    bf16 = Engine("cpu", (0.0,), (1.0,), bf16=True)
    fp32 = Engine("cpu", (0.0,), (1.0,), bf16=False)
    assert bf16.bf16 and not fp32.bf16
    a, b = bf16.logits(setting.model, setting.test), fp32.logits(setting.model, setting.test)
    assert a.dtype == torch.float32
    assert torch.equal(a, b)
    with bf16._autocast():  # what bf16 evaluation would have given: measurably different
        x = next(bf16.batches(setting.test, len(setting.test), None, shuffle=False))[0]
        assert not torch.equal(setting.model(x).float(), b)


# --- (c) Gap: |difference of seed means| -------------------------------------------------------
INFO = {m: {"label": m.upper(), "unit": "%", "gap": True} for m in ("ua", "mia-efficacy", "ra", "ta")}


def record(unlearner: str, seed: int, ua: float) -> dict[str, Any]:
    metrics = {"ua": ua, "mia-efficacy": 10.0, "ra": 99.0, "ta": 90.0}
    return leaderboard_record(unlearner, seed, ua, metrics=metrics, metric_info=INFO, metric_names=list(INFO))


def test_gap_is_the_difference_of_seed_means() -> None:
    # retrain UA 10 and 20 (mean 15); ft UA 20 and 10 (mean 15): per-seed gaps are 10 and 10,
    # the paper's gap (|15 - 15| on UA, 0 elsewhere) is 0.
    records = [record("retrain", 0, 10.0), record("retrain", 1, 20.0)]
    records += [record("ft", 0, 20.0), record("ft", 1, 10.0), record("ga", 0, 35.0), record("ga", 1, 35.0)]
    lines = [line for line in render(records).splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    gap = header.index("Gap")

    def gap_of(method: str) -> float:
        row = next(line for line in lines if line.startswith(f"| {method} "))
        return float(row.strip("|").split("|")[gap].split()[0])  # the value before its interval

    assert gap_of("ft") == 0.0
    assert gap_of("ga") == 5.0  # |35 - 15| / 4
    assert gap_of("retrain") == 0.0


# --- (d) best-validation checkpoint and LR-schedule rewinding ---------------------------------
def test_keep_best_ends_on_the_best_validation_epoch(setting: Setting) -> None:
    val = setting.test
    # The last of 5 epochs runs at 100x the rate and wrecks the model: the best epoch is earlier.
    recipe = dataclasses.replace(RECIPE, epochs=5, schedule="step", milestones=(0.8,), gamma=100.0)
    scores: list[float] = []

    def watch(_: int, m: nn.Module) -> None:
        scores.append(setting.engine.accuracy(m, val))
        m.train()

    last = new_model()
    setting.engine.fit(last, setting.train, recipe, seed=0, on_epoch_end=watch, val=val)
    assert setting.engine.accuracy(last, val) == scores[-1]  # keep_best off: the last epoch
    scores.clear()
    best = new_model()
    keep = dataclasses.replace(recipe, keep_best=True)
    setting.engine.fit(best, setting.train, keep, seed=0, on_epoch_end=watch, val=val)
    assert setting.engine.accuracy(best, val) == max(scores)
    assert max(scores) > scores[-1]  # the best epoch is not the last one here, so this can fail


def test_start_epoch_advances_the_schedule(setting: Setting) -> None:
    # Step schedule with gamma 0 from epoch 1 on: started at epoch 1 the rate is 0 throughout.
    recipe = TrainRecipe(epochs=2, batch_size=64, lr=0.05, schedule="step", milestones=(0.5,), gamma=0.0)
    recipe = dataclasses.replace(recipe, augment=False, weight_decay=0.0)
    for start, moves in ((0, True), (1, False)):
        model = new_model()
        before = {k: v.clone() for k, v in model.named_parameters()}
        setting.engine.fit(model, setting.train, recipe, seed=0, start_epoch=start)
        changed = any(not torch.equal(before[k], v) for k, v in model.named_parameters())
        assert changed == moves


def test_omp_rewinding_starts_the_schedule_at_the_rewind_epoch(setting: Setting) -> None:
    calls: list[int] = []

    class Spy(Engine):
        def fit(self, *args: Any, **kwargs: Any) -> None:
            calls.append(kwargs.get("start_epoch", 0))

    engine = Spy("cpu", (0.0,), (1.0,), bf16=False)
    recipe = dataclasses.replace(RECIPE, rewind_epoch=2)
    model = new_model()
    rewind = {k: v.clone() for k, v in model.state_dict().items()}
    scope = scope_parameter_names(model, "conv")
    task = PruneTask(0.5, scope, setting.train, engine, recipe, new_model, rewind, 0)
    OneShotMagnitude().prune(model, task)
    OneShotMagnitude(OneShotMagnitude.Params(rewind=False)).prune(new_model(), task)
    assert calls == [2, 0]


# --- evaluation: a reference's outputs are computed once per process -------------------------
def test_evaluations_sharing_a_reference_id_compute_its_logits_once(setting: Setting) -> None:
    loads: list[str] = []

    def gold() -> Reference:
        loads.append("gold")
        return Reference(setting.model, None)

    shared: dict[tuple[str, str], torch.Tensor] = {}

    def context(reference_id: str) -> EvalContext:
        return EvalContext(
            model=new_model(),
            mask=None,
            splits={"test": setting.test},
            engine=setting.engine,
            references={"gold": gold},
            runtime_s=None,
            forget_kind="random",
            reference_ids={"gold": reference_id},
            shared_logits=shared,
        )

    first = context("gold-node:random10").logits("test", "gold")
    again = context("gold-node:random10").logits("test", "gold")
    assert loads == ["gold"] and again is first  # the second evaluation reused the first's outputs
    assert torch.equal(first, setting.engine.logits(setting.model, setting.test))
    other = context("gold-node:class0").logits("test", "gold")  # another forget set: its own entry
    assert loads == ["gold", "gold"] and torch.equal(other, first)
    assert not torch.equal(context("x").logits("test"), first)  # the evaluated model is never shared
