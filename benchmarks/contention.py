"""A digits node's time idle and under contention, with torch's defaults and with ours, in one run.

The node is the quickstart's ``original`` stage (train the small CNN on the digits pool with the
protocol's recipe), computed by a fresh process exactly as ``unlearnbench run`` would with no
``--threads``. Each setting is timed

- idle: one process alone;
- two runs: two such processes at once (the node time is the slower one's);
- beside a hog: one process next to another CPU-heavy process (a torch matmul loop with torch's
  defaults, as another user's job would be);

and the ratio of each contended time to the idle time of the same setting is printed. Settings:
``torch`` (torch imported first: one thread per core, OpenMP's own wait policy) and ``ours``
(``import unlearnbench`` first: ``OMP_WAIT_POLICY=PASSIVE``, threads from
``unlearnbench.run.threads.default_threads``, which picks 1 thread when the 1-minute load is at
least cores - 1); ``passive-2`` is ours with 2 threads whatever the load (what ours picks on an
idle two-core machine). The issue's target: ours within 2x of idle.

Examples::

    python benchmarks/contention.py                  # both settings, the protocol's 20 epochs
    python benchmarks/contention.py --epochs 5 --settings ours
    python benchmarks/contention.py --repeats 3      # medians of three alternating measurements
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HOG = "import torch\na = torch.randn(384, 384)\nwhile True:\n    a = torch.tanh(a @ a)\n"


def child(setting: str, epochs: int) -> None:
    """Compute the node once in this process and print its seconds as JSON."""
    import importlib
    import tempfile

    if setting == "torch":
        importlib.import_module("torch")  # first: torch's thread count and OpenMP's own wait policy
    # the first unlearnbench import sets OMP_WAIT_POLICY=PASSIVE unless torch is loaded already
    threads = importlib.import_module("unlearnbench.run.threads")

    import torch

    from unlearnbench.config.protocol import load_protocol
    from unlearnbench.registry.catalog import Registry
    from unlearnbench.registry.host import create_host
    from unlearnbench.run.context import RunContext, RunSettings
    from unlearnbench.run.plan import plan
    from unlearnbench.run.stages import STAGES

    if setting == "ours":
        torch.set_num_threads(threads.default_threads())  # what the CLI does without --threads
    elif setting == "passive-2":  # what ours picks on an idle two-core machine
        torch.set_num_threads(min(2, threads.available_cores()))
    registry = Registry(create_host(autoload=True))
    overrides = [("train.epochs", epochs), ("unlearn.unlearners", ["ft"]), ("evaluate.metrics", ["ua"])]
    protocol = load_protocol(registry.protocol_path("digits-quickstart"), overrides, registry)
    ctx = RunContext(protocol, registry, RunSettings(out=Path(tempfile.gettempdir()), device="cpu"))
    node = next(n for n in plan(protocol, ctx.plan_inputs()).nodes.values() if n.stage == "original")
    start = time.perf_counter()
    STAGES[node.stage](ctx, node, {})
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": torch.get_num_threads()}))


def launch(setting: str, epochs: int) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--child", setting, "--epochs", str(epochs)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env={**os.environ})


def finish(proc: subprocess.Popen[str], timeout: float) -> float:
    """The node seconds a process printed; ``inf`` when it took longer than ``timeout`` (killed)."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return float("inf")
    if proc.returncode != 0:
        raise SystemExit(f"a node process failed (exit {proc.returncode})")
    found = json.loads(out.strip().splitlines()[-1])
    print(f"         node: {found['seconds']:.2f} s with {found['threads']} threads", flush=True)
    return float(found["seconds"])


def measure(setting: str, epochs: int, timeout: float) -> dict[str, float]:
    """Idle, two-run and beside-a-hog node seconds of ``setting``."""
    print(f"{setting}: idle", flush=True)
    idle = finish(launch(setting, epochs), timeout)
    print(f"{setting}: two runs at once", flush=True)
    pair = [launch(setting, epochs) for _ in range(2)]
    start = time.perf_counter()
    two = max(finish(p, max(1.0, timeout - (time.perf_counter() - start))) for p in pair)
    print(f"{setting}: beside a CPU-heavy process", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    hog = subprocess.Popen([sys.executable, "-c", HOG], env=env)
    try:
        time.sleep(2.0)
        beside = finish(launch(setting, epochs), timeout)
    finally:
        hog.kill()
        hog.wait()
    return {"idle": idle, "two_runs": two, "beside_hog": beside}


def report(setting: str, runs: list[dict[str, float]], timeout: float) -> str:
    """One line: the median idle and contended seconds over ``runs`` and the median ratios (each
    repeat's contended time over its own idle time)."""

    def shown(t: float) -> str:
        return f"> {timeout:.0f} s" if t == float("inf") else f"{t:.2f} s"

    idle = statistics.median(r["idle"] for r in runs)
    parts = [f"{setting:9s} idle {shown(idle)}"]
    for name in ("two_runs", "beside_hog"):
        ratio = statistics.median(r[name] / r["idle"] for r in runs)
        seconds = statistics.median(r[name] for r in runs)
        parts.append(f"{name.replace('_', ' ')} {shown(seconds)} (ratio {ratio:.2f})")
    return "   ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="Training epochs of the node (protocol: 20).")
    parser.add_argument("--settings", default="ours,torch", help="Comma-separated: ours, torch, passive-2.")
    parser.add_argument("--repeats", type=int, default=1, help="Measure each setting this often (medians).")
    parser.add_argument("--timeout", type=float, default=240.0, help="Seconds a node process may take.")
    parser.add_argument("--child", choices=["ours", "torch", "passive-2"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.epochs)
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores, 1-minute load {os.getloadavg()[0]:.2f} before the first node", flush=True)
    settings = [s.strip() for s in args.settings.split(",") if s.strip()]
    results: dict[str, list[dict[str, float]]] = {s: [] for s in settings}
    for _ in range(max(1, args.repeats)):  # settings alternate, so drifting background load hits each
        for setting in settings:
            results[setting].append(measure(setting, args.epochs, args.timeout))
    print(f"1-minute load {os.getloadavg()[0]:.2f} after the last node")
    for setting, runs in results.items():
        print(report(setting, runs, args.timeout))


if __name__ == "__main__":
    main()
