"""The distance and representation metrics (ZRF, JS to retrain, activation distance, weight
distance, linear CKA, k-NN forget accuracy) and the penultimate features they read, on real tiny
data (digits, a small CNN trained on all of it and one retrained without class 0) and on every
model plugin. Each test asserts a property that fails when the formula or the wiring is wrong."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_metrics.divergence import (
    ActivationDistance,
    JSRetrainForget,
    JSRetrainTest,
    ZeroRetrainForgetting,
    activation_distances,
    incompetent_seed,
    js_divergence,
    reference_code_js,
)
from unlearnbench_metrics.features import NoClassifierError, penultimate_features
from unlearnbench_metrics.representation import (
    CKAOriginal,
    CKARetrain,
    KNNForgetAccuracy,
    knn_accuracy,
    linear_cka,
)
from unlearnbench_metrics.seeds import derived_seed
from unlearnbench_metrics.weight_distance import (
    WeightDistanceOriginal,
    WeightDistanceRetrain,
    weight_distance,
)
from unlearnbench_models.airbench import Airbench
from unlearnbench_models.resnet import ResNet18, ResNet18Tiny, ResNet50
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_models.vgg import VGG16BN

from unlearnbench.api import InvalidValueError, Metric
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import limit_split
from unlearnbench.run.evaluation import EvalContext, Reference
from unlearnbench.run.plan import REFERENCE_BUILDERS
from unlearnbench.training.engine import Engine, TrainRecipe

pytestmark = pytest.mark.usefixtures("one_thread")

RECIPE = TrainRecipe(epochs=8, batch_size=32, lr=0.1, schedule="cosine", augment=False)
NEW_METRICS: tuple[type[Metric], ...] = (
    ZeroRetrainForgetting,
    JSRetrainForget,
    JSRetrainTest,
    ActivationDistance,
    WeightDistanceOriginal,
    WeightDistanceRetrain,
    CKAOriginal,
    CKARetrain,
    KNNForgetAccuracy,
)


def new_model(seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)


@dataclass
class Setting:
    engine: Engine
    splits: dict[str, ImageSplit]
    original: nn.Module
    retrain: nn.Module

    def ctx(self, model: nn.Module, splits: dict[str, ImageSplit] | None = None) -> EvalContext:
        return EvalContext(
            model=model,
            mask=None,
            splits=splits or self.splits,
            engine=self.engine,
            references={
                "original": lambda: Reference(self.original, None),
                "retrain": lambda: Reference(self.retrain, None),
            },
            runtime_s=None,
            forget_kind="class",
            new_model=new_model,
        )


@pytest.fixture(scope="module")
def setting() -> Setting:
    """Class-0 forgetting: ``original`` trained on all 500 examples, ``retrain`` on the others."""
    data = Digits().load(None, download=False)
    engine = Engine("cpu", data.mean, data.std, bf16=False)
    train = limit_split(data.train, 500, 0)
    test = limit_split(data.test, 200, 1)
    forget_mask, test_mask = train.labels == 0, test.labels == 0
    splits = {
        "forget": train.subset(torch.nonzero(forget_mask).flatten()),
        "retain": train.subset(torch.nonzero(~forget_mask).flatten()),
        "test": test.subset(torch.nonzero(~test_mask).flatten()),
        "forget_test": test.subset(torch.nonzero(test_mask).flatten()),
    }
    original, retrain = new_model(0), new_model(0)
    engine.fit(original, train, RECIPE, seed=0)
    engine.fit(retrain, splits["retain"], RECIPE, seed=0)
    return Setting(engine, splits, original, retrain)


def value(metric: Metric, ctx: EvalContext) -> float:
    found = metric.compute(ctx)
    number = getattr(found, "value", found)
    assert isinstance(number, float), found
    return number


# --- penultimate features on every model plugin ------------------------------------------------
def _images(n: int, channels: int, size: int) -> ImageSplit:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)
    return ImageSplit(images, torch.arange(n, dtype=torch.int64) % 10)


MODELS: list[tuple[type, dict[str, object], int, Callable[[nn.Module], nn.Linear]]] = [
    (SmallCNN, {"width": 4}, 8, lambda m: m[-1]),
    (ResNet18, {}, 32, lambda m: m.fc),
    (ResNet50, {}, 32, lambda m: m.fc),
    (VGG16BN, {}, 32, lambda m: m.fc),
    (ResNet18Tiny, {"stem": "imagenet"}, 64, lambda m: m.fc),
    (Airbench, {"width1": 8, "width2": 16, "width3": 16}, 32, lambda m: m.fc),
]


@pytest.mark.parametrize(("cls", "params", "size", "classifier"), MODELS, ids=[m[0].name for m in MODELS])
def test_penultimate_features_are_the_classifier_input_of_every_model(
    cls: type, params: dict[str, object], size: int, classifier: Callable[[nn.Module], nn.Linear]
) -> None:
    torch.manual_seed(0)
    model = cls(cls.Params(**params)).build(num_classes=10, in_channels=3, image_size=size)
    engine = Engine("cpu", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), bf16=False, eval_batch_size=3)
    split = _images(5, 3, size)  # two batches: features keep the split's order across batches
    features = penultimate_features(model, engine, split)
    head = classifier(model)
    assert features.shape == (5, head.in_features)
    logits = engine.logits(model, split)
    with torch.no_grad():
        rebuilt = head(features) * getattr(model, "logit_scale", 1.0)
    torch.testing.assert_close(rebuilt, logits, rtol=1e-4, atol=1e-4)
    assert all(not m._forward_pre_hooks and not m._forward_hooks for m in model.modules())  # removed


def test_a_model_without_a_linear_layer_is_refused() -> None:
    model = nn.Sequential(nn.Conv2d(1, 10, 8), nn.Flatten())
    engine = Engine("cpu", (0.5,), (0.25,), bf16=False)
    with pytest.raises(NoClassifierError, match=r"no nn\.Linear"):
        penultimate_features(model, engine, _images(2, 1, 8))


# --- ZRF -----------------------------------------------------------------------------------------
def test_zrf_is_one_for_the_incompetent_model_and_lower_for_a_trained_one(setting: Setting) -> None:
    zrf = ZeroRetrainForgetting()
    teacher = new_model(incompetent_seed(0))
    assert value(zrf, setting.ctx(teacher)) == pytest.approx(1.0, abs=1e-9)
    trained = value(zrf, setting.ctx(setting.original))
    assert 1 - math.log(2) <= trained < 0.8
    # the model that never saw class 0 answers it less confidently: closer to the random model
    assert value(zrf, setting.ctx(setting.retrain)) > trained


def test_zrf_repeats_its_seeded_teacher_and_the_seed_matters(setting: Setting) -> None:
    first = value(ZeroRetrainForgetting(), setting.ctx(setting.original))
    assert value(ZeroRetrainForgetting(), setting.ctx(setting.original)) == first
    other = value(ZeroRetrainForgetting(ZeroRetrainForgetting.Params(seed=1)), setting.ctx(setting.original))
    assert other != first
    # the teacher is not the row's own initialisation (seed 0 here): that model is not "random"
    assert incompetent_seed(0) != 0
    assert value(ZeroRetrainForgetting(), setting.ctx(new_model(0))) < 1.0 - 1e-6
    assert derived_seed(0, "a") != derived_seed(0, "b") and derived_seed(0, "a") != derived_seed(1, "a")


# --- JS divergence and activation distance to retrain -------------------------------------------
def _js_by_hand(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]
    kl = lambda a, b: sum(x * math.log(x / y) for x, y in zip(a, b, strict=True) if x > 0)  # noqa: E731
    return kl(p, m) / 2 + kl(q, m) / 2


def test_js_divergence_matches_the_definition_and_grows_with_divergence() -> None:
    p, q = [0.5, 0.3, 0.2], [0.1, 0.1, 0.8]
    lp, lq = torch.tensor([p]).log(), torch.tensor([q]).log()
    assert float(js_divergence(lp, lq)[0]) == pytest.approx(_js_by_hand(p, q), rel=1e-6)
    assert float(js_divergence(lp, lq)[0]) == pytest.approx(float(js_divergence(lq, lp)[0]), rel=1e-12)
    disjoint = js_divergence(torch.tensor([[60.0, -60.0]]), torch.tensor([[-60.0, 60.0]]))
    assert float(disjoint[0]) == pytest.approx(math.log(2), rel=1e-6)
    mixtures = [[(1 - t) * a + t * b for a, b in zip(p, q, strict=True)] for t in np.linspace(0, 1, 6)]
    steps = [float(js_divergence(lp, torch.tensor([mix]).log())[0]) for mix in mixtures]
    assert steps[0] == pytest.approx(0.0, abs=1e-12)
    assert all(b > a for a, b in itertools.pairwise(steps))
    # the Bad Teaching code's JSDiv is another number (reversed KL, averaged over classes too)
    assert reference_code_js(lp, lq) != pytest.approx(float(js_divergence(lp, lq)[0]), rel=1e-2)


def test_activation_distance_is_the_l2_of_the_probability_difference() -> None:
    lp, lq = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log(), torch.tensor([[0.9, 0.1], [0.9, 0.1]]).log()
    distances = activation_distances(lp, lq)
    assert distances.tolist() == pytest.approx([math.sqrt(0.4**2 + 0.4**2), 0.0], abs=1e-9)


def test_output_distances_to_retrain_are_zero_for_retrain_and_large_on_the_forgotten_class(
    setting: Setting,
) -> None:
    for metric in (JSRetrainForget(), JSRetrainTest(), ActivationDistance()):
        assert value(metric, setting.ctx(setting.retrain)) == pytest.approx(0.0, abs=1e-12), metric.name
    forget = value(JSRetrainForget(), setting.ctx(setting.original))
    test = value(JSRetrainTest(), setting.ctx(setting.original))
    assert forget > 0.2 and forget > 10 * test  # the two models disagree on class 0 only
    mine = torch.softmax(setting.engine.logits(setting.original, setting.splits["forget"]).double(), 1)
    theirs = torch.softmax(setting.engine.logits(setting.retrain, setting.splits["forget"]).double(), 1)
    by_hand = float(torch.sqrt(((mine - theirs) ** 2).sum(dim=1)).mean())  # mean of l2, not RMS
    assert value(ActivationDistance(), setting.ctx(setting.original)) == pytest.approx(by_hand, rel=1e-9)
    assert by_hand > 0.5
    empty = dict(setting.splits, forget=setting.splits["forget"].head(0))
    assert JSRetrainForget().compute(setting.ctx(setting.original, empty)) is None


# --- weight distance -----------------------------------------------------------------------------
def test_weight_distance_is_zero_to_itself_and_matches_a_known_perturbation(setting: Setting) -> None:
    itself = WeightDistanceOriginal().compute(setting.ctx(setting.original))
    assert itself is not None and itself.value == 0.0 and itself.details["l2"] == 0.0
    moved = copy.deepcopy(setting.original)
    name, param = next((n, p) for n, p in moved.named_parameters() if n.endswith("weight") and p.dim() == 4)
    delta = torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.01
    with torch.no_grad():
        param.add_(delta)
    found = WeightDistanceOriginal().compute(setting.ctx(moved))
    assert found is not None
    norm = math.sqrt(sum(float((p.detach().double() ** 2).sum()) for p in moved.parameters()))
    assert found.details["l2"] == pytest.approx(float(delta.double().norm()), rel=1e-6)
    assert found.value == pytest.approx(float(delta.double().norm()) / norm, rel=1e-6)
    assert found.details[f"l2:{name}"] == pytest.approx(float(delta.double().norm()), rel=1e-6)
    assert all(v == 0.0 for k, v in found.details.items() if k not in ("l2", f"l2:{name}"))
    # against retrain: every layer moved, 0 for retrain itself
    to_retrain = WeightDistanceRetrain().compute(setting.ctx(setting.original))
    assert to_retrain is not None and to_retrain.value > 0
    assert sum(v > 0 for k, v in to_retrain.details.items() if k.startswith("l2:")) > 3
    assert WeightDistanceRetrain().compute(setting.ctx(setting.retrain)).value == 0.0  # type: ignore[union-attr]


def test_weight_distance_refuses_models_of_different_architectures(setting: Setting) -> None:
    other = SmallCNN(SmallCNN.Params(width=4)).build(num_classes=10, in_channels=1, image_size=8)
    with pytest.raises(ValueError, match="shape"):
        weight_distance(setting.original, other)


# --- linear CKA ----------------------------------------------------------------------------------
def _cka_by_gram(x: torch.Tensor, y: torch.Tensor) -> float:
    """CKA as HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with K = X X^T, L = Y Y^T (Kornblith Eq. 3)."""
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - 1.0 / n
    k, l_ = h @ (x.double() @ x.double().T) @ h, h @ (y.double() @ y.double().T) @ h
    return float((k * l_).sum() / torch.sqrt((k * k).sum() * (l_ * l_).sum()))


def test_linear_cka_definition_and_invariances(setting: Setting) -> None:
    x = penultimate_features(setting.original, setting.engine, setting.splits["retain"].head(120)).double()
    y = penultimate_features(setting.retrain, setting.engine, setting.splits["retain"].head(120)).double()
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert linear_cka(x, y) == pytest.approx(_cka_by_gram(x, y), rel=1e-9)
    gen = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(x.shape[1], x.shape[1], generator=gen, dtype=torch.float64))
    assert linear_cka(x, x @ q) == pytest.approx(1.0, abs=1e-9)  # orthogonal transform
    assert linear_cka(x, 7.0 * x + 3.0) == pytest.approx(1.0, abs=1e-9)  # isotropic scale, shift
    assert linear_cka(x, y @ q * 0.1) == pytest.approx(linear_cka(x, y), rel=1e-9)
    stretch = torch.ones(x.shape[1], dtype=torch.float64)
    stretch[0] = 50.0
    assert linear_cka(x, x * stretch) < 0.99  # not invariant to an anisotropic scaling
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert linear_cka(x, noise) < 0.5


def test_cka_metrics_are_one_for_the_reference_itself_and_below_for_the_other(setting: Setting) -> None:
    assert value(CKAOriginal(), setting.ctx(setting.original)) == pytest.approx(1.0, abs=1e-9)
    assert value(CKARetrain(), setting.ctx(setting.retrain)) == pytest.approx(1.0, abs=1e-9)
    across = value(CKARetrain(), setting.ctx(setting.original))
    assert across == pytest.approx(value(CKAOriginal(), setting.ctx(setting.retrain)), rel=1e-9)
    assert 0.0 < across < 0.99
    assert value(CKARetrain(), setting.ctx(new_model(5))) < across  # a random network is further


# --- k-NN forget accuracy ------------------------------------------------------------------------
def test_knn_probe_needs_the_features_to_carry_the_labels(setting: Setting) -> None:
    retain = setting.splits["retain"]
    features = penultimate_features(setting.original, setting.engine, retain).numpy()
    labels = retain.labels.numpy()
    fit, query = slice(0, 400), slice(400, None)
    honest = knn_accuracy(features[fit], labels[fit], features[query], labels[query], k=5)
    scrambled_rows = np.random.default_rng(0).permutation(len(features))
    scrambled = features[scrambled_rows]  # each example gets another example's features
    chance = knn_accuracy(scrambled[fit], labels[fit], scrambled[query], labels[query], k=5)
    assert honest > 90.0 and chance < 35.0


def test_knn_forget_accuracy_is_high_for_a_model_that_learnt_the_forget_set(setting: Setting) -> None:
    found = KNNForgetAccuracy().compute(setting.ctx(setting.original))
    assert found is not None and found.value is not None and found.value > 90.0
    assert set(found.details) == {f"fold:{f}" for f in range(5)}
    # scrambled features: a random network's penultimate layer knows much less
    scrambled = value(KNNForgetAccuracy(), setting.ctx(new_model(5)))
    assert scrambled < found.value
    # the probe fit on the retain set alone never sees class 0: 0% by construction
    alone = KNNForgetAccuracy(KNNForgetAccuracy.Params(folds=1))
    assert value(alone, setting.ctx(setting.original)) == 0.0


def test_knn_forget_accuracy_does_not_depend_on_storage_order(setting: Setting) -> None:
    stored = value(KNNForgetAccuracy(), setting.ctx(setting.retrain))
    forget = setting.splits["forget"]
    order = torch.randperm(len(forget), generator=torch.Generator().manual_seed(3))
    shuffled = dict(setting.splits, forget=forget.subset(order))
    assert value(KNNForgetAccuracy(), setting.ctx(setting.retrain, shuffled)) == stored
    with pytest.raises(InvalidValueError, match="k >= 1"):
        KNNForgetAccuracy.Params(k=0)


# --- what each metric declares ---------------------------------------------------------------
def test_each_new_metric_declares_references_the_planner_builds() -> None:
    for metric in NEW_METRICS:
        assert metric.__doc__ and metric.summary(), metric.name
        assert all(need in REFERENCE_BUILDERS for need in metric.needs), metric.name
    assert ZeroRetrainForgetting.needs == () and KNNForgetAccuracy.needs == ()
    assert {m.name: m.needs for m in NEW_METRICS if m.needs} == {
        "js-retrain-forget": ("retrain",),
        "js-retrain-test": ("retrain",),
        "activation-distance": ("retrain",),
        "weight-distance-original": ("original",),
        "weight-distance-retrain": ("retrain",),
        "cka-original": ("original",),
        "cka-retrain": ("retrain",),
    }
