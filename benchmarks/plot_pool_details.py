"""Per-example pool metrics of a run: distributions per unlearner, and rankings compared.

Reads a run's ``results.jsonl`` and its artifact store. For every plain (not un-pruned) row with
pool metrics it finds, among the artifacts the row used (``node_keys``), the evaluate artifact
whose metrics are the row's, and takes the per-example details stored there (``eps-score``
``epsilon``, ``klom`` ``kl``). For one seed (``--seed``, default the smallest), per forget set
and sparsity, it draws the distribution of epsilon and of KLOM per forget example for each
unlearner (``pool-details-<forget>-sparsity<s>``, PNG and SVG), and writes ``ranking.md``: the
unlearners ranked by MIA-Efficacy and by U-LiRA AUC (each by ``|value - retrain's value|``,
lower is better), by eps-score (higher is better) and by KLOM (lower is better), with Spearman's
rank correlation of each ranking with the MIA-Efficacy one. The ``original`` and reference rows
are plotted but not ranked. Epsilon stored as None (infinite: a perfect separation) is drawn at
the top bin edge 6.5.

Example::

    python benchmarks/plot_pool_details.py leaderboards/digits-pools/results.jsonl \\
        --artifacts /tmp/pools-n8/artifacts --out leaderboards/digits-pools
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

EPS_TOP = 6.5
REFERENCES = ("original", "retrain", "gold")
POOL_METRICS = ("eps-score", "klom")
Setting = tuple[str, float]
"""(forget set, target sparsity): one table of the board, one plot and one ranking here."""


def load_details(results: list[dict[str, Any]], root: Path) -> dict[str, dict[str, Any]]:
    """row_id -> the per-example details of the evaluate artifact that gave the row its metrics."""
    found: dict[str, dict[str, Any]] = {}
    for row in results:
        wanted = {m: row["metrics"].get(m) for m in POOL_METRICS}
        for key in row.get("node_keys") or ():
            meta_path = root / "evaluate" / key / "meta.json"
            if not meta_path.exists():
                continue
            payload = json.loads(meta_path.read_text())["payload"]
            if all(payload["metrics"].get(m) == v for m, v in wanted.items()):
                found[row["row_id"]] = payload["metric_details"]
                break
    return found


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


def setting_name(setting: Setting) -> str:
    return f"`{setting[0]}` at sparsity {setting[1]:g}"


def ranking(rows: dict[str, dict[str, Any]], setting: Setting) -> str:
    """The ranking table of one setting's rows (unlearner -> record)."""

    def gap(metric: str) -> Callable[[str], float]:
        return lambda u: abs(rows[u]["metrics"][metric] - rows["retrain"]["metrics"][metric])

    keys = {
        "MIA-Efficacy gap to retrain": gap("mia-efficacy"),
        "U-LiRA AUC gap to retrain": gap("u-lira"),
        "eps-score": lambda u: -rows[u]["metrics"]["eps-score"],
        "KLOM": lambda u: rows[u]["metrics"]["klom"],
    }
    optional = {  # the distance and representation metrics, where the run computed them
        "js-retrain-forget": ("JS to retrain on D_f", lambda u: rows[u]["metrics"]["js-retrain-forget"]),
        "cka-retrain": ("CKA to retrain on D_f", lambda u: -rows[u]["metrics"]["cka-retrain"]),
        "knn-forget": ("kNN-Df gap to retrain", gap("knn-forget")),
    }
    keys.update({label: key for m, (label, key) in optional.items() if m in rows["retrain"]["metrics"]})
    needed = [
        "mia-efficacy",
        "u-lira",
        "eps-score",
        "klom",
        *(m for m in optional if m in rows["retrain"]["metrics"]),
    ]
    complete = {u for u in rows if all(rows[u]["metrics"].get(m) is not None for m in needed)}
    methods = sorted(u for u in complete if u not in REFERENCES)
    dropped = sorted(u for u in rows if u not in complete and u not in REFERENCES)
    values = {name: [key(u) for u in methods] for name, key in keys.items()}
    mia = values["MIA-Efficacy gap to retrain"]
    lines = [f"### {setting_name(setting)} ({len(methods)} unlearners; best first)", ""]
    if dropped:
        lines += [f"Left out (a metric failed on their row): {', '.join(dropped)}.", ""]
    lines += ["| ranking by | order (best first) | Spearman vs MIA-Efficacy |", "| --- | --- | --- |"]
    for name, v in values.items():
        order = ", ".join(methods[i] for i in np.argsort(v, kind="stable"))
        rho = "-" if name.startswith("MIA") else f"{spearman(mia, v):.2f}"
        lines.append(f"| {name} | {order} | {rho} |")
    lines += ["", f"eps-score vs KLOM Spearman: {spearman(values['eps-score'], values['KLOM']):.2f}", ""]
    return "\n".join(lines)


def plot(details: dict[str, dict[str, Any]], setting: Setting, out: Path) -> None:
    """Boxplots of epsilon and KLOM per forget example, one box per unlearner (unlearner ->
    details)."""
    # a row whose metric failed (e.g. non-finite outputs) has no per-example values of it: left out
    usable = {n: d for n, d in details.items() if "eps-score" in d and "klom" in d}
    names = [n for n in REFERENCES if n in usable] + sorted(n for n in usable if n not in REFERENCES)
    details = usable
    eps = [
        [EPS_TOP if e is None else min(e, EPS_TOP) for e in details[n]["eps-score"]["epsilon"]] for n in names
    ]
    kl = [[max(k, 1e-3) for k in details[n]["klom"]["kl"] if k is not None] for n in names]
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 0.7 * len(names)), 8), sharex=True)
    axes[0].boxplot(eps, showfliers=True)
    axes[0].set_ylabel("epsilon per forget example\n(6.5 = top bin / infinite)")
    axes[0].set_title(f"per-example pool metrics, forget set {setting[0]}, sparsity {setting[1]:g}")
    axes[1].boxplot(kl, showfliers=True)
    axes[1].set_yscale("log")
    axes[1].set_ylabel("KLOM per forget example\n(KL, log scale, floor 1e-3)")
    axes[1].set_xticks(range(1, len(names) + 1), names, rotation=45, ha="right")
    fig.tight_layout()
    for suffix in ("png", "svg"):
        fig.savefig(out / f"pool-details-{setting[0]}-sparsity{setting[1]:g}.{suffix}", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--artifacts", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, help="The seed whose rows to use (default: the smallest).")
    args = parser.parse_args()
    results = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    results = [r for r in results if r["status"] == "ok" and not r["unprune"] and "eps-score" in r["metrics"]]
    seed = min(r["seed"] for r in results) if args.seed is None else args.seed
    results = [r for r in results if r["seed"] == seed]
    details = load_details(results, args.artifacts)
    args.out.mkdir(parents=True, exist_ok=True)
    report = ["# Rankings of the unlearners: MIA-Efficacy vs the pool metrics", ""]
    report += [
        f"Generated by `benchmarks/plot_pool_details.py` from `{args.results.name}` (seed {seed}). "
        "Equal values share "
        "their average rank in Spearman's correlation; the listed order breaks ties by name.",
        "",
    ]
    for setting in sorted({(r["forget_set"], r["sparsity_target"]) for r in results}):
        rows = {r["unlearner"]: r for r in results if (r["forget_set"], r["sparsity_target"]) == setting}
        plot({u: details[r["row_id"]] for u, r in rows.items() if r["row_id"] in details}, setting, args.out)
        report.append(ranking(rows, setting))
    (args.out / "ranking.md").write_text("\n".join(report))
    print("\n".join(report))


if __name__ == "__main__":
    main()
