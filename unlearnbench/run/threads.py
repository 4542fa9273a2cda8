"""Contention-safe CPU defaults: OpenMP's wait policy and torch's thread count.

On a small shared machine torch's defaults (one thread per core, OpenMP threads that spin while
they wait for work) make two runs fight over the cores: a node measured at about 1 s took
140-240 s with two runs on two loaded cores. The defaults here keep a node under contention near
its idle time (``benchmarks/contention.py`` measures the ratio):

- :func:`passive_openmp` sets ``OMP_WAIT_POLICY=PASSIVE`` (waiting OpenMP threads sleep instead of
  spinning) when the variable is unset and torch is not imported yet (OpenMP reads it once, when
  torch loads it); ``import unlearnbench`` calls it first thing;
- :func:`default_threads` is the thread count ``--threads`` defaults to (:func:`threads_for`).
"""

from __future__ import annotations

import os
import sys

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
MAX_DEFAULT_THREADS = 2
"""Small nodes (digits, CIFAR at batch 512 on a CPU) gain little from more intra-op threads; on
two cores a digits node took 3.1 s on 1 thread and 4.7 s on 2 (``benchmarks/contention.py``)."""


def passive_openmp() -> bool:
    """Set ``OMP_WAIT_POLICY=PASSIVE`` unless it is set or torch is already imported; True when
    the policy in effect for torch is passive."""
    if WAIT_POLICY_ENV not in os.environ and "torch" not in sys.modules:
        os.environ[WAIT_POLICY_ENV] = "PASSIVE"
    return os.environ.get(WAIT_POLICY_ENV, "").upper() == "PASSIVE"


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def busy_cores() -> float:
    """The 1-minute load average: roughly how many cores other processes keep busy (0 where the
    platform has none)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def default_threads(cores: int | None = None, load: float | None = None) -> int:
    """torch's CPU thread count when ``--threads`` is not given: half the cores other work leaves
    free (``cores - round(load)``), at most 2 and at least 1, so that a second run, or another
    CPU-heavy process, still finds a core of its own (on two cores: 1). ``cores`` and ``load``
    default to :func:`available_cores` and :func:`busy_cores`."""
    cores = available_cores() if cores is None else cores
    load = busy_cores() if load is None else load
    free = cores - int(load + 0.5)
    return max(1, min(MAX_DEFAULT_THREADS, free // 2))


def threads_for(requested: int | None, current: int) -> int:
    """The thread count a run uses: ``requested`` (``--threads``), else :func:`default_threads`
    but never more than ``current`` (torch's count, lowered already by ``OMP_NUM_THREADS`` or a
    caller's ``torch.set_num_threads``)."""
    return requested if requested is not None else max(1, min(default_threads(), current))
