"""Training throughput: the unlearnbench engine against a reference-style PyTorch loop.

Both loops train a freshly built model (default: the CIFAR ResNet-18, ``resnet18``) on the same
uint8 images (decoded with PIL), in the same process on the same device, with SGD (lr 0.1,
momentum 0.9, weight decay 5e-4), batch 256 and random-crop (padding 4) + horizontal-flip
augmentation:

- ``engine``: ``unlearnbench.Engine.fit`` on an ``ImageSplit`` that lives on the device; batches
  are cropped, flipped and normalised there, and on CUDA the engine adds bf16 autocast and
  channels_last.
- ``baseline``: the reference code's pipeline (Unlearn-Sparse ``trainer/train.py``): a
  torchvision-style Dataset that turns each HWC uint8 image into a PIL image and applies
  ``RandomCrop(size, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``; a
  ``DataLoader`` (shuffle, ``--workers`` processes, pinned memory on CUDA); fp32; and, as the
  reference does, ``loss.item()`` and top-1 accuracy after every step.

The reference's CIFAR/SVHN/Tiny loaders actually hard-code ``num_workers=0`` and no pinning, so
the default of 4 workers makes this baseline faster than the reference; as there, the workers
are not persistent and restart every epoch.

Each loop first runs ``--warmup`` epochs that are not timed (cuDNN autotuning, allocator), then
``--epochs`` timed epochs, with ``torch.cuda.synchronize`` at both ends of the timed span on
CUDA. The table gives images/s and seconds/epoch for each loop and the
ratio engine/baseline. Targets on one H100 with CIFAR-10 (50,000 images): the engine at least
50,000 images/s and at least 10x the baseline.

Examples::

    python benchmarks/train_throughput.py --data-root ~/data/cifar10-folder --device cuda
    python benchmarks/train_throughput.py --synthetic 50000 --device cuda
    python benchmarks/train_throughput.py --synthetic 512 --epochs 1 --device cpu --workers 0
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from unlearnbench_models.resnet import ResNet18, ResNet18Tiny, ResNet50
from unlearnbench_models.vgg import VGG16BN

from unlearnbench.data.images import ImageSplit
from unlearnbench.registry.components import ModelPlugin
from unlearnbench.training.engine import Engine, TrainRecipe

MODELS: dict[str, type[ModelPlugin]] = {cls.name: cls for cls in (ResNet18, ResNet50, VGG16BN, ResNet18Tiny)}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
LOOPS = ("engine", "baseline")


@dataclass(frozen=True)
class Timing:
    """The timed epochs of one loop."""

    loop: str
    images: int
    seconds: float
    epochs: int

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    @property
    def seconds_per_epoch(self) -> float:
        return self.seconds / self.epochs


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------
def synthetic_split(n: int, *, num_classes: int = 10, size: int = 32, seed: int = 0) -> ImageSplit:
    """``n`` uniformly random uint8 RGB images of side ``size`` with random labels."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, num_classes, (n,), generator=gen)
    return ImageSplit(images, labels)


def _decode(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)


def load_image_folder(root: Path, *, limit: int | None = None) -> tuple[ImageSplit, int]:
    """Decode ``root/train/<class>/*`` (or ``root/<class>/*`` when there is no ``train``) as uint8.

    Returns the split (optionally only the first ``limit`` files in sorted order) and the number
    of classes. All images must have the same size.
    """
    base = root / "train" if (root / "train").is_dir() else root
    classes = sorted(p.name for p in base.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"no class folders under {base}")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        files += [(p, label) for p in sorted((base / name).iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    files = files[:limit] if limit is not None else files
    if not files:
        raise SystemExit(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {base}")
    with ThreadPoolExecutor() as pool:
        decoded = list(pool.map(_decode, [p for p, _ in files]))
    shapes = {tuple(t.shape) for t in decoded}
    if len(shapes) != 1:
        raise SystemExit(f"images under {base} differ in size: {sorted(shapes)[:4]}")
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return ImageSplit(torch.stack(decoded), labels), len(classes)


def channel_stats(split: ImageSplit) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation on the [0, 1] scale."""
    x = split.images.double().div_(255.0)
    return (
        tuple(x.mean(dim=(0, 2, 3)).tolist()),
        tuple(x.std(dim=(0, 2, 3)).tolist()),
    )


class ReferenceStyleDataset(Dataset):
    """Like ``torchvision.datasets.CIFAR10``: HWC uint8 array in memory, a PIL image per item."""

    def __init__(self, split: ImageSplit, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.data = np.ascontiguousarray(split.images.permute(0, 2, 3, 1).cpu().numpy())
        self.targets = split.labels.cpu().tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = Image.fromarray(self.data[index])
        return self.transform(image), self.targets[index]


def reference_transform(
    size: int, mean: tuple[float, ...], std: tuple[float, ...]
) -> Callable[[Image.Image], torch.Tensor]:
    """The reference's training transform."""
    return transforms.Compose(
        [
            transforms.RandomCrop(size, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


# --------------------------------------------------------------------------------------------
# Loops
# --------------------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(
    model: nn.Module,
    split: ImageSplit,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    epochs: int,
    warmup: int,
    batch_size: int,
    seed: int = 0,
) -> Timing:
    """Train with ``Engine.fit`` for ``warmup + epochs`` epochs; time the last ``epochs``."""
    engine = Engine(device, mean, std)
    model = engine.prepare(model)
    split = split.to(device)
    recipe = TrainRecipe(epochs=warmup + epochs, batch_size=batch_size, schedule="constant")
    marks: list[float] = []

    def mark(_: int, __: nn.Module) -> None:
        _sync(device)
        marks.append(time.perf_counter())

    _sync(device)
    start = time.perf_counter()
    engine.fit(model, split, recipe, seed=seed, on_epoch_end=mark)
    begin = marks[warmup - 1] if warmup else start
    return Timing("engine", epochs * len(split), marks[-1] - begin, epochs)


def time_baseline(
    model: nn.Module,
    split: ImageSplit,
    device: torch.device,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    *,
    epochs: int,
    warmup: int,
    batch_size: int,
    workers: int,
) -> Timing:
    """Train with a reference-style DataLoader loop in fp32; time the last ``epochs`` epochs."""
    dataset = ReferenceStyleDataset(split, reference_transform(split.images.shape[-1], mean, std))
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
    )
    model = model.to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    begin = 0.0
    for epoch in range(warmup + epochs):
        if epoch == warmup:
            _sync(device)
            begin = time.perf_counter()
        loss_sum, correct, seen = 0.0, 0, 0
        for x, y in loader:
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            output = model(x)
            loss = F.cross_entropy(output, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * y.shape[0]
            correct += int((output.argmax(dim=1) == y).sum())
            seen += y.shape[0]
    _sync(device)
    return Timing("baseline", epochs * len(dataset), time.perf_counter() - begin, epochs)


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
def format_table(timings: Sequence[Timing]) -> str:
    """A plain-text table of the timings plus the engine/baseline ratio when both ran."""
    lines = [f"{'loop':<10} {'images/s':>12} {'s/epoch':>10}"]
    lines += [f"{t.loop:<10} {t.images_per_second:>12,.0f} {t.seconds_per_epoch:>10.3f}" for t in timings]
    by_loop = {t.loop: t for t in timings}
    if set(LOOPS) <= set(by_loop):
        ratio = by_loop["engine"].images_per_second / by_loop["baseline"].images_per_second
        lines.append(f"engine/baseline: {ratio:.2f}x")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-root", type=Path, help="image folder: DIR/train/<class>/*.jpg")
    source.add_argument("--synthetic", type=int, metavar="N", help="N random uint8 32x32 RGB images")
    parser.add_argument("--limit", type=int, help="use only the first N files of --data-root")
    parser.add_argument("--model", choices=sorted(MODELS), default="resnet18")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per loop")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs before them")
    parser.add_argument("--workers", type=int, default=4, help="DataLoader workers of the baseline")
    parser.add_argument("--loops", choices=(*LOOPS, "both"), default="both")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.warmup < 0 or args.batch_size < 1 or args.workers < 0:
        parser.error("need --epochs >= 1, --warmup >= 0, --batch-size >= 1 and --workers >= 0")
    if args.synthetic is not None and args.synthetic < 1:
        parser.error("--synthetic needs N >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.synthetic is not None:
        split, num_classes = synthetic_split(args.synthetic, seed=args.seed), 10
        mean, std = CIFAR10_MEAN, CIFAR10_STD
        source = f"synthetic ({args.synthetic} images)"
    else:
        split, num_classes = load_image_folder(args.data_root, limit=args.limit)
        mean, std = channel_stats(split)
        source = f"{args.data_root} ({len(split)} images, {num_classes} classes)"
    _, channels, _, size = split.images.shape
    plugin = MODELS[args.model]()
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{torch.get_num_threads()} threads"
    print(f"data: {source}, {channels}x{size}x{size}; model: {args.model}; device: {device} ({where})")
    print(f"batch {args.batch_size}; {args.warmup} warm-up + {args.epochs} timed epochs")
    print(f"torch {torch.__version__}; baseline DataLoader workers: {args.workers}")

    def fresh_model() -> nn.Module:
        torch.manual_seed(args.seed)
        return plugin.build(num_classes=num_classes, in_channels=channels, image_size=size)

    loops = LOOPS if args.loops == "both" else (args.loops,)
    timings = []
    common = {"epochs": args.epochs, "warmup": args.warmup, "batch_size": args.batch_size}
    if "engine" in loops:
        timings.append(time_engine(fresh_model(), split, device, mean, std, seed=args.seed, **common))
    if "baseline" in loops:
        timings.append(time_baseline(fresh_model(), split, device, mean, std, workers=args.workers, **common))
    print(format_table(timings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
