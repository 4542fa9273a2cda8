"""The training engine and the on-device augmentation, checked on CPU tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from unlearnbench.data.augment import normalize, random_crop, random_flip
from unlearnbench.data.images import ImageSplit
from unlearnbench.errors import UnknownChoiceError
from unlearnbench.training.engine import Engine, TrainRecipe, lr_factor
from unlearnbench.training.masks import Mask


def images(n: int = 64, size: int = 8, channels: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8)


def test_random_crop_keeps_shape_dtype_and_takes_windows_of_the_padded_image() -> None:
    batch = images()
    out = random_crop(batch, 2, torch.Generator().manual_seed(1))
    assert out.shape == batch.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(batch, (2, 2, 2, 2))
    offsets = set()
    for i in range(len(batch)):
        windows = [
            (top, left)
            for top in range(5)
            for left in range(5)
            if torch.equal(padded[i, :, top : top + 8, left : left + 8], out[i])
        ]
        assert windows, f"image {i} is not a crop of its padded input"
        offsets.add(windows[0])
    assert len(offsets) > 5, "crops must vary between images"
    assert (out == 0).any(), "some crops must reach into the zero padding"


def test_random_crop_without_padding_is_the_identity() -> None:
    batch = images()
    assert torch.equal(random_crop(batch, 0, torch.Generator()), batch)


def test_random_flip_mirrors_about_half_of_the_images() -> None:
    batch = images(n=400)
    out = random_flip(batch, torch.Generator().manual_seed(3))
    flipped = torch.tensor([torch.equal(o, b.flip(-1)) for o, b in zip(out, batch, strict=True)])
    kept = torch.tensor([torch.equal(o, b) for o, b in zip(out, batch, strict=True)])
    assert bool((flipped | kept).all())
    assert 150 < int(flipped.sum()) < 250


def test_normalize_maps_uint8_to_standardised_floats() -> None:
    batch = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    out = normalize(batch, torch.tensor([0.5, 0.5, 0.5]), torch.tensor([0.25, 0.5, 1.0]), torch.float32)
    assert out.dtype == torch.float32
    assert torch.allclose(out[:, 0], torch.full((2, 4, 4), 2.0))
    assert torch.allclose(out[:, 2], torch.full((2, 4, 4), 0.5))


def test_batches_cover_every_example_once_per_epoch() -> None:
    split = ImageSplit(images(n=50), torch.arange(50))
    engine = Engine("cpu", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    seen = torch.cat([y for _, y in engine.batches(split, 16, torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(50))
    assert seen.tolist() != list(range(50)), "shuffled batches must not come in stored order"
    ordered = torch.cat([y for _, y in engine.batches(split, 16, None, shuffle=False)])
    assert ordered.tolist() == list(range(50))


@pytest.mark.parametrize(
    ("schedule", "step", "expected"),
    [
        ("constant", 50, 1.0),
        ("step", 49, 1.0),
        ("step", 50, 0.1),
        ("step", 75, 0.01),
        ("cosine", 0, 1.0),
        ("cosine", 50, 0.5),
        ("onecycle", 19, 1.0),
        ("onecycle", 60, 0.5),
        ("triangle", 0, 0.2),
        ("triangle", 23, 1.0),
        ("triangle", 100, 0.07),
        ("triangle", 500, 0.07),
    ],
)
def test_lr_schedules(schedule: str, step: int, expected: float) -> None:
    recipe = TrainRecipe(epochs=100, schedule=schedule)
    assert math.isclose(lr_factor(recipe, step, steps_per_epoch=1), expected, rel_tol=1e-6)


def test_a_bad_schedule_is_refused_with_the_choices() -> None:
    with pytest.raises(UnknownChoiceError, match="cosine"):
        TrainRecipe(schedule="sideways")


def tiny_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def train(seed: int, mask: Mask | None = None, model_seed: int = 0) -> nn.Module:
    torch.manual_seed(model_seed)
    model = tiny_model()
    split = ImageSplit(images(n=64), torch.arange(64) % 4)
    engine = Engine("cpu", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    recipe = TrainRecipe(epochs=2, batch_size=16, lr=0.1, schedule="cosine", crop_padding=2)
    engine.fit(model, split, recipe, seed=seed, mask=mask)
    return model


def test_training_is_seeded() -> None:
    a, b, c = train(0), train(0), train(1)
    assert all(
        torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    assert not torch.equal(a[0].weight, c[0].weight)


def test_masked_weights_stay_exactly_zero_while_the_others_train() -> None:
    torch.manual_seed(0)
    reference = tiny_model()
    keep = torch.rand(reference[0].weight.shape) > 0.7
    mask = Mask({"0.weight": keep}, frozenset({"0.weight"}))
    model = train(0, mask)
    weight = model[0].weight.detach()
    assert bool((weight[~keep] == 0).all())
    assert not torch.equal(weight[keep], reference[0].weight.detach()[keep])
