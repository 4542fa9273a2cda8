"""The results of the Python API: :class:`Results` (records, a row by label, a DataFrame view)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from unlearnbench.report.record import ResultRecord

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Results:
    """The records a call produced (``records``), where they are (``out``: ``results.jsonl``,
    ``leaderboard.md``) and the rendered leaderboard of every row in ``out``."""

    records: tuple[ResultRecord, ...]
    out: Path
    leaderboard: str

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[ResultRecord]:
        return iter(self.records)

    @property
    def results_path(self) -> Path:
        return self.out / "results.jsonl"

    @property
    def failed(self) -> tuple[ResultRecord, ...]:
        return tuple(r for r in self.records if not r.ok)

    @property
    def external(self) -> tuple[ResultRecord, ...]:
        """The rows that scored an external model."""
        return tuple(r for r in self.records if r.external is not None)

    def row(self, method: str, *, forget_set: str | None = None, seed: int | None = None) -> ResultRecord:
        """The one record whose method label (``ft``, ``ft + reprune``, ``external:mine``) is
        ``method`` (narrowed by forget set and seed), or an error listing the labels."""
        found = [
            r
            for r in self.records
            if r.method == method
            and (forget_set is None or r.forget_set == forget_set)
            and (seed is None or r.seed == seed)
        ]
        if len(found) != 1:
            labels = sorted({r.method for r in self.records})
            raise LookupError(f"{len(found)} rows match {method!r}; methods: {', '.join(labels)}")
        return found[0]

    def to_frame(self) -> pd.DataFrame:
        """The records as :func:`unlearnbench.report.frame.records_frame` gives them: one row per
        record, one column per metric, the per-stage seeds, details and runtimes."""
        from unlearnbench.report.frame import records_frame

        return records_frame(r.to_dict() for r in self.records)
