"""Population metrics (eps-score, u-lira, klom): the per-example formulas against hand-computed
values, and the metrics on real pools of small CNNs trained on digits: two retrain pools from
different seeds look alike, originals that memorised a mislabelled forget set do not, and the
U-LiRA attack finds an overfit model's training data but not a retrained model's."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_metrics.pool_math import (
    attack_epsilon,
    auc,
    balanced_accuracy,
    binned_kl,
    challenge_score,
    epsilon_bin_scores,
    example_epsilons,
    forgetting_quality,
    gaussian_kl,
    klom,
    lira_scores,
    summarise,
)
from unlearnbench_metrics.pool_metrics import KLOM, EpsScore, ULiRA
from unlearnbench_models.small_cnn import SmallCNN

from unlearnbench.api import MetricValue, as_metric_value, margins
from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import UnknownChoiceError
from unlearnbench.run.evaluation import EvalContext
from unlearnbench.run.pools import (
    PoolOutputs,
    PoolSpec,
    pool_needs,
    pool_outputs,
    shadow_membership,
    train_member,
    train_shadow_member,
)
from unlearnbench.training.engine import Engine, TrainRecipe


# --------------------------------------------------------------------------------------------
# formulas on synthetic arrays
# --------------------------------------------------------------------------------------------
def test_margin_is_logit_scaled_confidence() -> None:
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, -1.0]])
    labels = torch.tensor([0, 2])
    p = torch.softmax(logits.double(), dim=1)[torch.arange(2), labels]
    expected = torch.log(p / (1 - p))
    assert torch.allclose(margins(logits, labels), expected)
    assert math.isclose(float(margins(logits, labels)[0]), 2 - math.log(2), rel_tol=1e-12)
    stacked = margins(torch.stack([logits, -logits]), labels)  # [N, n, K] pools
    assert stacked.shape == (2, 2) and torch.allclose(stacked[0], expected)


def test_attack_epsilon_by_hand() -> None:
    # max(log(0.75 / 0.5), log(0.5 / 0.25)) = log 2
    assert math.isclose(float(attack_epsilon(np.array(0.25), np.array(0.5), 0.0)), math.log(2))
    assert float(attack_epsilon(np.array(0.0), np.array(0.0), 1e-6)) == math.inf
    assert math.isnan(float(attack_epsilon(np.array(0.0), np.array(0.3), 1e-6)))
    assert math.isnan(float(attack_epsilon(np.array(0.3), np.array(0.0), 1e-6)))


def test_epsilon_bins_and_score_by_hand() -> None:
    eps = np.array([0.0, 0.49, 0.5, 0.99, 1.0, 5.9, 6.4, 6.5, 100.0, math.inf])
    expected = [1, 1, 0.5, 0.5, 0.25, 2.0**-11, 2.0**-12, 2.0**-12, 2.0**-12, 2.0**-12]
    assert epsilon_bin_scores(eps).tolist() == expected
    assert forgetting_quality(np.array([0.0, 0.7])) == 0.75
    assert math.isclose(challenge_score(0.5, 90.0, 100.0, 80.0, 100.0), 0.36)


def test_example_epsilons_separate_identical_from_shifted_pools() -> None:
    rng = np.random.default_rng(0)
    retrain = rng.normal(size=(64, 300))
    same = rng.normal(size=(64, 300))
    apart = retrain + 100.0
    assert forgetting_quality(example_epsilons(retrain, same)) > 0.8
    assert np.all(example_epsilons(retrain, apart) == math.inf)
    assert forgetting_quality(example_epsilons(retrain, apart)) == 2.0**-12
    # the attack family has both directions: unlearned models below the retrained ones are caught
    assert np.all(example_epsilons(retrain, retrain - 100.0) == math.inf)
    f_shift = [forgetting_quality(example_epsilons(retrain, retrain + d)) for d in (0.0, 1.0, 3.0)]
    assert f_shift[0] > f_shift[1] > f_shift[2]


def test_lira_auc_and_accuracy_by_hand() -> None:
    shadow = np.array([[1.0], [3.0], [-1.0], [1.0]])
    member = np.array([[True], [True], [False], [False]])
    # in ~ N(2, 1), out ~ N(0, 1): log N(2; 2, 1) - log N(2; 0, 1) = 2
    score = lira_scores(np.array([2.0]), shadow, member, global_variance=False)
    assert np.allclose(score, [2.0])
    assert np.allclose(lira_scores(np.array([2.0]), shadow, member, global_variance=True), [2.0])
    assert np.isnan(lira_scores(np.array([0.0]), shadow, np.ones((4, 1), bool))).all()
    assert auc(np.array([3.0, 2.0]), np.array([1.0, 2.0])) == 0.875
    assert balanced_accuracy(np.array([3.0, -1.0]), np.array([-2.0, -3.0, 1.0, -1.0])) == 0.625


def test_kl_estimators_by_hand() -> None:
    # N(0, 1) vs N(2, 1): KL = (1 + 4) / 2 - 1/2 = 2
    assert math.isclose(gaussian_kl(np.array([-1.0, 1.0]), np.array([1.0, 3.0])), 2.0)
    s = 1e-5
    expected = math.log((1 + s) / s) / (1 + 2 * s)
    assert math.isclose(binned_kl(np.zeros(3), np.ones(3), bins=2, smoothing=s), expected)
    assert binned_kl(np.arange(5.0), np.arange(5.0)) == 0.0
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(500, 3))
    assert np.all(klom(pool, rng.normal(size=(500, 3)), estimator="binned") < 0.1)
    assert np.all(klom(pool + 5, pool, estimator="binned") > 2)
    assert summarise(np.array([1.0, 2.0, 3.0, np.nan])) == {"median": 2.0, "p95": 2.9, "mean": 2.0}


def test_shadow_membership_is_balanced_and_seeded() -> None:
    member = shadow_membership(50, 8, seed=3)
    assert member.shape == (8, 50) and (member.sum(axis=0) == 4).all()
    assert np.array_equal(member, shadow_membership(50, 8, seed=3))
    assert not np.array_equal(member, shadow_membership(50, 8, seed=4))


def test_pool_specs_and_needs() -> None:
    assert PoolSpec("retrain", 3, "default", seed_base=10).seeds == (10, 11, 12)
    assert pool_needs(("original", "pool:retrain", "pool:shadow")) == ("retrain", "shadow")
    with pytest.raises(UnknownChoiceError, match="pool kind"):
        pool_needs(("pool:gold",))
    with pytest.raises(UnknownChoiceError, match="pool kind"):
        PoolSpec("gold", 3, "default")  # type: ignore[arg-type]
    assert as_metric_value(2).value == 2.0 and as_metric_value(None).value is None
    assert as_metric_value(MetricValue(1.0, {"a": 1})).details == {"a": 1}


# --------------------------------------------------------------------------------------------
# real pools: small CNNs on 200 digits
# --------------------------------------------------------------------------------------------
POOL = 6
SHADOWS = 8
N_TRAIN = 200
N_FORGET = 40


@dataclass
class Pools:
    engine: Engine
    splits: dict[str, ImageSplit]
    clean_splits: dict[str, ImageSplit]
    retrain: list[nn.Module]
    retrain_again: list[nn.Module]
    originals: list[nn.Module]
    shadow: PoolOutputs
    overfit: nn.Module
    retrained: nn.Module
    class_splits: dict[str, ImageSplit]
    class_shadow: PoolOutputs
    class_retrained: nn.Module

    def ctx(
        self,
        model: nn.Module,
        pools: dict[str, Callable[[], PoolOutputs]],
        clean: bool = False,
        splits: dict[str, ImageSplit] | None = None,
    ) -> EvalContext:
        return EvalContext(
            model=model,
            mask=None,
            splits=splits or (self.clean_splits if clean else self.splits),
            engine=self.engine,
            references={},
            runtime_s=None,
            forget_kind="class" if splits else "random",
            pools=pools,
        )

    def outputs(self, models: list[nn.Module]) -> PoolOutputs:
        return pool_outputs(models, self.splits, self.engine)


@pytest.fixture(scope="module")
def pools() -> Iterator[Pools]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = Digits().load(None, download=False)
    engine = Engine("cpu", data.mean, data.std)
    recipe = TrainRecipe(epochs=12, batch_size=32, lr=0.1, schedule="cosine", augment=False)

    def new_model(seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return SmallCNN(SmallCNN.Params(width=8)).build(num_classes=10, in_channels=1, image_size=8)

    def train(seed: int, split: ImageSplit) -> nn.Module:
        return train_member(seed, split, engine=engine, recipe=recipe, new_model=new_model)

    train_split, test = data.train.head(N_TRAIN), data.test.head(150)
    retain = train_split.subset(torch.arange(N_FORGET, N_TRAIN))
    # a mislabelled forget set: the originals can only fit it by memorising it
    forget = ImageSplit(train_split.images[:N_FORGET], (train_split.labels[:N_FORGET] + 1) % 10)
    full = ImageSplit(torch.cat([forget.images, retain.images]), torch.cat([forget.labels, retain.labels]))
    splits = {"forget": forget, "retain": retain, "test": test, "forget_test": test.head(0)}
    clean = {**splits, "forget": train_split.head(N_FORGET)}
    # shadows on random halves of the (clean) training examples plus the test set
    candidates = ImageSplit(
        torch.cat([train_split.images, test.images]), torch.cat([train_split.labels, test.labels])
    )
    member = shadow_membership(len(candidates), SHADOWS, seed=7)
    shadows = [
        train_shadow_member(
            i, member, candidates, seed=300 + i, engine=engine, recipe=recipe, new_model=new_model
        )
        for i in range(SHADOWS)
    ]
    shadow = pool_outputs(
        shadows,
        {"forget": clean["forget"], "test": test},
        engine,
        {"forget": member[:, :N_FORGET], "test": member[:, N_TRAIN:]},
    )
    # class-wise forgetting of class 0: its training examples, its test examples held out
    index = {
        "forget": torch.nonzero(train_split.labels == 0).flatten(),
        "retain": torch.nonzero(train_split.labels != 0).flatten(),
        "test": torch.nonzero(test.labels != 0).flatten(),
        "forget_test": torch.nonzero(test.labels == 0).flatten(),
    }
    class_splits = {s: (test if "test" in s else train_split).subset(i) for s, i in index.items()}
    offset = {"forget": 0, "retain": 0, "test": N_TRAIN, "forget_test": N_TRAIN}
    class_member = {s: member[:, offset[s] + i.numpy()] for s, i in index.items() if s != "retain"}
    class_shadow = pool_outputs(shadows, {s: class_splits[s] for s in class_member}, engine, class_member)
    yield Pools(
        engine=engine,
        splits=splits,
        clean_splits=clean,
        retrain=[train(s, retain) for s in range(POOL)],
        retrain_again=[train(100 + s, retain) for s in range(POOL)],
        originals=[train(200 + s, full) for s in range(POOL)],
        shadow=shadow,
        overfit=train(500, train_split),
        retrained=train(501, retain),
        class_splits=class_splits,
        class_shadow=class_shadow,
        class_retrained=train(502, class_splits["retain"]),
    )
    torch.set_num_threads(threads)


def test_originals_memorised_the_forget_set(pools: Pools) -> None:
    """The setting is what the next tests assume: originals fit the wrong labels, retrains don't."""
    original, retrain = pools.outputs(pools.originals), pools.outputs(pools.retrain)
    assert original.accuracy("forget") > 50.0
    assert retrain.accuracy("forget") < 10.0
    assert retrain.margins["forget"].shape == (POOL, N_FORGET)


def test_eps_score_and_klom_accept_identical_pools_and_reject_originals(pools: Pools) -> None:
    retrain = pools.outputs(pools.retrain)
    same = pools.outputs(pools.retrain_again)
    original = pools.outputs(pools.originals)
    calls: list[str] = []

    def loader(name: str, outputs: PoolOutputs) -> Callable[[], PoolOutputs]:
        def load() -> PoolOutputs:
            calls.append(name)
            return outputs

        return load

    good = pools.ctx(pools.retrained, {"retrain": loader("retrain", retrain), "unlearned": loader("u", same)})
    bad = pools.ctx(pools.retrained, {"retrain": lambda: retrain, "unlearned": lambda: original})
    eps_good, eps_bad = EpsScore().compute(good), EpsScore().compute(bad)
    klom_good, klom_bad = KLOM().compute(good), KLOM().compute(bad)
    assert eps_good is not None and eps_bad is not None and klom_good is not None and klom_bad is not None
    assert calls == ["retrain", "u"]  # each pool loaded once per context, whatever the metrics
    assert eps_good.details["F"] >= 0.6
    assert eps_bad.details["F"] <= 0.2
    assert eps_good.value is not None and eps_bad.value is not None and eps_good.value > 5 * eps_bad.value
    assert len(eps_good.details["epsilon"]) == N_FORGET
    assert klom_good.value is not None and klom_bad.value is not None
    assert klom_good.value < 1.0 < 5.0 < klom_bad.value
    assert len(klom_bad.details["kl"]) == N_FORGET


def test_u_lira_finds_training_data_of_an_overfit_model_only(pools: Pools) -> None:
    shadow = {"shadow": lambda: pools.shadow}
    overfit = ULiRA().compute(pools.ctx(pools.overfit, shadow, clean=True))
    retrained = ULiRA().compute(pools.ctx(pools.retrained, shadow, clean=True))
    assert overfit is not None and retrained is not None
    assert overfit.value is not None and overfit.value >= 0.65
    assert retrained.value is not None and 0.35 <= retrained.value <= 0.62
    assert len(overfit.details["scores_forget"]) == N_FORGET


def test_u_lira_holds_out_the_forgotten_class_for_class_wise_forgetting(pools: Pools) -> None:
    """A model retrained without class 0 treats its training and test examples of class 0 alike
    (AUC near 0.5); held out against the other classes, which it knows, they would look like
    non-members (AUC near 0, version 1's mistake). The overfit model memorised its class-0
    training examples: AUC above 0.5."""
    shadow = {"shadow": lambda: pools.class_shadow}
    splits = pools.class_splits
    retrained = ULiRA().compute(pools.ctx(pools.class_retrained, shadow, splits=splits))
    overfit = ULiRA().compute(pools.ctx(pools.overfit, shadow, splits=splits))
    other_classes = {**splits, "forget_test": splits["test"].head(0)}
    wrong = ULiRA().compute(pools.ctx(pools.class_retrained, shadow, splits=other_classes))
    assert retrained is not None and overfit is not None and wrong is not None
    assert retrained.details["held_out"] == "forget_test" and wrong.details["held_out"] == "test"
    assert retrained.value is not None and 0.3 <= retrained.value <= 0.7
    assert wrong.value is not None and wrong.value < 0.2
    assert overfit.value is not None and overfit.value >= 0.6  # 22 training vs 17 test examples
    assert len(retrained.details["scores_held_out"]) == len(splits["forget_test"])


def test_missing_pool_names_the_valid_ones(pools: Pools) -> None:
    ctx = pools.ctx(pools.retrained, {"retrain": lambda: pools.shadow})
    assert ctx.pool("pool:retrain") is ctx.pool("retrain")
    with pytest.raises(UnknownChoiceError, match="unknown pool 'shadow'; valid choices: retrain"):
        ULiRA().compute(ctx)
