"""What the artifact store of an output folder holds, and what can be removed from it.

Per stage: the finished nodes and their size, stale temporary folders (``.<key>-*`` left by an
interrupted writer, older than ``min_age_s`` so a running writer's are kept), quarantined
copies (``<key>.corrupt-<n>``, see :mod:`unlearnbench.run.artifacts`) and nodes that no row of
``OUT/results.jsonl`` used (its records' ``node_keys``).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from unlearnbench.errors import InvalidValueError
from unlearnbench.report.results import read_records
from unlearnbench.run.artifacts import LOCKS, META


@dataclass(frozen=True)
class StageUsage:
    """One stage folder of the store."""

    stage: str
    nodes: tuple[Path, ...]
    size: int
    temp: tuple[Path, ...]
    quarantined: tuple[Path, ...]
    unreferenced: tuple[Path, ...]


def size_of(path: Path) -> int:
    """Bytes of the files under ``path``."""
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def referenced_nodes(results: Path) -> set[str] | None:
    """The node folders the rows of ``results`` used; None when there is no results file or a
    row predates ``node_keys`` (then nothing can be called unreferenced)."""
    if not results.is_file():
        return None
    found: set[str] = set()
    for record in read_records(results, required=("row_id",)):
        if not record.get("node_keys"):
            return None
        found.update(record["node_keys"])
    return found


def scan(root: Path, referenced: set[str] | None, min_age_s: float = 3600.0) -> list[StageUsage]:
    """Every stage folder under ``root`` (the artifact store)."""
    if not root.is_dir():
        raise InvalidValueError(f"{root} is not an artifact store folder (run `unlearnbench run` first)")
    now, out = time.time(), []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != LOCKS):
        nodes, temp, quarantined = [], [], []
        for item in sorted(folder.iterdir()):
            if item.name.startswith("."):
                if now - item.stat().st_mtime >= min_age_s:
                    temp.append(item)
            elif ".corrupt-" in item.name:
                quarantined.append(item)
            elif (item / META).is_file():
                nodes.append(item)
        unreferenced = () if referenced is None else tuple(n for n in nodes if n.name not in referenced)
        size = sum(size_of(n) for n in nodes)
        out.append(StageUsage(folder.name, tuple(nodes), size, tuple(temp), tuple(quarantined), unreferenced))
    return out


def remove(paths: Iterable[Path]) -> int:
    """Delete ``paths`` (folders); returns the bytes freed."""
    freed = 0
    for path in paths:
        freed += size_of(path)
        shutil.rmtree(path, ignore_errors=True)
    return freed
