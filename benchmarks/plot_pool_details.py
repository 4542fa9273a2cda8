"""Per-example pool metrics of a run: distributions per unlearner, and rankings compared.

Reads a run's ``results.jsonl`` and its artifact store. For every evaluate artifact of a row in
the results (same forget set and seed) that has pools, it takes the per-example details the
evaluate stage stored (``eps-score`` ``epsilon``, ``klom`` ``kl``); where several pool sizes
were evaluated in the same store, the largest pool is used. It draws, per forget set, the
distribution of epsilon and of KLOM per forget example for each unlearner (PNG and SVG), and
writes ``ranking.md``: the unlearners ranked by MIA-Efficacy (``|MIA - MIA of retrain|``, lower
is better), by eps-score (higher is better) and by KLOM (lower is better), with Spearman's rank
correlation of each pool ranking with the MIA-Efficacy ranking. The ``original`` and reference
rows are plotted but not ranked. Epsilon stored as None (infinite: a perfect separation) is
drawn at the top bin edge 6.5.

Example::

    python benchmarks/plot_pool_details.py leaderboards/digits-pools/results.jsonl \\
        --artifacts /tmp/pools-n8/artifacts --out leaderboards/digits-pools
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

EPS_TOP = 6.5
REFERENCES = ("original", "retrain")


def load_details(results: list[dict[str, Any]], root: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(forget set, unlearner) -> the stored details of its evaluate artifact."""
    wanted = {(r["forget_sha256"], r["seed"]) for r in results}
    name_of = {r["forget_sha256"]: r["forget_set"] for r in results}
    metas: dict[str, dict[str, Any]] = {}
    for stage in ("unlearn", "prune", "pool"):
        for path in (root / stage).glob("*/meta.json"):
            meta = json.loads(path.read_text())
            metas[meta["key"]] = meta
    found: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    for path in (root / "evaluate").glob("*/meta.json"):
        meta = json.loads(path.read_text())
        inputs = meta["inputs"]
        model = metas.get(inputs["model"])
        if "pools" not in inputs or model is None:
            continue
        mi = model["inputs"]
        unlearner = mi["unlearner"]["name"] if "unlearner" in mi else "original"
        seed = mi.get("seed", 0 if unlearner == "original" else None)
        size = len(metas[next(iter(inputs["pools"].values()))]["inputs"]["members"])
        if (inputs["forget"], seed) not in wanted and unlearner != "original":
            continue
        slot = (name_of.get(inputs["forget"], "?"), unlearner)
        if slot[0] != "?" and size >= found.get(slot, (0, {}))[0]:
            found[slot] = (size, meta["payload"]["metric_details"])
    return {slot: details for slot, (_, details) in found.items()}


def ranks(values: list[float]) -> np.ndarray:
    """Average ranks (1 = first) of ``values`` in ascending order."""
    order = np.argsort(values, kind="stable")
    out = np.empty(len(values))
    v = np.asarray(values)[order]
    i = 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[i]:
            j += 1
        out[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = ranks(a), ranks(b)
    return float(np.corrcoef(ra, rb)[0, 1])


def ranking(results: list[dict[str, Any]], forget: str) -> tuple[str, dict[str, list[str]]]:
    rows = {r["unlearner"]: r for r in results if r["forget_set"] == forget and not r["unprune"]}
    mia_retrain = rows["retrain"]["metrics"]["mia-efficacy"]
    methods = sorted(u for u in rows if u not in REFERENCES)
    keys = {
        "MIA-Efficacy gap to retrain": [
            abs(rows[u]["metrics"]["mia-efficacy"] - mia_retrain) for u in methods
        ],
        "eps-score": [-rows[u]["metrics"]["eps-score"] for u in methods],
        "KLOM": [rows[u]["metrics"]["klom"] for u in methods],
    }
    orders = {name: [methods[i] for i in np.argsort(v, kind="stable")] for name, v in keys.items()}
    mia = keys["MIA-Efficacy gap to retrain"]
    lines = [f"### forget set `{forget}` ({len(methods)} unlearners; best first)", ""]
    lines += ["| ranking by | order (best first) | Spearman vs MIA-Efficacy |", "| --- | --- | --- |"]
    for name, values in keys.items():
        rho = "-" if name.startswith("MIA") else f"{spearman(mia, values):.2f}"
        lines.append(f"| {name} | {', '.join(orders[name])} | {rho} |")
    lines += ["", f"eps-score vs KLOM Spearman: {spearman(keys['eps-score'], keys['KLOM']):.2f}", ""]
    return "\n".join(lines), orders


def plot(details: dict[tuple[str, str], dict[str, Any]], forget: str, out: Path) -> None:
    names = sorted(u for f, u in details if f == forget)
    names = [n for n in REFERENCES if n in names] + [n for n in names if n not in REFERENCES]
    eps = [
        [EPS_TOP if e is None else min(e, EPS_TOP) for e in details[(forget, n)]["eps-score"]["epsilon"]]
        for n in names
    ]
    kl = [[max(k, 1e-3) for k in details[(forget, n)]["klom"]["kl"] if k is not None] for n in names]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.7 * len(names)), 8), sharex=True)
    axes[0].boxplot(eps, showfliers=True)
    axes[0].set_ylabel("epsilon per forget example\n(6.5 = top bin / infinite)")
    axes[0].set_title(f"per-example pool metrics, forget set {forget}")
    axes[1].boxplot(kl, showfliers=True)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("KLOM per forget example\n(KL, log scale, floor 1e-3)")
    axes[1].set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"pool-details-{forget}.{suffix}", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    results = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    results = [r for r in results if r["status"] == "ok"]
    details = load_details(results, args.artifacts)
    args.out.mkdir(parents=True, exist_ok=True)
    report = ["# Rankings of the unlearners: MIA-Efficacy vs the pool metrics", ""]
    report += [
        f"Generated by `benchmarks/plot_pool_details.py` from `{args.results.name}`. Equal values share "
        "their average rank in Spearman's correlation; the listed order breaks ties by name.",
        "",
    ]
    for forget in sorted({r["forget_set"] for r in results}):
        plot(details, forget, args.out)
        text, _ = ranking(results, forget)
        report.append(text)
    (args.out / "ranking.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
