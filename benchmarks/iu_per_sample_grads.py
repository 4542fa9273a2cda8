"""IU's per-sample gradients: the reference's batch-size-1 loop vs the batched vmap path
(torch.func) vs the batched hook path (closed forms per layer), on the same model (small-cnn, eval
mode) and the same digits examples, in one run.

Prints the three times (float32, best of --repeats interleaved runs), each batched path's
speed-up over the loop, and per path the largest absolute difference from the loop in float32 and
float64 (same model and data), the largest relative difference per example in float32
(||a_i - b_i|| / ||b_i||) and how many examples differ by more than 1e-5 in float32; then the
time of one plain batched forward and backward pass, a floor for any batched path. Examples that
differ sit at a kink: a quarter of the untrained model's max-pool windows over the digits' flat
background hold exactly tied values, and which one takes the gradient depends on the last bit of
each kernel's arithmetic (vmap's grouped convolutions round differently from the loop's).
Run: PYTHONPATH=.:plugins OMP_NUM_THREADS=1 python benchmarks/iu_per_sample_grads.py [--width 32]
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from unlearnbench_datasets.digits import Digits
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_unlearners.per_sample import (
    hooks_apply,
    per_sample_grads_hooks,
    per_sample_grads_loop,
    per_sample_grads_vmap,
)

from unlearnbench.training.engine import Engine

Method = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


def chunked(method: Method, model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int) -> torch.Tensor:
    return torch.cat([method(model, x[i : i + chunk], y[i : i + chunk]) for i in range(0, len(x), chunk)])


def mean_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One batched forward and backward pass (the mean gradient): a floor for any batched path."""
    loss = F.cross_entropy(model(x), y)
    return torch.cat([g.reshape(1, -1) for g in torch.autograd.grad(loss, list(model.parameters()))], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = Digits().load(None, download=False)
    engine = Engine("cpu", data.mean, data.std)
    model = (
        SmallCNN(SmallCNN.Params(width=args.width)).build(num_classes=10, in_channels=1, image_size=8).eval()
    )
    x, y = next(engine.batches(data.train.head(args.examples), args.examples, None, shuffle=False))
    params = sum(p.numel() for p in model.parameters())
    print(f"examples {len(x)}, width {args.width}, parameters {params}, chunk {args.chunk}, ", end="")
    print(f"torch threads {torch.get_num_threads()}, hook path applies: {hooks_apply(model)}")

    methods: dict[str, tuple[Method, int]] = {
        "loop": (per_sample_grads_loop, len(x)),
        "vmap": (per_sample_grads_vmap, args.chunk),
        "hooks": (per_sample_grads_hooks, args.chunk),
        "floor": (mean_grad, args.chunk),
    }
    best = dict.fromkeys(methods, float("inf"))
    outs: dict[str, torch.Tensor] = {}
    for method, chunk in methods.values():  # warm-up
        chunked(method, model, x[:8], y[:8], chunk)
    for _ in range(args.repeats):  # interleaved, best of each: the machine may be shared
        for name, (method, chunk) in methods.items():
            start = time.perf_counter()
            outs[name] = chunked(method, model, x, y, chunk)
            best[name] = min(best[name], time.perf_counter() - start)
    m64, x64 = copy.deepcopy(model).double(), x.double()
    looped, looped64 = outs["loop"], per_sample_grads_loop(m64, x64, y)
    print(f"batch-size-1 loop: {best['loop']:.3f} s (best of {args.repeats})")
    for name in ("vmap", "hooks"):
        method, chunk = methods[name]
        diff = outs[name] - looped
        rel = float((diff.norm(dim=1) / looped.norm(dim=1)).max())
        off = int((diff.abs().amax(dim=1) > 1e-5).sum())
        d64 = float((chunked(method, m64, x64, y, chunk) - looped64).abs().max())
        print(
            f"{name:6s} {best[name]:.3f} s, {best['loop'] / best[name]:5.1f}x the loop; max abs diff float32 "
            f"{float(diff.abs().max()):.2e}, float64 {d64:.2e}; max rel diff float32 {rel:.2e}; "
            f"examples off by > 1e-5 (float32): {off}/{len(x)}"
        )
    floor = best["floor"]
    print(
        f"floor: one batched forward+backward (mean gradient) {floor:.3f} s, "
        f"{best['loop'] / floor:5.1f}x the loop"
    )


if __name__ == "__main__":
    main()
