"""Published leaderboards: every committed folder regenerates unchanged; the claims check's verdicts.

Regeneration check: README.md byte-identical; the same plot files; each SVG byte-identical when
it was written by the installed matplotlib version (SVG carries no date and a fixed hash salt,
so it is reproducible for one matplotlib; its ``Matplotlib vX`` creator line names the version).
PNG files are only checked to exist: their pixels depend on the font rasteriser.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import matplotlib
import pytest
from click.testing import CliRunner
from records import base_record

from unlearnbench.cli import cli
from unlearnbench.errors import InvalidValueError
from unlearnbench.report import claims, publish
from unlearnbench.report.stats import INCONCLUSIVE, NOT_APPLICABLE, NOT_SUPPORTED, SUPPORTED, Verdict, load

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
PUBLISHED = sorted(p for p in BOARDS.iterdir() if (p / publish.RESULTS).exists())
GAP_INFO = {
    name: {"label": name.upper(), "unit": "%", "version": 1, "higher_is_better": None, "gap": True}
    for name in ("ua", "ra")
}
GAP_INFO["mask-iou"] = {"label": "Mask-IoU", "unit": "", "version": 1, "higher_is_better": True, "gap": False}


def record(unlearner: str, seed: int, ua: float, **extra: Any) -> dict[str, Any]:
    """A schema-2 record; ``ua`` and ``ra`` (default 100) are the gap metrics."""
    base: dict[str, Any] = base_record(
        unlearner,
        seed,
        sparsity_target=0.0,
        metrics={"ua": ua, "ra": 100.0},
        metric_info=GAP_INFO,
        metric_names=["ua", "ra", "mask-iou"],
        device="cpu",
        schema_version=2,
        reference="retrain" if unlearner == "retrain" else None,
        versions={
            "pruner": "omp@1",
            **({"unlearner": f"{unlearner}@1"} if unlearner != "original" else {}),
        },
        params={"unlearner": {"epochs": 3}},
    )
    base.update(extra)
    base["row_id"] = json.dumps(
        [
            base[k]
            for k in (
                "protocol_hash",
                "forget_set",
                "sparsity_target",
                "unlearner",
                "unprune",
                "unpruner",
                "seed",
            )
        ]
    )
    return base


def sparsity_records(dense_ua: list[float], sparse_ua: list[float]) -> list[dict[str, Any]]:
    """Retrain at UA 100 on every seed; ft's UA per seed dense and at 95%."""
    rows = []
    for seed, (dense, sparse) in enumerate(zip(dense_ua, sparse_ua, strict=True)):
        for target, ua in ((0.0, dense), (0.95, sparse)):
            rows.append(record("retrain", seed, 100.0, sparsity_target=target))
            rows.append(record("ft", seed, ua, sparsity_target=target))
    return rows


@pytest.mark.parametrize("folder", PUBLISHED, ids=[p.name for p in PUBLISHED])
def test_committed_leaderboards_regenerate_unchanged(folder: Path, tmp_path: Path) -> None:
    written = publish.regenerate(folder, tmp_path)
    assert (tmp_path / publish.README).read_text() == (folder / publish.README).read_text()
    files = publish.plot_files(publish.read_records_of(folder))
    assert sorted(p.name for p in written if p.name != publish.README) == sorted(files)
    creator = f"Matplotlib v{matplotlib.__version__},"
    for name in files:
        assert (folder / name).stat().st_size > 0, f"{folder.name}/{name} is missing"
        committed = (folder / name).read_bytes()
        if name.endswith(".svg") and creator.encode() in committed:
            assert (tmp_path / name).read_bytes() == committed, f"{folder.name}/{name} differs"


def test_published_markdown_never_wraps_a_paragraph(tmp_path: Path) -> None:
    """Every text line of a README is a whole paragraph: no line continues the previous one."""
    for folder in PUBLISHED:
        lines = (folder / publish.README).read_text().split("\n")
        for before, line in itertools.pairwise(lines):
            if before and line and not line.startswith(("|", "#", "!")):
                assert before.startswith(("|", "#")), f"{folder.name}: wrapped line {line[:40]!r}"


def test_verdict_rule() -> None:
    assert Verdict(()).label == NOT_APPLICABLE
    assert Verdict((5.0, 6.0)).label == INCONCLUSIVE  # too few seeds however large
    assert Verdict((5.0, 6.0, 7.0)).label == SUPPORTED
    assert Verdict((0.5, -1.0, 3.0)).label == INCONCLUSIVE  # mean 0.83 < 2 SE (1.17)
    assert Verdict((-1.0, -2.0, 0.5)).label == NOT_SUPPORTED


def test_claim_a_follows_the_gap_at_each_sparsity() -> None:
    shrinks = claims.sparsity_shrinks_gap(load(sparsity_records([20.0, 30.0, 25.0], [90.0, 95.0, 92.0])))
    assert [c.verdict.label for c in shrinks] == [SUPPORTED]
    assert shrinks[0].paper == "25.78 → 11.50"  # Jia et al. Table 3, class-wise FT
    grows = claims.sparsity_shrinks_gap(load(sparsity_records([90.0, 95.0, 92.0], [20.0, 30.0, 25.0])))
    assert [c.verdict.label for c in grows] == [NOT_SUPPORTED]
    few = claims.sparsity_shrinks_gap(load(sparsity_records([20.0, 30.0], [90.0, 95.0])))
    assert [c.verdict.label for c in few] == [INCONCLUSIVE]


def test_claim_b_compares_l1_sparse_with_ft_class_wise_only() -> None:
    rows = [record("l1-sparse", s, 99.0 + s / 10) for s in range(3)] + [
        record("ft", s, 20.0 + s) for s in range(3)
    ]
    checks = claims.l1_sparse_beats_ft(load(rows))
    ua = next(c for c in checks if "· ua" in c.where)
    assert ua.verdict.label == SUPPORTED and ua.verdict.describe().startswith("+78.")
    random = [{**r, "forget_kind": "random"} for r in rows]
    assert claims.l1_sparse_beats_ft(load(random)) == []


def test_claim_c_pairs_unpruners_with_control_and_says_which_iou() -> None:
    def unpruned(unpruner: str, seed: int, iou: float) -> dict[str, Any]:
        metrics = {"ua": 50.0, "ra": 99.0, "mask-iou": iou}
        return record("ft", seed, 0.0, sparsity_target=0.95, unprune=True, unpruner=unpruner, metrics=metrics)

    rows = [unpruned("reprune", s, 0.8 + s / 100) for s in range(3)] + [
        unpruned("control", s, 0.5) for s in range(3)
    ]
    metric, checks = claims.unpruning_beats_control(load(rows))
    assert metric == "mask-iou" and [c.verdict.label for c in checks] == [SUPPORTED]
    text = claims.render_claims(rows)
    assert "IoU with the retain topology" in text and "| supported |" in text
    metric, checks = claims.unpruning_beats_control(load([r for r in rows if r["unpruner"] != "control"]))
    assert [c.verdict.label for c in checks] == [NOT_APPLICABLE]


def test_publish_merges_renders_and_refuses_a_second_protocol(tmp_path: Path) -> None:
    rows = sparsity_records([20.0, 30.0, 25.0], [90.0, 95.0, 92.0])
    failed = {**record("ga", 0, 0.0), "status": "failed", "error": "RuntimeError: boom", "metrics": {}}
    publish.publish(tmp_path, rows[:4], {"unlearner:ft@1": {"epochs": 10}})
    written = publish.publish(tmp_path, [*rows[4:], failed], {})
    assert len(publish.read_records_of(tmp_path)) == len(rows) + 1
    readme = (tmp_path / publish.README).read_text()
    assert "RuntimeError: boom" in readme and "| unlearner | `ft@1` | epochs=3 |" in readme
    assert "defaults unknown; all: epochs=3" in readme  # retrain@1 has no defaults in components.json
    svg = (tmp_path / "gap.svg").read_bytes()
    publish.regenerate(tmp_path, tmp_path / "again")
    assert (tmp_path / "again" / "gap.svg").read_bytes() == svg
    assert {p.name for p in written} >= {
        publish.README,
        *publish.plot_files(publish.read_records_of(tmp_path)),
    }
    with pytest.raises(InvalidValueError, match="one protocol"):
        publish.publish(tmp_path, [record("ft", 0, 1.0, protocol="q", row_id="x")], {})


def test_plot_command_writes_png_and_svg(tmp_path: Path) -> None:
    results = tmp_path / "results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in sparsity_records([20.0], [90.0])))
    out = tmp_path / "plots"
    result = CliRunner().invoke(cli, ["plot", str(results), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        publish.plot_files(sparsity_records([20.0], [90.0]))
    )
