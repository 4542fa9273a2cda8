"""Fast-training recipe options (airbench): bias learning-rate groups, lookahead, alternating flips."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import InvalidValueError, UnknownChoiceError
from unlearnbench.training.engine import Engine, TrainRecipe
from unlearnbench.training.fast_training import Lookahead, param_groups
from unlearnbench.training.masks import Mask
from unlearnbench.training.unlearning import unlearning_recipe


def net() -> nn.Sequential:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    model[1].weight.requires_grad_(False)
    model(torch.rand(2, 3, 6, 6))  # materialise the lazy layer
    return model


def test_param_groups_scale_the_rate_of_norm_biases_and_keep_their_decay_per_step() -> None:
    model = net()
    recipe = TrainRecipe(lr=0.5, weight_decay=1e-3, bias_lr_scale=64.0)
    biases, others = param_groups(model, recipe)
    assert biases["params"] == [model[1].bias]
    assert biases["lr"] == biases["base_lr"] == 32.0
    assert biases["lr"] * biases["weight_decay"] == pytest.approx(0.5 * 1e-3)
    assert {id(p) for p in others["params"]} == {id(model[0].weight), id(model[0].bias)} | {
        id(model[3].weight),
        id(model[3].bias),
    }  # the frozen BN scale is in no group
    (single,) = param_groups(model, dataclasses.replace(recipe, bias_lr_scale=1.0))
    assert len(single["params"]) == 5 and single["lr"] == 0.5


def test_the_schedule_scales_each_group_from_its_own_base_rate() -> None:
    model = net()
    split = ImageSplit(torch.randint(0, 256, (32, 3, 6, 6), dtype=torch.uint8), torch.arange(32) % 2)
    engine = Engine("cpu", (0.5,) * 3, (0.25,) * 3)
    recipe = TrainRecipe(epochs=1, batch_size=32, lr=0.1, bias_lr_scale=10.0, schedule="constant")
    rates: list[tuple[float, ...]] = []
    engine.fit_batches(
        model,
        recipe,
        lambda _: engine.batches(split, 32, None),
        steps_per_epoch=1,
        before_step=lambda _, opt: rates.append(tuple(g["lr"] for g in opt.param_groups)),
    )
    assert rates == [(pytest.approx(1.0), pytest.approx(0.1))]


def test_lookahead_moves_to_the_ema_with_the_scheduled_decay_and_ends_on_it() -> None:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    lookahead = Lookahead(model, every=2, total_steps=4, rate=0.9)
    with torch.no_grad():
        model.weight.fill_(1.0)
    lookahead.after_step(model, 1)  # not an update step
    assert float(model.weight.detach()) == 1.0
    lookahead.after_step(model, 4)  # decay 0.9**2 * (4/4)**3 = 0.81: ema = 0.19
    assert float(model.weight.detach()) == pytest.approx(0.19)
    with torch.no_grad():
        model.weight.fill_(5.0)
    lookahead.finish(model)
    assert float(model.weight.detach()) == pytest.approx(0.19)


def test_lookahead_training_keeps_pruned_weights_zero() -> None:
    model = net()
    keep = torch.rand(model[0].weight.shape, generator=torch.Generator().manual_seed(0)) > 0.5
    mask = Mask({"0.weight": keep}, frozenset({"0.weight"}))
    split = ImageSplit(torch.randint(0, 256, (64, 3, 6, 6), dtype=torch.uint8), torch.arange(64) % 2)
    engine = Engine("cpu", (0.5,) * 3, (0.25,) * 3)
    before = model[0].weight.detach().clone()
    recipe = TrainRecipe(epochs=2, batch_size=8, lr=0.1, schedule="onecycle", lookahead_every=3)
    engine.fit(model, split, recipe, seed=0, mask=mask)
    assert bool((model[0].weight[~keep] == 0).all())
    assert not torch.equal(model[0].weight[keep], before[keep])


def test_alternating_flips_show_every_image_in_both_orientations_every_two_epochs() -> None:
    n = 40
    base = torch.randint(0, 256, (n, 3, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    split = ImageSplit(base, torch.arange(n))
    engine = Engine("cpu", (0.0,) * 3, (1.0,) * 3)  # normalised x == the images / 255
    scaled = base.float() / 255
    seen: dict[int, list[bool]] = {i: [] for i in range(n)}

    def record(_: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        for image, label in zip(x, y.tolist(), strict=True):
            original = torch.allclose(image, scaled[label])
            assert original or torch.allclose(image, scaled[label].flip(-1))
            seen[label].append(not original)
        return torch.zeros((), requires_grad=True)

    recipe = TrainRecipe(epochs=4, batch_size=16, lr=0.1, crop_padding=0, flip="alternate")
    engine.fit(nn.Linear(1, 1), split, recipe, seed=0, loss_fn=record)
    flips = torch.tensor(list(seen.values()))  # [n, epochs]
    assert bool((flips[:, 0] != flips[:, 1]).all()) and bool((flips[:, 2] != flips[:, 3]).all())
    assert 10 < int(flips[:, 0].sum()) < 30


def test_bad_fast_training_options_are_refused() -> None:
    with pytest.raises(UnknownChoiceError):
        TrainRecipe(flip="sometimes")
    with pytest.raises(InvalidValueError):
        TrainRecipe(bias_lr_scale=0.0)
    with pytest.raises(InvalidValueError):
        TrainRecipe(lookahead_every=-1)


def test_fine_tuning_recipes_drop_the_fast_training_options() -> None:
    base = TrainRecipe(bias_lr_scale=64.0, lookahead_every=5, flip="alternate")
    tuned = unlearning_recipe(base, epochs=1, lr=0.01)
    assert tuned.bias_lr_scale == 1.0 and tuned.lookahead_every == 0
