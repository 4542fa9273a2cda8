"""A leaderboard table as data, and its markdown (:mod:`unlearnbench.report.leaderboard` builds
it from records; ``show`` and the site render the same data)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_CELL_ESCAPES = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "\n": " ", "\r": " "}
)


def escape(value: Any) -> str:
    """``value`` as text that stays one markdown table cell and no HTML: ``&``, ``<``, ``>``, ``|``
    and backticks become entities, line breaks spaces."""
    return str(value).translate(_CELL_ESCAPES)


@dataclass(frozen=True)
class Table:
    """One leaderboard table as data (the markdown, ``show`` and the site render it): ``title``
    and ``caption`` are markdown; ``rows`` hold each column's text (not markdown-escaped) and
    ``values`` the number a column sorts by (the mean; None for text); ``metrics`` are the
    (metric name, column) pairs, ``shares`` the noise by level by method and column, ``notes``
    the footnotes."""

    key: Mapping[str, Any]
    title: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[Mapping[str, Any], ...]
    values: tuple[Mapping[str, float | None], ...] = ()
    metrics: tuple[tuple[str, str], ...] = ()
    shares: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        """The table as markdown, every cell, header and note escaped (:func:`escape`); ``title``
        and ``caption`` are markdown already (their variable parts escaped where they are made)."""
        rows = [{escape(c): escape(row.get(c, "")) for c in self.columns} for row in self.rows]
        table = pd.DataFrame(rows, columns=[escape(c) for c in self.columns])
        footer = "".join(f"\n{escape(note)}\n" for note in self.notes)
        body = table.to_markdown(index=False)
        return f"### {self.title}\n\n{self.caption}\n\n{body}\n{footer}{self._shares()}"

    def _shares(self) -> str:
        """The variance shares table (percent of the separable variance from training, unlearning
        and evaluation), or nothing when no row has more than one level."""
        used = {c for by in self.shares.values() for c in by}
        columns = [c for _, c in self.metrics if c in used]
        if not columns:
            return ""
        rows = [
            {"Method": escape(m), **{escape(c): escape(by.get(c, "-")) for c in columns}}
            for m, by in self.shares.items()
            if by
        ]
        return (
            "\nNoise by level (T = train seeds, U = unlearning repetitions, E = evaluation repetitions): "
            "each level's share of the variance where two or more are separable, and each variance "
            "component's standard deviation (ANOVA estimators of the nested design, see "
            "`unlearnbench/report/noise.py`; - = not separable with one repetition at that level):\n\n"
            + pd.DataFrame(rows).to_markdown(index=False)
            + "\n"
        )
