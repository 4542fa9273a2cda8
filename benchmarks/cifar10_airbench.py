"""Time-to-accuracy of the ``cifar10-airbench`` protocol's original model, and bf16 vs fp32 speed.

Reads the protocol (``plugins/unlearnbench_protocols/cifar10-airbench.toml`` unless
``--protocol``; ``--set key=value`` overrides as on the CLI), loads CIFAR-10 with the protocol's
dataset plugin and hold-out, and in one process:

1. times ``--ratio-steps`` training steps of the protocol's model and batch size with the engine
   in fp32 and under bf16 autocast, both channels-last, and under bf16 in contiguous (NCHW)
   format (after 2 untimed steps each, same batches) and prints the images/s, the bf16/fp32 and
   the channels_last/contiguous ratios (bf16 only where the device supports it natively);
2. trains the original model exactly as the pipeline does (``Engine.fit`` on the 45,000-image
   pool with the protocol's recipe and precision) and prints its test accuracy (fp32
   evaluation, no TTA), wall time and training images/s.

The load average (``os.getloadavg``) is printed before and after: on a shared machine the wall
time is an upper bound. Target on two CPU cores: >= 90% test accuracy in <= 5 minutes.

Examples::

    OMP_NUM_THREADS=2 python benchmarks/cifar10_airbench.py --data-root /tmp/cifar
    python benchmarks/cifar10_airbench.py --data-root /tmp/cifar --limit 2000 --ratio-steps 2 \\
        --set recipes.fast.epochs=1
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from unlearnbench.config.protocol import load_protocol, parse_override_value
from unlearnbench.data.images import ImageSplit
from unlearnbench.data.prepare import prepare
from unlearnbench.registry.catalog import Registry
from unlearnbench.registry.host import create_host
from unlearnbench.training.engine import Engine, TrainRecipe, bf16_supported

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROTOCOL = ROOT / "plugins" / "unlearnbench_protocols" / "cifar10-airbench.toml"


def load_text() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def step_rate(
    engine: Engine, model: nn.Module, split: ImageSplit, recipe: TrainRecipe, steps: int, seed: int
) -> float:
    """Images/s of ``steps`` training steps (2 untimed warm-up steps first)."""
    stream = engine.batches(split, recipe.batch_size, engine.generator(seed), augment=True)
    batches = list(itertools.islice(stream, min(steps + 2, engine.steps_per_epoch(split, recipe.batch_size))))
    optimizer = engine.optimizer(model, recipe)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    seen, start = 0, 0.0
    for i in range(steps + 2):
        if i == 2:
            start = time.perf_counter()
        x, y = batches[i % len(batches)]
        with engine._autocast():
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i >= 2:
            seen += x.shape[0]
    if engine.cuda:
        torch.cuda.synchronize()
    return seen / (time.perf_counter() - start)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, required=True, help="CIFAR-10 pickles or image folder")
    parser.add_argument("--protocol", type=Path, default=DEFAULT_PROTOCOL)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratio-steps", type=int, default=10, help="timed steps per precision (0: skip)")
    parser.add_argument("--limit", type=int, default=0, help="keep at most N images per split (0: all)")
    parser.add_argument("--no-train", action="store_true", help="only the bf16/fp32 ratio")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    overrides = []
    for item in args.overrides:
        key, _, value = item.partition("=")
        overrides.append((key, parse_override_value(value)))
    registry = Registry(create_host())
    protocol = load_protocol(args.protocol, overrides, registry)
    recipe = protocol.recipe
    dataset = registry.create("dataset", protocol.data.dataset, protocol.data.params)
    splits = dataset.load(args.data_root, download=False)  # type: ignore[attr-defined]
    limit = args.limit or protocol.data.limit
    data = prepare(splits, protocol.data.holdout_fraction, protocol.data.split_seed, limit)
    device = torch.device(args.device)
    pool, val, test = data.pool.to(device), data.val.to(device), data.test.to(device)
    plugin = registry.create("model", protocol.model.name, protocol.model.params)
    _, channels, size, _ = pool.images.shape

    def fresh() -> nn.Module:
        torch.manual_seed(args.seed)
        return plugin.build(num_classes=splits.num_classes, in_channels=channels, image_size=size)  # type: ignore[attr-defined]

    where = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    )
    print(
        f"protocol {protocol.name} v{protocol.version} ({protocol.short_hash}); "
        f"recipe {protocol.recipe_name}: {recipe}"
    )
    print(
        f"model {protocol.model.name} {protocol.model.params}; data copy {splits.copy}: "
        f"pool {len(pool)}, val {len(val)}, test {len(test)}"
    )
    print(f"device {device} ({where}); native bf16: {bf16_supported(device)}; torch {torch.__version__}")
    print(f"before: {load_text()}")
    if args.ratio_steps > 0:
        rates = {}
        for name, bf16, channels_last in (
            ("fp32", False, True),
            ("bf16", True, True),
            ("bf16 contiguous", True, False),
        ):
            engine = Engine(device, splits.mean, splits.std, bf16=bf16, channels_last=channels_last)
            rates[name] = step_rate(
                engine, engine.prepare(fresh()), pool, recipe, args.ratio_steps, args.seed
            )
        print(
            f"step throughput, batch {recipe.batch_size}, channels_last: fp32 {rates['fp32']:,.0f} img/s, "
            f"bf16 autocast {rates['bf16']:,.0f} img/s, bf16/fp32 ratio {rates['bf16'] / rates['fp32']:.2f}x"
        )
        print(
            f"bf16 contiguous (NCHW) {rates['bf16 contiguous']:,.0f} img/s: "
            f"channels_last/contiguous ratio {rates['bf16'] / rates['bf16 contiguous']:.2f}x"
        )
    if args.no_train:
        return 0
    engine = Engine(device, splits.mean, splits.std)
    model = engine.prepare(fresh())
    if engine.cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    engine.fit(model, pool, recipe, seed=args.seed, val=val)
    if engine.cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    accuracy = engine.accuracy(model, test)
    images = recipe.epochs * len(pool)
    print(
        f"train: {recipe.epochs} epochs, {images:,} images in {wall:.1f} s ({wall / 60:.2f} min), "
        f"{images / wall:,.0f} img/s, precision {'bf16 autocast' if engine.bf16 else 'fp32'}"
    )
    print(f"test accuracy (fp32, no TTA, {splits.copy}): {accuracy:.2f}%")
    print(f"after: {load_text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
