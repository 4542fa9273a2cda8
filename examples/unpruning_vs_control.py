"""The closing note of an un-pruning leaderboard, computed from its ``results.jsonl``: for each
forget set and unlearner, un-pruning (``reprune``) against its ``control`` (same budget, original
mask) on IoU with the gold mask (higher is better) and KL(gold || model) on D_f and on the test
set (lower is better), as the mean over the seeds both rows have and the number of seeds where
``reprune`` is better.

    python examples/unpruning_vs_control.py leaderboards/digits-unpruning/results.jsonl
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

METRICS = (("gold-iou", 1), ("kl-gold-forget", -1), ("kl-gold-test", -1))
UNLEARNERS = ("ft", "ga", "l1-sparse")


def note(records: list[dict]) -> str:
    ok = [r for r in records if r["status"] == "ok"]
    lines, wins = [], {m: [0, 0] for m, _ in METRICS}
    for forget in sorted({r["forget_set"] for r in ok}):
        for unlearner in UNLEARNERS:
            parts = []
            for metric, sign in METRICS:
                by = {
                    u: {r["seed"]: r["metrics"][metric] for r in ok if r["forget_set"] == forget
                        and r["unlearner"] == unlearner and r["unpruner"] == u}
                    for u in ("reprune", "control")
                }  # fmt: skip
                seeds = sorted(set(by["reprune"]) & set(by["control"]))
                if not seeds:
                    continue
                better = sum(sign * (by["reprune"][s] - by["control"][s]) > 0 for s in seeds)
                wins[metric][0] += better
                wins[metric][1] += len(seeds)
                mean = {u: statistics.fmean(by[u][s] for s in seeds) for u in by}
                parts.append(
                    f"{metric} {mean['reprune']:.3f} vs {mean['control']:.3f} ({better}/{len(seeds)} seeds)"
                )
            if parts:
                lines.append(f"- `{forget}` · {unlearner}: " + "; ".join(parts))
    total = "; ".join(
        f"{m}: reprune better in {w}/{n} (forget set, unlearner, seed) cases" for m, (w, n) in wins.items()
    )
    return "\n".join(
        ["reprune vs control, mean over seeds (seeds where reprune is better):", "", *lines, "", total]
    )


if __name__ == "__main__":
    path = Path(sys.argv[1])
    sys.stdout.write(
        note([json.loads(line) for line in path.read_text().splitlines() if line.strip()]) + "\n"
    )
