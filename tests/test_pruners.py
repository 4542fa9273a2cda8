"""The pruner roster: exact sparsity, exact zeros, schedules, data (in)dependence, structure."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_pruners import unlearnbench_register_pruners
from unlearnbench_pruners.imp import IterativeMagnitude, imp_schedule
from unlearnbench_pruners.l1_filter import L1Filter
from unlearnbench_pruners.omp import OneShotMagnitude
from unlearnbench_pruners.random_prune import RandomPruner
from unlearnbench_pruners.snip import Snip
from unlearnbench_pruners.synflow import SynFlow, linearised_copy, synflow_schedule

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError
from unlearnbench.registry.components import Pruner, PruneTask
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.masks import Mask
from unlearnbench.training.pruning import global_topk_mask, kept_count, scope_parameter_names, topk_mask
from unlearnbench.training.pruning_structured import channel_plan, filter_keep_count

SPARSITIES = (0.5, 0.9, 0.99)
CLASSES = 3
ENGINE = Engine(device="cpu", mean=(0.5,), std=(0.25,))
RECIPE = TrainRecipe(epochs=1, batch_size=16, lr=0.05, schedule="constant", augment=False)


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# Tiny models and data
# --------------------------------------------------------------------------------------------
class Block(nn.Module):
    """A residual block: conv-BN-ReLU-conv-BN plus an identity or 1x1-conv-BN shortcut."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class TinyResNet(nn.Module):
    """Stem, an identity block, a downsampling block, average pooling and a linear head."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.block1 = Block(width, width, 1)
        self.block2 = Block(width, 2 * width, 2)
        self.fc = nn.Linear(2 * width, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.conv(x)))
        out = self.block2(self.block1(out))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


class BiasedChain(nn.Module):
    """Convs with biases, a pooling and an activation between conv and next conv."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 3, padding=1)
        self.b1 = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(6, 10, 3, padding=1)
        self.b2 = nn.BatchNorm2d(10)
        self.head = nn.Linear(10, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.c2(self.pool(F.silu(self.b1(self.c1(x)))))
        return self.head(F.relu(self.b2(out)).mean(dim=(2, 3)))


def small_cnn(width: int = 4) -> nn.Module:
    return SmallCNN(SmallCNN.Params(width=width)).build(num_classes=CLASSES, in_channels=1, image_size=8)


def seeded(builder: Callable[[], nn.Module], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return builder()


def split(seed: int, n: int = 32, size: int = 8) -> ImageSplit:
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, size, size), generator=gen, dtype=torch.uint8)
    return ImageSplit(images, torch.randint(0, CLASSES, (n,), generator=gen))


def make_task(
    builder: Callable[[], nn.Module],
    sparsity: float,
    *,
    data: ImageSplit | None = None,
    rewind_state: dict[str, torch.Tensor] | None = None,
    seed: int = 0,
    scope: str = "conv",
) -> PruneTask:
    return PruneTask(
        sparsity=sparsity,
        scope=scope_parameter_names(builder(), scope),
        data=split(1) if data is None else data,
        engine=ENGINE,
        recipe=RECIPE,
        new_model=builder,
        rewind_state=rewind_state,
        seed=seed,
    )


def trained(builder: Callable[[], nn.Module]) -> nn.Module:
    model = seeded(builder)
    ENGINE.fit(model, split(1), RECIPE, seed=0)
    return model


UNSTRUCTURED: dict[str, Callable[[], Pruner]] = {
    "omp": lambda: OneShotMagnitude(),
    "imp": lambda: IterativeMagnitude(IterativeMagnitude.Params(round_epochs=1)),
    "synflow": lambda: SynFlow(),
    "snip": lambda: Snip(),
    "random": lambda: RandomPruner(),
}


def assert_pruned_are_zero(model: nn.Module, mask: Mask) -> None:
    params = dict(model.named_parameters())
    assert mask.violations(model) == {}
    for name, keep in mask.tensors.items():
        assert torch.all(params[name].detach()[~keep] == 0), name


# --------------------------------------------------------------------------------------------
# Registry and parameters
# --------------------------------------------------------------------------------------------
def test_registered_roster_and_defaults() -> None:
    names = {cls.name for cls in unlearnbench_register_pruners()}
    assert names == {"omp", "imp", "synflow", "snip", "random", "l1-filter"}
    assert IterativeMagnitude.Params().rate == 0.2
    assert SynFlow.Params().rounds == 100
    assert Snip.Params().batches == 1
    assert L1Filter.structured and not SynFlow.structured
    for cls in unlearnbench_register_pruners():
        assert cls.__doc__ and cls.summary()


def test_params_build_from_plain_values() -> None:
    from unlearnbench.config.typed_config import build

    params = build(IterativeMagnitude.Params, {"round_epochs": 3, "rate": 0.5}, "imp")
    assert params == IterativeMagnitude.Params(rate=0.5, rewind=True, round_epochs=3)
    assert build(Snip.Params, {"batch_size": 8}, "snip").batch_size == 8


# --------------------------------------------------------------------------------------------
# Exact sparsity and exact zeros
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("pruner_name", sorted(UNSTRUCTURED))
def test_unstructured_sparsity_is_exact(pruner_name: str, sparsity: float) -> None:
    task = make_task(small_cnn, sparsity)
    outcome = UNSTRUCTURED[pruner_name]().prune(trained(small_cnn), task)
    mask = outcome.mask
    total = mask.total()
    assert mask.scope == task.scope
    assert mask.kept() == kept_count(total, sparsity)
    assert abs(mask.kept() - (1 - sparsity) * total) <= 1
    assert_pruned_are_zero(outcome.model, mask)
    # measured on the model: nothing outside the mask survives
    assert Mask.from_model(outcome.model, task.scope).kept() <= mask.kept()


@pytest.mark.parametrize("sparsity", SPARSITIES)
@pytest.mark.parametrize("builder", [small_cnn, TinyResNet, BiasedChain])
def test_l1_filter_channel_sparsity_is_exact_per_layer(
    builder: Callable[[], nn.Module], sparsity: float
) -> None:
    task = make_task(builder, sparsity)
    outcome = L1Filter().prune(trained(builder), task)
    mask = outcome.mask
    shapes = {n: p.shape for n, p in outcome.model.named_parameters()}
    for name, measured in mask.channel_sparsity().items():
        channels = shapes[name][0]
        assert measured == 1 - filter_keep_count(channels, sparsity) / channels
        assert int(mask.filter_kept(name).sum()) == filter_keep_count(channels, sparsity)
    assert_pruned_are_zero(outcome.model, mask)


def test_filter_keep_count_rounding() -> None:
    assert filter_keep_count(16, 0.5) == 8
    assert filter_keep_count(10, 0.25) == 8  # 7.5 rounds half up
    assert filter_keep_count(10, 0.99) == 1  # never a whole layer
    assert filter_keep_count(64, 0.9) == 6


@pytest.mark.parametrize("pruner_name", ["omp", "imp"])
def test_pruned_weights_stay_zero_through_rewind_retrain_and_saving(pruner_name: str, tmp_path: Path) -> None:
    rewind_state = {k: v.clone() for k, v in seeded(small_cnn, 5).state_dict().items()}
    task = make_task(small_cnn, 0.9, rewind_state=rewind_state)
    outcome = UNSTRUCTURED[pruner_name]().prune(trained(small_cnn), task)
    assert_pruned_are_zero(outcome.model, outcome.mask)

    outcome.mask.save(tmp_path / "mask.pt")
    torch.save(outcome.model.state_dict(), tmp_path / "model.pt")
    loaded_mask = Mask.load(tmp_path / "mask.pt")
    model = small_cnn()
    model.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    assert loaded_mask.scope == outcome.mask.scope
    assert loaded_mask.hamming(outcome.mask) == 0
    assert_pruned_are_zero(model, loaded_mask)


@pytest.mark.parametrize(
    "pruner",
    [
        OneShotMagnitude(OneShotMagnitude.Params(retrain=False)),
        IterativeMagnitude(IterativeMagnitude.Params(round_epochs=0)),
    ],
)
def test_rewinding_restores_the_kept_weights(pruner: Pruner) -> None:
    rewind_state = {k: v.clone() for k, v in seeded(small_cnn, 5).state_dict().items()}
    task = make_task(small_cnn, 0.5, rewind_state=rewind_state)
    outcome = pruner.prune(trained(small_cnn), task)
    params = dict(outcome.model.named_parameters())
    for name, keep in outcome.mask.tensors.items():
        assert torch.equal(params[name].detach()[keep], rewind_state[name][keep])
        assert torch.all(params[name].detach()[~keep] == 0)


# --------------------------------------------------------------------------------------------
# IMP
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("target", "rounds"), [(0.5, 4), (0.9, 11), (0.95, 14), (0.99, 21), (0.36, 2)])
def test_imp_schedule_rounds_and_rate(target: float, rounds: int) -> None:
    schedule = imp_schedule(target)
    assert len(schedule) == rounds == math.ceil(math.log(1 - target) / math.log(0.8) - 1e-9)
    assert schedule[-1] == target
    densities = [1.0] + [1 - s for s in schedule]
    steps = [1 - b / a for a, b in itertools.pairwise(densities)]
    assert all(step == pytest.approx(0.2) for step in steps[:-1])
    assert 0 < steps[-1] <= 0.2 + 1e-12


def test_imp_schedule_edges() -> None:
    assert imp_schedule(0.0) == []
    assert imp_schedule(0.1) == [0.1]
    assert len(imp_schedule(0.9, rate=0.5)) == 4
    with pytest.raises(InvalidValueError):
        imp_schedule(1.0)


def test_imp_prunes_nested_masks_one_retraining_per_round(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Mask] = []
    fit = Engine.fit

    def recording_fit(self: Engine, *args: object, mask: Mask | None = None, **kwargs: object) -> None:
        assert mask is not None
        seen.append(mask)
        fit(self, *args, mask=mask, **kwargs)  # type: ignore[arg-type]

    model = trained(small_cnn)
    monkeypatch.setattr(Engine, "fit", recording_fit)
    task = make_task(small_cnn, 0.9)
    outcome = IterativeMagnitude(IterativeMagnitude.Params(round_epochs=1)).prune(model, task)
    schedule = imp_schedule(0.9)
    assert len(seen) == len(schedule)
    total = outcome.mask.total()
    assert [m.kept() for m in seen] == [kept_count(total, s) for s in schedule]
    for before, after in itertools.pairwise(seen):
        assert after.intersection(before) == after.kept()  # never regrows a weight
    assert outcome.mask.hamming(seen[-1]) == 0


# --------------------------------------------------------------------------------------------
# SynFlow
# --------------------------------------------------------------------------------------------
def test_synflow_schedule_is_exponential() -> None:
    schedule = synflow_schedule(0.99, 100)
    assert len(schedule) == 100 and schedule[-1] == 0.99
    assert schedule[49] == pytest.approx(1 - 0.1)
    assert schedule[0] == pytest.approx(1 - 0.01**0.01)


def test_synflow_is_data_independent() -> None:
    pruner = SynFlow(SynFlow.Params(retrain=False))
    a = pruner.prune(small_cnn(), make_task(small_cnn, 0.9, data=split(1), seed=3)).mask
    b = pruner.prune(small_cnn(), make_task(small_cnn, 0.9, data=split(2), seed=3)).mask
    assert a.hamming(b) == 0
    model = trained(small_cnn)
    c = pruner.make_mask(model, make_task(small_cnn, 0.9, data=split(1)))
    d = pruner.make_mask(model, make_task(small_cnn, 0.9, data=split(7)))
    assert c.hamming(d) == 0


@pytest.mark.parametrize("seed", [0, 1])
def test_synflow_prunes_no_layer_entirely_at_99(seed: int) -> None:
    def builder() -> nn.Module:
        return small_cnn(8)

    model = seeded(builder, seed)
    task = make_task(builder, 0.99)
    mask = SynFlow().make_mask(model, task)
    assert mask.kept() == kept_count(mask.total(), 0.99)
    assert all(s < 1.0 for s in mask.layer_sparsity().values())
    # the same budget by magnitude at initialisation collapses the widest layer
    assert max(OneShotMagnitude().make_mask(model, task).layer_sparsity().values()) == 1.0


def test_synflow_keeps_a_residual_network_connected_at_99() -> None:
    # a whole residual-branch conv may go (the shortcut still connects), but never all paths
    model = seeded(TinyResNet)
    task = make_task(TinyResNet, 0.99)
    mask = SynFlow().make_mask(model, task)
    net = linearised_copy(model, task.scope)
    mask.apply_(net)
    ones = torch.ones(1, 1, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert float((net(ones) - net(torch.zeros_like(ones))).sum()) > 0


def test_synflow_scores_leave_the_model_untouched() -> None:
    model = trained(TinyResNet)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    task = make_task(TinyResNet, 0.5)
    scores = SynFlow().scores(model, task)
    assert set(scores) == task.scope and all(s.dtype == torch.float64 for s in scores.values())
    assert all(torch.all(s >= 0) for s in scores.values())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    net = linearised_copy(model, task.scope)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert all(torch.all(p >= 0) for p in net.parameters())


# --------------------------------------------------------------------------------------------
# SNIP and random
# --------------------------------------------------------------------------------------------
def test_snip_depends_on_the_data() -> None:
    model = seeded(small_cnn)
    pruner = Snip()
    a = pruner.make_mask(model, make_task(small_cnn, 0.9, data=split(1)))
    again = pruner.make_mask(model, make_task(small_cnn, 0.9, data=split(1)))
    b = pruner.make_mask(model, make_task(small_cnn, 0.9, data=split(2)))
    assert a.hamming(again) == 0
    assert a.hamming(b) > 0
    scores = pruner.scores(model, make_task(small_cnn, 0.9))
    weights = dict(model.named_parameters())
    for name, score in scores.items():  # |g * w| vanishes where w does
        assert score.shape == weights[name].shape


def test_random_mask_depends_on_the_seed_only() -> None:
    pruner = RandomPruner()
    a = pruner.make_mask(seeded(small_cnn, 1), make_task(small_cnn, 0.5, data=split(1), seed=4))
    b = pruner.make_mask(seeded(small_cnn, 2), make_task(small_cnn, 0.5, data=split(2), seed=4))
    c = pruner.make_mask(seeded(small_cnn, 1), make_task(small_cnn, 0.5, seed=5))
    assert a.hamming(b) == 0
    assert a.hamming(c) > 0
    assert 0.2 < a.iou(c) < 0.5  # two independent halves: expected IoU 1/3


# --------------------------------------------------------------------------------------------
# l1-filter structure
# --------------------------------------------------------------------------------------------
def test_l1_filter_dependencies_of_a_residual_network() -> None:
    model = TinyResNet()
    plan = channel_plan(model, scope_parameter_names(model, "conv"))
    by_conv = {g.conv_weight: g for g in plan.groups}
    assert set(by_conv) == {"block1.conv1.weight", "block2.conv1.weight"}
    assert by_conv["block2.conv1.weight"].bn_weight == "block2.bn1.weight"
    assert by_conv["block2.conv1.weight"].next_weight == "block2.conv2.weight"
    assert set(plan.skipped) == {
        "conv.weight",
        "block1.conv2.weight",
        "block2.conv2.weight",
        "block2.shortcut.0.weight",
    }
    assert "residual" in plan.skipped["block1.conv2.weight"]
    sequential = channel_plan(small_cnn(), scope_parameter_names(small_cnn(), "conv"))
    assert [(g.conv_weight, g.bn_weight, g.next_weight) for g in sequential.groups] == [
        ("0.weight", "1.weight", "3.weight"),
        ("3.weight", "4.weight", "7.weight"),
    ]
    assert "7.weight" in sequential.skipped  # feeds the flatten/linear head


@pytest.mark.parametrize("builder", [TinyResNet, BiasedChain, small_cnn])
def test_l1_filter_channels_truly_carry_nothing(builder: Callable[[], nn.Module]) -> None:
    model = trained(builder)
    task = make_task(builder, 0.5)
    dense_convs = {n: p.detach().clone() for n, p in model.named_parameters()}
    outcome = L1Filter(L1Filter.Params(retrain=True, rewind=False)).prune(model, task)
    model, mask = outcome.model, outcome.mask
    plan = channel_plan(model, task.scope)
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    # the ranked filters are the largest-L1 ones of the trained weights
    for g in plan.groups:
        kept = mask.filter_kept(g.conv_weight)
        norms = dense_convs[g.conv_weight].abs().flatten(1).sum(dim=1)
        assert norms[kept].min() >= norms[~kept].max()
    # whole channels: conv rows, bias, BN weight and bias, next conv's input channels
    for g in plan.groups:
        dropped = ~mask.filter_kept(g.conv_weight)
        assert dropped.any()
        assert not mask.tensors[g.conv_weight][dropped].any()
        assert mask.tensors[g.conv_weight][~dropped].flatten(1).any(dim=1).all()
        for name in (g.bn_weight, g.bn_bias) + ((g.conv_bias,) if g.conv_bias else ()):
            assert torch.equal(mask.tensors[name], ~dropped)
            assert torch.all(params[name].detach()[dropped] == 0)
        assert not mask.tensors[g.next_weight][:, dropped].any()
        assert torch.all(params[g.next_weight].detach()[:, dropped] == 0)
    for name in plan.skipped:  # residual-feeding and head convs stay dense
        assert name not in mask.tensors or bool(mask.filter_kept(name).all())
        assert bool(params[name].detach().flatten(1).ne(0).any(dim=1).all())

    x = next(ENGINE.batches(split(9), 16, None, shuffle=False))[0]
    model.eval()
    with torch.no_grad():
        reference = model(x)
    captured: list[torch.Tensor] = []

    def run_with(replace: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        handles = []
        for g in plan.groups:
            dropped = ~mask.filter_kept(g.conv_weight)
            bn = modules[g.bn_weight.rsplit(".", 1)[0]]

            def hook(
                _m: nn.Module, _i: object, out: torch.Tensor, dropped: torch.Tensor = dropped
            ) -> torch.Tensor:
                captured.append(out[:, dropped].clone())
                out = out.clone()
                out[:, dropped] = replace(out[:, dropped])
                return out

            handles.append(bn.register_forward_hook(hook))
        try:
            with torch.no_grad():
                return model(x)
        finally:
            for h in handles:
                h.remove()

    zeroed = run_with(torch.zeros_like)
    assert all(torch.all(c == 0) for c in captured)  # the pruned channels are exactly zero
    noisy = run_with(lambda t: torch.randn_like(t) * 10)
    torch.testing.assert_close(zeroed, reference, rtol=0, atol=0)
    torch.testing.assert_close(noisy, reference, rtol=0, atol=1e-6)


def test_l1_filter_select_matches_make_mask() -> None:
    model = trained(TinyResNet)
    task = make_task(TinyResNet, 0.5)
    pruner = L1Filter()
    scores = pruner.scores(model, task)
    assert all(s.dim() == 1 for s in scores.values())
    assert pruner.select(scores, task).hamming(pruner.make_mask(model, task)) == 0


def test_l1_filter_rejects_a_model_without_prunable_convs() -> None:
    def builder() -> nn.Module:
        return nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(144, 3))

    with pytest.raises(InvalidValueError, match="no prunable convolution"):
        L1Filter().make_mask(builder(), make_task(builder, 0.5))


# --------------------------------------------------------------------------------------------
# Masks, distances and top-k selection
# --------------------------------------------------------------------------------------------
def _mask(**tensors: list) -> Mask:
    return Mask({n: torch.tensor(v, dtype=torch.bool) for n, v in tensors.items()}, frozenset(tensors))


def test_mask_distances_by_hand() -> None:
    a = _mask(w=[[1, 1, 0, 0]], v=[1, 0])
    b = _mask(w=[[1, 0, 1, 0]], v=[1, 1])
    assert a.intersection(b) == 2 and a.union(b) == 5
    assert a.iou(b) == pytest.approx(2 / 5)
    assert a.hamming(b) == 3
    assert a.iom(b) == pytest.approx(2 / 4)
    assert b.iom(a) == pytest.approx(2 / 3)
    assert a.layer_iou(b) == {"v": pytest.approx(1 / 2), "w": pytest.approx(1 / 3)}
    assert a.iou(a) == 1.0 and a.hamming(a) == 0
    assert a.sparsity() == pytest.approx(3 / 6)
    with pytest.raises(InvalidValueError):
        a.iou(_mask(w=[[1, 1, 0, 0]]))


def test_filter_level_measures_by_hand() -> None:
    # three filters of two entries each; a filter is kept when any of its entries is
    a = _mask(c=[[1, 0], [1, 1], [0, 0]], d=[[1], [0]])
    b = _mask(c=[[0, 1], [0, 0], [1, 0]], d=[[1], [1]])
    assert a.filter_kept("c").tolist() == [True, True, False]
    assert a.channel_sparsity() == {"c": pytest.approx(1 / 3), "d": pytest.approx(1 / 2)}
    assert a.filter_sparsity() == pytest.approx(2 / 5)
    assert a.layer_filter_iou(b) == {"c": pytest.approx(1 / 3), "d": pytest.approx(1 / 2)}
    assert a.filter_iou(b) == pytest.approx(2 / 5)
    assert a.filter_iom(b) == pytest.approx(2 / 4)
    assert b.filter_iom(a) == pytest.approx(2 / 3)


def test_topk_mask_ties_nesting_and_agreement() -> None:
    scope = frozenset({"a", "b"})
    ties = {"a": torch.ones(4), "b": torch.ones(2)}
    assert topk_mask(ties, 0.5, scope).tensors["a"].tolist() == [True, True, True, False]
    scores = {"a": torch.tensor([0.1, 0.9, 0.5, 0.3]), "b": torch.tensor([0.8, 0.2])}
    assert topk_mask(scores, 0.5, scope).hamming(global_topk_mask(scores, 0.5, scope)) == 0
    within = _mask(a=[1, 0, 1, 1], b=[0, 1])
    nested = topk_mask(scores, 0.5, scope, within=within)
    assert nested.tensors["a"].tolist() == [False, False, True, True]
    assert nested.tensors["b"].tolist() == [False, True]
    with pytest.raises(InvalidValueError):
        topk_mask(scores, 0.2, scope, within=within)
    with pytest.raises(InvalidValueError):
        topk_mask({"a": torch.tensor([float("nan")] * 4), "b": torch.zeros(2)}, 0.5, scope)
