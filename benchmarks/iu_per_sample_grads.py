"""IU's per-sample gradients: batched with torch.func (vmap of grad) vs the reference's
batch-size-1 loop, on the same model (small-cnn, eval mode) and the same digits examples.

Prints both times (float32), the speed-up ratio and the largest absolute difference between the
two results (float32, and float64 on the same model and data).
Run: PYTHONPATH=.:plugins OMP_NUM_THREADS=1 python benchmarks/iu_per_sample_grads.py
"""

from __future__ import annotations

import argparse
import time

import torch
from unlearnbench_datasets.digits import Digits
from unlearnbench_models.small_cnn import SmallCNN
from unlearnbench_unlearners.influence import per_sample_grads, per_sample_grads_loop

from unlearnbench.training.engine import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=512)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--chunk", type=int, default=128)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = Digits().load(None, download=False)
    engine = Engine("cpu", data.mean, data.std)
    model = (
        SmallCNN(SmallCNN.Params(width=args.width)).build(num_classes=10, in_channels=1, image_size=8).eval()
    )
    x, y = next(engine.batches(data.train.head(args.examples), args.examples, None, shuffle=False))
    per_sample_grads(model, x[:8], y[:8])  # warm-up

    start = time.perf_counter()
    batched = torch.cat(
        [
            per_sample_grads(model, x[i : i + args.chunk], y[i : i + args.chunk])
            for i in range(0, len(x), args.chunk)
        ]
    )
    t_batched = time.perf_counter() - start
    start = time.perf_counter()
    looped = per_sample_grads_loop(model, x, y)
    t_loop = time.perf_counter() - start

    params = sum(p.numel() for p in model.parameters())
    print(f"examples {len(x)}, parameters {params}, torch threads {torch.get_num_threads()}")
    print(f"batch-size-1 loop: {t_loop:.3f} s")
    print(f"batched (vmap):    {t_batched:.3f} s")
    print(f"ratio: {t_loop / t_batched:.1f}x")
    print(f"max abs difference, float32: {float((batched - looped).abs().max()):.2e}")
    # float32 rounding alone moves either result by ~1e-3 here (both are that far from float64),
    # so equality of the two computations is checked in float64 on the same model and data.
    m64, x64 = model.double(), x.double()
    b64 = torch.cat(
        [
            per_sample_grads(m64, x64[i : i + args.chunk], y[i : i + args.chunk])
            for i in range(0, len(x), args.chunk)
        ]
    )
    print(f"max abs difference, float64: {float((b64 - per_sample_grads_loop(m64, x64, y)).abs().max()):.2e}")


if __name__ == "__main__":
    main()
