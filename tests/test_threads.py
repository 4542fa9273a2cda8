"""Contention-safe CPU defaults: OpenMP threads sleep while they wait, and a run takes half the
free cores (at most two torch threads; one on two cores or a loaded machine), so two runs on two
cores do not oversubscribe them. (Timings: ``benchmarks/contention.py``; no test here is timed.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from unlearnbench.run.threads import default_threads, threads_for

ROOT = Path(__file__).resolve().parents[1]


CASES = [
    (2, 0.0, 1),  # two cores: one each for two runs
    (2, 3.5, 1),
    (1, 0.0, 1),
    (3, 0.0, 1),
    (4, 0.0, 2),
    (4, 2.2, 1),
    (16, 3.0, 2),
    (16, 15.5, 1),
]


@pytest.mark.parametrize(("cores", "load", "expected"), CASES)
def test_default_threads(cores: int, load: float, expected: int) -> None:
    assert default_threads(cores, load) == expected


def test_an_explicit_or_lower_thread_count_is_kept() -> None:
    assert threads_for(3, 1) == 3  # --threads wins
    assert threads_for(None, 1) == 1  # never above torch's count (OMP_NUM_THREADS=1, a caller's)
    assert 1 <= threads_for(None, 64) <= 2


def wait_policy(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport os; print(os.environ.get('OMP_WAIT_POLICY', 'unset'))"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()[-1]


def test_importing_unlearnbench_first_makes_openmp_wait_passively() -> None:
    assert wait_policy("import unlearnbench") == "PASSIVE"
    assert wait_policy("import unlearnbench", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"  # the user's wins
    assert wait_policy("import torch, unlearnbench") == "unset"  # too late to change: left alone


def test_the_cli_lowers_torchs_thread_count_on_a_loaded_machine(tmp_path: Path) -> None:
    code = (
        "import torch\n"
        "import unlearnbench.run.threads as threads\n"
        "from unlearnbench.cli import cli\n"
        "threads.busy_cores = lambda: 99.0  # every core busy with other work\n"
        "torch.set_num_threads(2)  # what torch gives a two-core machine\n"
        "args = ['plan', '--limit', '120', '--unlearner', 'ft', '--no-unprune', '--metric', 'ua',"
        f" '--device', 'cpu', '--out', {str(tmp_path)!r}]\n"
        "cli.main(args, standalone_mode=False)\n"
        "print('THREADS', torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split("THREADS")[-1].split() == ["1"]
