"""Every number with its noise: the nested design's mean, interval, variance components and
paired comparisons (``unlearnbench/report/noise.py``), checked against known truths."""

from __future__ import annotations

import math
import random
import statistics

import pytest
from scipy import stats as scipy_stats

from unlearnbench.report import compare, noise
from unlearnbench.report.leaderboard import render
from unlearnbench.report.record import ResultRecord


def simulate(
    i: int, j: int, k: int, sd: tuple[float, float, float], seed: int = 0
) -> list[noise.Observation]:
    """y_ijk = 50 + T_i + U_ij + E_ijk with normal effects of the given standard deviations."""
    rng = random.Random(seed)
    out = []
    for a in range(i):
        t = rng.gauss(0, sd[0])
        for b in range(j):
            u = rng.gauss(0, sd[1])
            out += [noise.Observation(a, 1000 * a + b, c, 50 + t + u + rng.gauss(0, sd[2])) for c in range(k)]
    return out


def test_the_anova_estimators_recover_the_variance_components_of_a_balanced_design() -> None:
    """The estimators are unbiased: their mean over 10 simulated studies of 200 train seeds is
    within about 2 standard errors of the true components (9, 4, 1)."""
    summaries = [noise.summarize(simulate(200, 4, 4, (3.0, 2.0, 1.0), seed=s)) for s in range(10)]
    assert all(x is not None and x.n == (200, 4, 4) for x in summaries)
    t, u, e = (statistics.mean(x.components[level] for x in summaries) for level in range(3))  # type: ignore[misc, union-attr]
    assert t == pytest.approx(9.0, rel=0.08) and u == pytest.approx(4.0, rel=0.05)
    assert e == pytest.approx(1.0, rel=0.02)
    shares = summaries[0].shares  # type: ignore[union-attr]
    assert shares is not None and sum(shares) == pytest.approx(1.0) and shares[0] > shares[1] > shares[2]


def test_a_level_with_one_repetition_is_not_separable_and_goes_to_the_level_above() -> None:
    summary = noise.summarize(simulate(300, 1, 5, (1.0, 2.0, 1.0), seed=1))
    assert summary is not None and summary.components[1] is None  # J = 1: U not separable
    assert summary.components[0] == pytest.approx(1.0 + 4.0, rel=0.2)  # T holds T + U
    assert noise.share_text(summary).startswith("T ") and "U -" in noise.share_text(summary)
    only_eval = noise.summarize([noise.Observation(0, 0, k, float(k % 2)) for k in range(10)])
    assert (
        only_eval is not None and noise.share_text(only_eval) == f"sd T - · U - · E {math.sqrt(10 / 36):.2f}"
    )


def test_the_interval_is_a_t_interval_over_train_seed_means_not_over_repetitions() -> None:
    obs = simulate(4, 3, 5, (2.0, 1.0, 1.0), seed=2)
    summary = noise.summarize(obs)
    means = list(noise.train_means(obs).values())
    half = scipy_stats.t.ppf(0.975, 3) * statistics.stdev(means) / math.sqrt(4)
    assert summary is not None and summary.mean == pytest.approx(statistics.mean(means))
    assert summary.half_width == pytest.approx(half)
    # more repetitions of the same originals do not make the interval a t-interval over all values
    flat = (
        scipy_stats.t.ppf(0.975, len(obs) - 1) * statistics.stdev(o.value for o in obs) / math.sqrt(len(obs))
    )
    assert summary.half_width > 1.5 * flat
    assert noise.summarize(obs[:15]).half_width is None  # one train seed: no interval


def test_an_unbalanced_design_weighs_each_train_seed_once() -> None:
    obs = [noise.Observation(0, 0, k, 10.0) for k in range(9)] + [noise.Observation(1, 1, 0, 20.0)]
    summary = noise.summarize(obs)
    assert summary is not None and summary.mean == 15.0 and summary.n == (2, 1, 9)


def test_paired_comparisons_match_scipys_paired_t_test() -> None:
    left = {0: 10.0, 1: 12.0, 2: 11.5, 3: 14.0}
    right = {0: 9.0, 1: 10.5, 2: 11.0, 3: 12.0, 4: 99.0}  # seed 4 has no pair
    found = compare.paired(left, right)
    expected = scipy_stats.ttest_rel([left[s] for s in range(4)], [right[s] for s in range(4)])
    assert found.n == 4 and found.p_value == pytest.approx(expected.pvalue)
    se = statistics.stdev(found.diffs) / 2
    assert found.detectable == pytest.approx((scipy_stats.t.ppf(0.975, 3) + scipy_stats.t.ppf(0.8, 3)) * se)
    assert found.describe().startswith("+1.25 [")


def test_legacy_records_read_as_one_seed_for_every_stage() -> None:
    base = {"protocol": "p", "protocol_version": 1, "protocol_hash": "h", "dataset": "d", "data_copy": "c"}
    old = {**base, "model": "m", "forget_set": "f", "forget_kind": "random", "forget_size": 1}
    old |= {
        "forget_sha256": "s",
        "pruner": "omp",
        "sparsity_target": 0.5,
        "unlearner": "ft",
        "unprune": False,
    }
    old |= {"seed": 7, "schema_version": 3}
    assert dict(ResultRecord.from_dict(old).seeds) == {"train": 7, "unlearn": 7, "eval": 0}
    assert noise.record_seeds(old) == (7, 7, 0)


def board_record(unlearner: str, train: int, rep: int, ev: int, ua: float, ra: float) -> dict:
    info = {n: {"label": n.upper(), "unit": "%", "version": 1, "gap": True} for n in ("ua", "ra")}
    return {
        "protocol": "p", "protocol_version": 1, "protocol_hash": "a" * 64, "dataset": "digits",
        "data_copy": "c", "model": "m", "forget_set": "f", "forget_kind": "random", "forget_size": 10,
        "forget_sha256": "b" * 64, "pruner": "omp", "sparsity_target": 0.9, "sparsity": 0.9,
        "unlearner": unlearner, "unprune": False, "seed": train, "status": "ok",
        "metrics": {"ua": ua, "ra": ra}, "metric_info": info, "metric_names": ["ua", "ra"],
        "device": "cpu", "git": "c" * 40, "schema_version": 4, "row_id": f"{unlearner}{train}{rep}{ev}",
        "reference": "retrain" if unlearner == "retrain" else None,
        "seeds": {"train": train, "unlearn": train + 100 * rep, "eval": ev},
    }  # fmt: skip


def test_the_board_shows_design_intervals_shares_and_marks_methods_like_retrain() -> None:
    rng = random.Random(3)
    rows = []
    for train in range(4):
        base = rng.gauss(0, 1)
        rows.append(board_record("retrain", train, 0, 0, 10 + base, 90 + base))
        for rep in range(2):
            for ev in range(3):
                noisy = rng.gauss(0, 0.3)
                rows.append(board_record("same", train, rep, ev, 10 + base + noisy, 90 + base - noisy))
                rows.append(board_record("far", train, rep, ev, 30 + base + noisy, 70 + base))
    text = render(rows)
    same = next(line for line in text.splitlines() if line.startswith("| same"))
    far = next(line for line in text.splitlines() if line.startswith("| far"))
    assert "4x2x3" in same and "≈" in same and "≈" not in far
    assert "Noise by level" in text and "% (sd T " in text.split("Noise by level")[1]


def test_the_gap_is_the_papers_from_the_mean_columns_with_a_paired_bootstrap_interval() -> None:
    ours = {"ua": {0: 20.0, 1: 10.0, 2: 40.0}, "ra": {0: 90.0, 1: 90.0, 2: 90.0}}
    ref = {"ua": {0: 10.0, 1: 20.0, 2: 30.0}, "ra": {0: 90.0, 1: 90.0, 2: 90.0}}
    found = compare.gap_estimate(ours, ref, ["ua", "ra"])
    assert found is not None and found.value == pytest.approx(abs(70 / 3 - 20) / 2)  # not mean |per-seed|
    assert found.low is not None and found.high is not None and found.low <= found.value <= found.high
    assert found.n == 3 and found.text().count("[") == 1
    assert compare.gap_estimate(ours, ref, ["ua", "ta"]) is None  # a gap metric missing
