"""Per-example forgetting tests against populations of models (numpy only, no torch).

Every function works on per-example arrays: ``[N, n]`` holds one feature per model (N) and
example (n). The feature is the margin ``z_y - log sum_{k != y} exp(z_k)``
(``unlearnbench.api.margins``), which is both LiRA's logit-scaled confidence
``log(p_y / (1 - p_y))`` (Carlini et al., 2022) and the datamodels margin KLOM is defined on.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

EPS_BIN_WIDTH = 0.5
EPS_BINS = 13
"""The challenge bins epsilon with width 0.5 over [0, 6.5): 13 bins, the last one open-ended."""


# --------------------------------------------------------------------------------------------
# NeurIPS 2023 Machine Unlearning Challenge: per-example epsilon, forgetting quality, score
# --------------------------------------------------------------------------------------------
def attack_epsilon(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """The epsilon one attack certifies: ``max(log((1-delta-FPR)/FNR), log((1-delta-FNR)/FPR))``.

    Source: the organizers' "Evaluation for the NeurIPS Machine Unlearning Competition" (2023).
    ``inf`` when both rates are 0 (perfect separation); ``nan`` (discarded) when exactly one is 0.
    """
    fpr = np.asarray(fpr, dtype=np.float64)
    fnr = np.asarray(fnr, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.maximum(1.0 - delta - fpr, 0.0)) - np.log(fnr)
        b = np.log(np.maximum(1.0 - delta - fnr, 0.0)) - np.log(fpr)
        eps = np.fmax(a, b)
    both = (fpr == 0) & (fnr == 0)
    one = (fpr == 0) ^ (fnr == 0)
    return np.where(both, np.inf, np.where(one, np.nan, eps))


def _cut_rates(neg: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thresholds at every midpoint between distinct pooled values (plus both ends) per example,
    with the FPR (negatives above) and FNR (positives at or below) of "positive if above"."""
    values = np.concatenate([neg, pos]).T  # [n, N_neg + N_pos]
    ordered = np.sort(values, axis=1)
    mids = (ordered[:, 1:] + ordered[:, :-1]) / 2
    thresholds = np.concatenate([ordered[:, :1] - 1.0, mids, ordered[:, -1:] + 1.0], axis=1)
    fpr = (neg.T[:, None, :] > thresholds[:, :, None]).mean(axis=2)
    fnr = (pos.T[:, None, :] <= thresholds[:, :, None]).mean(axis=2)
    return thresholds, fpr, fnr


def example_epsilons(
    retrain: np.ndarray, unlearned: np.ndarray, *, delta: float = 1e-6, seed: int = 0
) -> np.ndarray:
    """Per-example epsilon: the strongest of a family of threshold attacks, each scored on models
    it was not fitted on.

    ``retrain`` ``[N_r, n]`` and ``unlearned`` ``[N_u, n]`` are each pool's per-model features.
    Each pool is split in two halves (a random permutation drawn with ``seed``). On one half, for
    each example, the attack is the threshold and direction ("unlearned if above" or "if below")
    of best balanced accuracy; on the other half it gives an FPR (retrained models called
    unlearned) and an FNR (unlearned models called retrained), hence :func:`attack_epsilon`. The
    two halves swap roles, giving two attacks; epsilon(s) is the larger kept one (``inf`` for a
    perfect separation, 0 when both are discarded).

    Source: the organizers' note "Evaluation for the NeurIPS Machine Unlearning Competition"
    (2023): per-example epsilon from the FPR/FNR of a family of attacks, the strongest kept, one
    rate 0 discarded. delta = 1e-6 as in AlbinSou/unlearning-challenge-metric, whose two-fold
    fitting (there a logistic regression) this follows. Deviation: the organizers' attack family
    is not public; scoring every 1-D threshold on the same models instead is biased upward (an
    identical pair of 128-model pools scores a median epsilon near 1.4, F near 0.2).
    """
    r = np.asarray(retrain, dtype=np.float64)
    u = np.asarray(unlearned, dtype=np.float64)
    if r.ndim != 2 or u.ndim != 2 or r.shape[1] != u.shape[1]:
        raise ValueError(f"expected [N_r, n] and [N_u, n] arrays, got {r.shape} and {u.shape}")
    if min(len(r), len(u)) < 2:
        raise ValueError(f"each pool needs at least 2 models, got {len(r)} and {len(u)}")
    rng = np.random.default_rng(seed)
    r_perm, u_perm = rng.permutation(len(r)), rng.permutation(len(u))
    r_folds = np.array_split(r_perm, 2)
    u_folds = np.array_split(u_perm, 2)
    rows = np.arange(r.shape[1])
    attacks = []
    for fit, held in ((0, 1), (1, 0)):
        thresholds, fpr, fnr = _cut_rates(r[r_folds[fit]], u[u_folds[fit]])
        above = 1.0 - (fpr + fnr) / 2  # balanced accuracy of "unlearned if above"
        best = np.argmax(np.maximum(above, 1.0 - above), axis=1)
        flip = (1.0 - above)[rows, best] > above[rows, best]
        t = thresholds[rows, best]
        held_fpr = (r[r_folds[held]] > t).mean(axis=0)
        held_fnr = (u[u_folds[held]] <= t).mean(axis=0)
        held_fpr, held_fnr = np.where(flip, 1 - held_fpr, held_fpr), np.where(flip, 1 - held_fnr, held_fnr)
        attacks.append(attack_epsilon(held_fpr, held_fnr, delta))
    eps = np.stack(attacks)
    best_eps = np.max(np.where(np.isnan(eps), -np.inf, eps), axis=0)
    return np.maximum(best_eps, 0.0)


def epsilon_bin_scores(epsilons: np.ndarray) -> np.ndarray:
    """H(s) = 2 / 2^k for epsilon in bin k = 1..13 of width 0.5 (bin 13 also takes epsilon >= 6.5
    and inf), i.e. 1 for epsilon < 0.5 down to 2^-12. Source: the challenge's evaluation note."""
    eps = np.asarray(epsilons, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        index = np.where(np.isfinite(eps), np.floor(eps / EPS_BIN_WIDTH), EPS_BINS - 1)
    index = np.clip(index, 0, EPS_BINS - 1)
    return 2.0 / 2.0 ** (index + 1)


def forgetting_quality(epsilons: np.ndarray) -> float:
    """F = the mean of H(s) over the forget set (the challenge's forgetting quality)."""
    return float(np.mean(epsilon_bin_scores(epsilons)))


def challenge_score(f: float, ra_u: float, ra_r: float, ta_u: float, ta_r: float) -> float:
    """The challenge's final score ``F x RA_U / RA_R x TA_U / TA_R`` (accuracies of the unlearned
    and the retrained pools on the retain and test sets). The runtime cutoff is not applied."""
    return f * (ra_u / ra_r) * (ta_u / ta_r)


# --------------------------------------------------------------------------------------------
# U-LiRA (Hayes et al., 2024): per-example likelihood-ratio attack with shadow models
# --------------------------------------------------------------------------------------------
def _normal_logpdf(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * math.log(2 * math.pi)


def lira_scores(
    target: np.ndarray,
    shadow: np.ndarray,
    membership: np.ndarray,
    *,
    global_variance: bool = True,
    min_std: float = 1e-3,
) -> np.ndarray:
    """Per-example log likelihood ratio ``log N(t; mu_in, s_in) - log N(t; mu_out, s_out)``.

    ``target`` ``[n]`` is the attacked model's feature, ``shadow`` ``[N, n]`` the shadow models'
    and ``membership`` ``[N, n]`` whether each shadow saw each example ("in"). The Gaussians are
    fitted per example to the in and out shadow features (Carlini et al., 2022, online LiRA; Hayes
    et al., 2024, U-LiRA, arXiv 2403.01218, whose in-models are trained with the example and then
    unlearned by the method under test). ``global_variance`` uses one standard deviation per group
    pooled over examples, as LiRA advises for few shadow models. ``nan`` where an example has no
    in or no out shadow. Positive scores say "was trained on".
    """
    x = np.asarray(shadow, dtype=np.float64)
    m = np.asarray(membership, dtype=bool)
    t = np.asarray(target, dtype=np.float64)
    n_in, n_out = m.sum(axis=0), (~m).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu_in = np.where(m, x, 0.0).sum(axis=0) / n_in
        mu_out = np.where(~m, x, 0.0).sum(axis=0) / n_out
        dev_in = np.where(m, (x - mu_in) ** 2, 0.0)
        dev_out = np.where(~m, (x - mu_out) ** 2, 0.0)
        if global_variance:
            ok = (n_in > 0) & (n_out > 0)
            s_in = np.full(t.shape, math.sqrt(dev_in[:, ok].sum() / max(1, n_in[ok].sum())))
            s_out = np.full(t.shape, math.sqrt(dev_out[:, ok].sum() / max(1, n_out[ok].sum())))
        else:
            s_in = np.sqrt(dev_in.sum(axis=0) / n_in)
            s_out = np.sqrt(dev_out.sum(axis=0) / n_out)
        s_in, s_out = np.maximum(s_in, min_std), np.maximum(s_out, min_std)
        score = _normal_logpdf(t, mu_in, s_in) - _normal_logpdf(t, mu_out, s_out)
    return np.where((n_in > 0) & (n_out > 0), score, np.nan)


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """ROC AUC of scores separating ``positive`` from ``negative`` (Mann-Whitney U, ties 1/2);
    nan entries are dropped."""
    p = np.asarray(positive, dtype=np.float64)
    q = np.asarray(negative, dtype=np.float64)
    p, q = p[~np.isnan(p)], q[~np.isnan(q)]
    if len(p) == 0 or len(q) == 0:
        return float("nan")
    greater = (p[:, None] > q[None, :]).sum()
    ties = (p[:, None] == q[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(p) * len(q)))


def balanced_accuracy(positive: np.ndarray, negative: np.ndarray, threshold: float = 0.0) -> float:
    """``(TPR + TNR) / 2`` of the decision "positive if score > threshold" (0: the likelihood-ratio
    test at equal priors), so an unbalanced forget / held-out pair still gives 0.5 at chance."""
    p = np.asarray(positive, dtype=np.float64)
    q = np.asarray(negative, dtype=np.float64)
    p, q = p[~np.isnan(p)], q[~np.isnan(q)]
    if len(p) == 0 or len(q) == 0:
        return float("nan")
    return float(0.5 * ((p > threshold).mean() + (q <= threshold).mean()))


# --------------------------------------------------------------------------------------------
# KLOM (Georgiev et al., 2024; RoyRin/data-unlearning-bench)
# --------------------------------------------------------------------------------------------
def binned_kl(
    p: np.ndarray, q: np.ndarray, *, bins: int = 20, smoothing: float = 1e-5, clip: float = 100.0
) -> float:
    """KL(P || Q) of two 1-D samples through histograms on shared bins.

    As data-unlearning-bench computes KLOM: values clipped to [-clip, clip], ``bins`` equal-width
    bins over the combined range of both samples, bin frequencies plus ``smoothing`` (then
    renormalised here). 0 when every value is equal.
    """
    a = np.clip(np.asarray(p, dtype=np.float64), -clip, clip)
    b = np.clip(np.asarray(q, dtype=np.float64), -clip, clip)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi <= lo:
        return 0.0
    edges = np.linspace(lo, hi, bins + 1)
    hp = np.histogram(a, edges)[0] / len(a) + smoothing
    hq = np.histogram(b, edges)[0] / len(b) + smoothing
    hp, hq = hp / hp.sum(), hq / hq.sum()
    return float(np.sum(hp * np.log(hp / hq)))


def gaussian_kl(p: np.ndarray, q: np.ndarray, *, min_std: float = 1e-2) -> float:
    """KL(N(mu_p, s_p^2) || N(mu_q, s_q^2)) of normals fitted to two 1-D samples:
    ``log(s_q / s_p) + (s_p^2 + (mu_p - mu_q)^2) / (2 s_q^2) - 1/2`` (standard deviations floored
    at ``min_std``)."""
    a = np.asarray(p, dtype=np.float64)
    b = np.asarray(q, dtype=np.float64)
    sp, sq = max(float(a.std()), min_std), max(float(b.std()), min_std)
    return float(math.log(sq / sp) + (sp**2 + (a.mean() - b.mean()) ** 2) / (2 * sq**2) - 0.5)


def klom(
    unlearned: np.ndarray,
    retrain: np.ndarray,
    *,
    estimator: Literal["binned", "gaussian"] = "gaussian",
    bins: int = 20,
) -> np.ndarray:
    """Per-example KLOM: KL(unlearned-pool margins || retrain-pool margins) for each example.

    ``unlearned`` ``[N_u, n]`` and ``retrain`` ``[N_r, n]`` are margins. Source: Georgiev et al.
    (2024), "Attribute-to-Delete" (KLOM = KL divergence of the unlearned models' margin
    distribution from the oracles'), and RoyRin/data-unlearning-bench, which estimates it with
    20-bin histograms over 100 oracles (``estimator="binned"``). ``"gaussian"`` fits a normal to
    each pool instead: a deviation for small pools, where a 20-bin histogram of a handful of
    models is dominated by empty bins and is far from 0 even for identical distributions.
    """
    u = np.asarray(unlearned, dtype=np.float64)
    r = np.asarray(retrain, dtype=np.float64)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(f"expected [N_u, n] and [N_r, n] arrays, got {u.shape} and {r.shape}")
    if estimator == "binned":
        return np.array([binned_kl(u[:, i], r[:, i], bins=bins) for i in range(u.shape[1])])
    if estimator == "gaussian":
        return np.array([gaussian_kl(u[:, i], r[:, i]) for i in range(u.shape[1])])
    raise ValueError(f"unknown KLOM estimator {estimator!r}; valid choices: binned, gaussian")


def summarise(values: np.ndarray) -> dict[str, float]:
    """Median, 95th percentile and mean of per-example values (nan dropped)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"median": float("nan"), "p95": float("nan"), "mean": float("nan")}
    return {"median": float(np.median(v)), "p95": float(np.percentile(v, 95)), "mean": float(v.mean())}
