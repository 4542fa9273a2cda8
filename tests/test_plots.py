"""Plots people can read: one style per method in every plot, reference lines, intervals, no empty
figure, and ``plot --metric`` for any metric (plugin metrics included)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest
from click.testing import CliRunner
from records import base_record
from scipy.stats import t

from unlearnbench.cli import cli
from unlearnbench.report import plots, publish

INFO = {
    "ua": {"label": "UA", "unit": "%", "gap": True},
    "ra": {"label": "RA", "unit": "%", "gap": True},
    "gold-iou": {"label": "IoU-gold", "unit": "", "gap": False},
    "seed-baseline-iou": {"label": "IoU-seed-baseline", "unit": "", "gap": False},
    "forget-loss": {"label": "Forget loss", "unit": "nats", "gap": False},
}


def record(
    unlearner: str, seed: int, target: float, metrics: dict[str, float], **extra: Any
) -> dict[str, Any]:
    base: dict[str, Any] = base_record(
        unlearner,
        seed,
        sparsity_target=target,
        metrics=metrics,
        metric_info={k: INFO[k] for k in metrics},
        metric_names=list(metrics),
        device="cpu",
        schema_version=3,
        reference={"original": "original", "retrain": "retrain", "gold": "gold"}.get(unlearner),
    )
    base.update(extra)
    base["row_id"] = json.dumps(
        [base["sparsity_target"], unlearner, base["unpruner"], seed, base["forget_set"]]
    )
    return base


def board(seeds: int = 3) -> list[dict[str, Any]]:
    """A cifar10-airbench-like board: 12 methods (18 method x sparsity entries), gold-iou and its
    seed baseline at 0.95; gold at IoU 1.0."""
    rows = []
    for seed in range(seeds):
        for target in (0.0, 0.95):
            for i, unlearner in enumerate(("original", "retrain", "ft", "ga", "l1-sparse")):
                metrics = {"ua": 10.0 * i + seed, "ra": 90.0 - i + seed / 10}
                if target:
                    metrics |= {
                        "gold-iou": 0.40 + i / 100 + seed / 100,
                        "seed-baseline-iou": 0.30 + seed / 100,
                    }
                rows.append(record(unlearner, seed, target, metrics))
            if target:
                rows.append(
                    record(
                        "gold",
                        seed,
                        target,
                        {"ua": 99.0, "ra": 99.0, "gold-iou": 1.0, "seed-baseline-iou": 0.3 + seed / 100},
                    )
                )
                for unlearner in ("ft", "ga", "l1-sparse"):
                    for unpruner in ("reprune", "control"):
                        metrics = {
                            "ua": 50.0,
                            "ra": 80.0,
                            "gold-iou": 0.45,
                            "seed-baseline-iou": 0.30 + seed / 100,
                        }
                        rows.append(record(unlearner, seed, target, metrics, unprune=True, unpruner=unpruner))
    return rows


def legend_styles(fig: Any) -> dict[str, tuple[str, str]]:
    """method -> (colour, marker) of every point drawn; fails when one method is drawn in two styles
    or the legend does not name each method once."""
    found: dict[str, tuple[str, str]] = {}
    for ax in fig.axes:
        for container in ax.containers:
            line = container.lines[0]
            style = (line.get_color(), line.get_marker())
            assert found.setdefault(container.get_label(), style) == style
    (legend,) = fig.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert [label for label in labels if label in found] == sorted(found, key=labels.index)
    assert len(set(labels)) == len(labels) and set(found) <= set(labels)
    return found


def test_every_method_has_one_distinct_style_in_every_plot() -> None:
    rows = board()
    figures = plots.make_figures(rows)
    methods = {r["unlearner"] + (f" + {r['unpruner']}" if r["unprune"] else "") for r in rows}
    tradeoff = legend_styles(figures["tradeoff"])
    assert set(tradeoff) == methods and len(methods) == 12
    assert len(set(tradeoff.values())) == len(methods)  # N methods, N distinct (colour, marker) pairs
    assert len({colour for colour, _ in tradeoff.values()}) == len(methods)  # and N distinct colours
    for name in ("gap", "iou"):
        for method, style in legend_styles(figures[name]).items():
            assert style == tradeoff[method], f"{method} looks different in {name}"
    # the legend sits right of every panel, outside the data area
    fig = figures["tradeoff"]
    fig.canvas.draw()
    legend_left = fig.legends[0].get_window_extent().x0
    assert all(ax.get_window_extent().x1 <= legend_left for ax in fig.axes if ax.get_visible())
    styles = plots.method_styles([f"m{i}" for i in range(234)])
    assert len(set(styles.values())) == 234
    assert len({s.color for s in list(styles.values())[:26]}) == 26
    for fig in figures.values():
        plt.close(fig)


def test_iou_draws_gold_and_the_seed_baseline_as_reference_lines() -> None:
    fig = plots.make_figures(board())["iou"]
    (ax,) = [a for a in fig.axes if a.get_visible()]
    assert "gold" not in [label.get_text() for label in ax.get_xticklabels()]
    _, high = ax.get_ylim()
    assert high < 1.0, "gold's IoU of 1.0 stretches the axis"
    baseline = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_ydata()[0] for line in baseline] == [pytest.approx(0.31)]  # mean of 0.30, 0.31, 0.32
    assert any("gold (reference): 1.000" in text.get_text() for text in ax.texts)
    assert "seed baseline (gold vs gold at another seed)" in [
        t.get_text() for t in fig.legends[0].get_texts()
    ]
    plt.close(fig)


def test_bars_are_95_percent_intervals_only_where_there_are_several_seeds() -> None:
    def yerr(fig: Any, panel_title: str) -> list[float]:
        ax = next(a for a in fig.axes if a.get_title() == panel_title)
        out = []
        for container in ax.containers:
            if container.has_yerr:
                (segment, *_) = container.lines[2][-1].get_segments()
                out.append((segment[1][1] - segment[0][1]) / 2)
        return out

    three = plots.make_figures(board(seeds=3))["tradeoff"]
    half = t.ppf(0.975, 2) * 1.0 / math.sqrt(3)  # UA = 10 i + seed: sd 1 over seeds 0, 1, 2
    assert yerr(three, "forget class0 · dense") == [pytest.approx(half)] * 5
    one = plots.make_figures(board(seeds=1))["tradeoff"]
    assert yerr(one, "forget class0 · dense") == []
    plt.close(three)
    plt.close(one)


def test_a_plot_without_data_is_never_written(tmp_path: Path) -> None:
    rows = [r for r in board(seeds=1) if not r["unprune"] and r["unlearner"] != "gold"]
    for r in rows:
        r["metrics"] = {k: v for k, v in r["metrics"].items() if k in ("ua", "ra")}
    (tmp_path / "iou.png").write_bytes(b"an empty figure published earlier")
    written = plots.write_plots(rows, tmp_path)
    assert sorted(p.name for p in written) == ["gap.png", "gap.svg", "tradeoff.png", "tradeoff.svg"]
    assert not (tmp_path / "iou.png").exists() and not (tmp_path / "iou.svg").exists()
    assert publish.plot_files(rows) == ["tradeoff.png", "tradeoff.svg", "gap.png", "gap.svg"]
    assert "iou.png" not in publish.render_readme(rows, {})
    assert plots.write_plots([{**r, "status": "failed"} for r in rows], tmp_path / "none") == []


def test_plot_metric_draws_any_metric_including_a_plugin_metric(tmp_path: Path) -> None:
    # forget-loss is the example plugin's metric (examples/unlearnbench-example-plugin)
    rows = [
        record(u, seed, 0.5, {"ua": 1.0, "ra": 2.0, "forget-loss": loss + seed})
        for seed in range(2)
        for u, loss in (("original", 0.1), ("ga", 3.0))
    ]
    fig = plots.metric_figure(rows, "forget-loss")
    (ax,) = [a for a in fig.axes if a.get_visible()]
    drawn = {
        label.get_text(): container.lines[0].get_ydata()[0]
        for label, container in zip(ax.get_xticklabels(), ax.containers, strict=True)
    }
    assert drawn == {"original": pytest.approx(0.6), "ga": pytest.approx(3.5)}
    assert ax.get_ylabel() == "Forget loss (nats)"
    plt.close(fig)
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "plots"
    result = CliRunner().invoke(cli, ["plot", str(results), "-o", str(out), "--metric", "forget-loss"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["metric-forget-loss.png", "metric-forget-loss.svg"]
    bad = CliRunner().invoke(cli, ["plot", str(results), "-o", str(out), "--metric", "nope"])
    assert bad.exit_code == 2 and "unknown metric 'nope'" in bad.output and "forget-loss" in bad.output


def test_repetitions_are_averaged_per_train_seed_before_plotting() -> None:
    """Plots draw one point per train seed (its mean over repetitions), so their intervals are the
    tables' intervals over train seeds, not over every repetition."""
    from unlearnbench.report.stats import load, train_seed_records

    rows = [
        {
            **record("ft", seed, 0.0, {"ua": ua, "ra": 99.0}),
            "row_id": f"{seed}-{rep}",
            "seeds": {"train": seed, "unlearn": seed + rep, "eval": 0},
        }
        for seed, values in ((0, (10.0, 30.0)), (1, (50.0, 70.0)))
        for rep, ua in enumerate(values)
    ]
    collapsed = train_seed_records(load(rows))
    assert sorted(r.metrics["ua"] for r in collapsed) == [20.0, 60.0]
