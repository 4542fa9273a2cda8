"""The built-in ResNet and VGG model plugins, and the training-throughput benchmark script."""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from unlearnbench_models import unlearnbench_register_models
from unlearnbench_models.resnet import ResNet18, ResNet18Tiny, ResNet50
from unlearnbench_models.vgg import VGG16BN

from unlearnbench.errors import InvalidValueError, UnknownChoiceError

ROOT = Path(__file__).resolve().parents[1]
BENCHMARK = ROOT / "benchmarks" / "train_throughput.py"

# Parameter counts of the CIFAR-style networks with 10 classes: torchvision's ImageNet ResNet-18
# (11,689,512) and ResNet-50 (25,557,032) less the 7x7-minus-3x3 stem difference (7,680) and the
# 1000-minus-10-class fc difference (507,870 and 2,028,510); VGG-16-BN's 14,710,464 conv, 8,448
# BatchNorm and 592,906 linear parameters (2048-256-256-10 head).
RESNET18_PARAMS = 11_173_962
RESNET50_PARAMS = 23_520_842
VGG16BN_PARAMS = 15_311_818

CASES = [
    (ResNet18, 10, 32),
    (ResNet18, 100, 32),
    (ResNet50, 10, 32),
    (VGG16BN, 10, 32),
    (VGG16BN, 100, 32),
    (ResNet18Tiny, 200, 64),
]


def build(cls: type, num_classes: int = 10, image_size: int = 32, **params: object) -> nn.Module:
    torch.manual_seed(0)
    plugin = cls(cls.Params(**params)) if params else cls()
    return plugin.build(num_classes=num_classes, in_channels=3, image_size=image_size)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registration() -> None:
    names = {cls.name for cls in unlearnbench_register_models()}
    assert {"small-cnn", "resnet18", "resnet50", "vgg16-bn", "resnet18-tiny"} <= names


@pytest.mark.parametrize(("cls", "num_classes", "size"), CASES)
def test_output_shape(cls: type, num_classes: int, size: int) -> None:
    model = build(cls, num_classes, size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def test_parameter_counts() -> None:
    assert n_params(build(ResNet18)) == RESNET18_PARAMS
    assert n_params(build(ResNet18, 100)) == RESNET18_PARAMS + 90 * 513
    assert n_params(build(ResNet18Tiny, 200, 64)) == RESNET18_PARAMS + 190 * 513
    assert n_params(build(ResNet50)) == RESNET50_PARAMS
    assert n_params(build(VGG16BN)) == VGG16BN_PARAMS


@pytest.mark.parametrize("cls", [ResNet18, ResNet50, VGG16BN, ResNet18Tiny])
def test_convs_bias_free_and_followed_by_matching_bn(cls: type) -> None:
    model = build(cls)
    modules = dict(model.named_modules())
    convs = {name: m for name, m in modules.items() if isinstance(m, nn.Conv2d)}
    assert convs
    for name, conv in convs.items():
        assert conv.bias is None, name
        if name.endswith(".0"):  # projection shortcut: Sequential(conv, bn)
            bn = modules[name[:-1] + "1"]
        else:
            prefix, _, leaf = name.rpartition(".")
            bn = modules[f"{prefix}.bn{leaf[4:]}" if prefix else f"bn{leaf[4:]}"]
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels, name


def test_resnet_structure_names() -> None:
    model = build(ResNet18)
    assert isinstance(model.fc, nn.Linear) and model.fc.in_features == 512
    assert isinstance(model.maxpool, nn.Identity)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert len(model.layer1[0].shortcut) == 0
    assert isinstance(model.layer2[0].shortcut[0], nn.Conv2d)
    assert model.layer2[0].shortcut[0].stride == (2, 2)
    assert build(ResNet50).fc.in_features == 2048


def test_imagenet_stem_option() -> None:
    model = build(ResNet18Tiny, 200, 64, stem="imagenet")
    assert model.conv1.kernel_size == (7, 7) and isinstance(model.maxpool, nn.MaxPool2d)
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 200)
    with pytest.raises(UnknownChoiceError):
        build(ResNet18, stem="huge")


def test_kaiming_fan_out_init() -> None:
    conv = build(ResNet18).layer4[1].conv2  # 512 -> 512, 3x3: fan_out = 4608
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 4608), rel=0.02)
    vgg = build(VGG16BN)
    assert vgg.fc.weight.std().item() == pytest.approx(0.01, rel=0.1)
    assert vgg.fc.bias.abs().max().item() == 0.0


def test_vgg_rejects_small_images() -> None:
    with pytest.raises(InvalidValueError):
        build(VGG16BN, image_size=8)


def test_resnet18_training_step_reduces_loss() -> None:
    model = build(ResNet18).train()
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=gen)
    y = torch.randint(0, 10, (4,), generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    losses = []
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        final = F.cross_entropy(model(x), y).item()
    assert final < losses[0]


# --- benchmarks/train_throughput.py ---------------------------------------------------------
def load_benchmark(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Import the script as a module (registered in ``sys.modules`` for this test only)."""
    spec = importlib.util.spec_from_file_location("train_throughput", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_benchmark_runs_on_cpu() -> None:
    command = [
        sys.executable,
        str(BENCHMARK),
        *("--synthetic", "16", "--epochs", "1", "--warmup", "0", "--batch-size", "16"),
        *("--device", "cpu", "--workers", "0"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "engine/baseline:" in done.stdout
    rows = {line.split()[0] for line in done.stdout.splitlines() if line.strip()}
    assert {"engine", "baseline"} <= rows


def test_benchmark_image_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bench = load_benchmark(monkeypatch)
    for label, colour in enumerate(((255, 0, 0), (0, 0, 255))):
        folder = tmp_path / "train" / f"class{label}"
        folder.mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (32, 32), colour).save(folder / f"{i}.png")
    split, num_classes = bench.load_image_folder(tmp_path)
    assert num_classes == 2 and split.images.shape == (6, 3, 32, 32)
    assert split.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert split.images[0, 0].eq(255).all() and split.images[3, 2].eq(255).all()
    mean, _ = bench.channel_stats(split)
    assert mean == pytest.approx((0.5, 0.0, 0.5))
    dataset = bench.ReferenceStyleDataset(split, bench.reference_transform(32, mean, (1.0, 1.0, 1.0)))
    x, y = dataset[4]
    assert x.shape == (3, 32, 32) and y == 1


# --- airbench ----------------------------------------------------------------------------------
def airbench(**params: object) -> nn.Module:
    from unlearnbench_models.airbench import Airbench

    torch.manual_seed(0)
    defaults = {"width1": 8, "width2": 16, "width3": 16}
    return Airbench(Airbench.Params(**{**defaults, **params})).build(
        num_classes=10, in_channels=3, image_size=32
    )


def test_airbench_shape_and_conv_scope() -> None:
    from unlearnbench.training.pruning import scope_parameter_names

    model = airbench().eval()
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    scope = scope_parameter_names(model, "conv")
    assert "whiten.weight" in scope
    assert {f"block{i}.conv{j}.weight" for i in (1, 2, 3) for j in (1, 2)} <= scope
    assert model.block3.conv2.weight.shape == (16, 16, 3, 3)
    with pytest.raises(InvalidValueError):
        airbench(width2=0)


def test_airbench_whitening_decorrelates_patches_and_keeps_pruned_zeros() -> None:
    model = airbench()
    gen = torch.Generator().manual_seed(0)
    base = torch.rand(64, 1, 32, 32, generator=gen)
    x = torch.cat([base, 0.5 * base + 0.1 * torch.rand(64, 2, 32, 32, generator=gen)], 1)  # correlated
    model.whiten.weight.data[0].zero_()  # a pruned filter
    model.eval()(x)
    assert not bool(model.whiten.initialised)  # eval passes do not initialise
    model.train()(x)
    assert bool(model.whiten.initialised) and not model.whiten.weight.requires_grad
    assert torch.count_nonzero(model.whiten.weight[0]) == 0
    half = model.whiten.weight.shape[0] // 2
    out = F.conv2d(x, model.whiten.weight[1:half])  # the whitened patch coordinates (bar the pruned one)
    flat = out.permute(1, 0, 2, 3).reshape(half - 1, -1)
    cov = torch.cov(flat)
    off_diagonal = cov - torch.diag(torch.diag(cov))
    assert off_diagonal.abs().max() < 0.05 * torch.diag(cov).min()
    before = model.whiten.weight.clone()
    model(torch.rand(8, 3, 32, 32))
    assert torch.equal(model.whiten.weight, before)  # set once, then frozen
    restored = airbench()
    restored.load_state_dict(model.state_dict())
    assert bool(restored.whiten.initialised) and torch.equal(restored.whiten.weight, before)


def test_airbench_batchnorm_has_a_frozen_unit_scale_and_airbench_momentum() -> None:
    model = airbench()
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(not n.weight.requires_grad and n.bias.requires_grad for n in norms)
    assert all(n.momentum == pytest.approx(0.4) and n.eps == 1e-12 for n in norms)
    model.train()(torch.rand(8, 3, 32, 32))
    assert all(bool((n.weight == 1).all()) for n in norms)
    trainable = airbench(bn_train_scale=True, bn_momentum=0.9)
    assert all(
        n.weight.requires_grad and n.momentum == pytest.approx(0.1)
        for n in trainable.modules()
        if isinstance(n, nn.BatchNorm2d)
    )
    with pytest.raises(InvalidValueError):
        airbench(bn_momentum=1.0)
