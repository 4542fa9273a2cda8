"""A static leaderboard site, generated from published folders (:mod:`.publish`) only.

``SITE/index.html`` lists every board page in ``SITE``; ``SITE/<board>/index.html`` is one
published folder: its provenance (protocol, version, hash, dataset, data copy, model, hardware,
commit, forget sets), one sortable, filterable table per leaderboard table (the data of
:func:`leaderboard.tables`, not its markdown), the failed rows, the methods, the claims check,
the folder's plots (copied beside the page) and its other reports. Nothing is typed in by hand:
every page is rebuilt from ``results.jsonl`` and ``components.json``.

The pages need no server and no network: one inline script (vanilla JavaScript, allowed by its
hash in the page's Content-Security-Policy, so no other script can run) sorts a table when a
header is clicked and hides the rows that do not contain every word typed in its filter. Every
value from the records is HTML-escaped; markdown parts (captions, methods, claims) are rendered
with raw HTML off.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt

from unlearnbench.errors import InvalidValueError
from unlearnbench.files import write_text_atomic
from unlearnbench.report.claims import render_claims
from unlearnbench.report.leaderboard import tables
from unlearnbench.report.plots import PLOTS
from unlearnbench.report.publish import README, RESULTS, methods_section, read_defaults, read_records_of
from unlearnbench.report.record import ResultRecord
from unlearnbench.report.site_html import escape, html_table, page_html
from unlearnbench.report.table import Table

logger = logging.getLogger(__name__)

INDEX = "index.html"
SUMMARY = "board.json"
"""Each board page's summary, read to build the site's index."""
PLOT_EXTENSIONS = (".png", ".svg")


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _board_table(md: MarkdownIt, index: int, table: Table) -> str:
    notes = "".join(f"<p>{escape(note)}</p>" for note in table.notes)
    return (
        f'<section class="board-table">\n<h3>{md.renderInline(table.title)}</h3>\n'
        f'<p class="caption">{md.renderInline(table.caption)}</p>\n'
        + html_table(f"t{index}", table.columns, table.rows, table.values)
        + f"\n{notes}</section>"
    )


def _joined(values: Iterable[Any]) -> str:
    return ", ".join(sorted({str(v) for v in values if v not in (None, "")})) or "-"


def summary(name: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the index shows of one board, from its records."""
    typed = [ResultRecord.from_dict(r) for r in records]
    return {
        "board": name,
        "protocol": _joined(r.protocol for r in typed),
        "version": _joined(r.protocol_version for r in typed),
        "hash": _joined(r.protocol_hash[:12] for r in typed),
        "dataset": _joined(r.dataset for r in typed),
        "data_copy": _joined(r.data_copy for r in typed),
        "model": _joined(r.model for r in typed),
        "hardware": _joined(r.device for r in typed),
        "commit": _joined((r.git or "")[:12] for r in typed),
        "rows": len(typed),
        "failed": sum(not r.ok for r in typed),
        "seeds": len({r.seed for r in typed}),
        "methods": len({r.method for r in typed}),
    }


def _provenance(records: Sequence[ResultRecord], info: Mapping[str, Any]) -> str:
    forgets = sorted({(r.forget_set, r.forget_kind, r.forget_size, r.forget_sha256) for r in records})
    versions = _joined((r.versions or {}).get("unlearnbench") for r in records)
    items = [
        ("Protocol", f"{info['protocol']} v{info['version']}"),
        ("Protocol hash", _joined(r.protocol_hash for r in records)),
        ("Dataset (data copy)", f"{info['dataset']} ({info['data_copy']})"),
        ("Model", info["model"]),
        ("Hardware", info["hardware"]),
        ("Commit", _joined(r.git for r in records)),
        ("unlearnbench", versions),
        (
            "Rows",
            f"{info['rows']} ({info['failed']} failed), {info['seeds']} seeds, {info['methods']} methods",
        ),
    ]
    items += [(f"Forget set {f}", f"{kind}, {size} examples, sha256 {sha}") for f, kind, size, sha in forgets]
    rows = "\n".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in items)
    return f'<h2 id="provenance">Provenance</h2>\n<dl class="prov">\n{rows}\n</dl>'


def _plots(folder: Path) -> list[str]:
    """The PNG plots of a folder: the standard ones in :data:`PLOTS` order, then the others by name."""
    names = sorted(p.stem for p in folder.glob("*.png"))
    return [n for n in PLOTS if n in names] + [n for n in names if n not in PLOTS]


def board_page(folder: Path, name: str | None = None) -> str:
    """The HTML page of a published folder, from its records and component defaults."""
    records = read_records_of(folder)
    name = name or folder.name
    typed = [ResultRecord.from_dict(r) for r in records]
    info = summary(name, records)
    md = _markdown()
    found, failed = tables(records)
    parts = [
        '<p><a href="../index.html">All leaderboards</a></p>',
        f"<h1>{escape(name)}: {escape(info['protocol'])} leaderboard</h1>",
        f"<p>Generated by <code>unlearnbench</code> from <code>{RESULTS}</code> ({info['rows']} rows); "
        "do not edit by hand. Click a column header to sort; type words in a filter to keep the rows "
        "that contain all of them.</p>",
        _provenance(typed, info),
        '<h2 id="results">Results</h2>',
        "<p>One table per protocol version, forget set, pruner and sparsity; reference rows first.</p>",
    ]
    parts += [_board_table(md, i, table) for i, table in enumerate(found)]
    if not found:
        parts.append("<p><em>No ok rows.</em></p>")
    if failed:
        parts.append(
            "<h3>Failed rows</h3>\n<ul>" + "".join(f"<li>{escape(line)}</li>" for line in failed) + "</ul>"
        )
    parts.append(md.render(methods_section(records, read_defaults(folder))))
    parts.append(md.render(render_claims(records)))
    plots = _plots(folder)
    parts.append('<h2 id="plots">Plots</h2>')
    for plot in plots:
        svg = f' (<a href="{escape(quote(plot))}.svg">SVG</a>)' if (folder / f"{plot}.svg").exists() else ""
        parts.append(
            f'<figure><img src="{escape(quote(plot))}.png" alt="{escape(plot)} plot">'
            f"<figcaption>{escape(plot)}{svg}</figcaption></figure>"
        )
    if not plots:
        parts.append("<p><em>No plot: the records hold no data for one.</em></p>")
    for report in sorted(p for p in folder.glob("*.md") if p.name != README):
        parts.append(
            f'<section class="report"><h2>{escape(report.name)}</h2>\n'
            f"{md.render(report.read_text())}</section>"
        )
    return page_html(f"{name} · unlearnbench leaderboard", "\n".join(parts))


def write_board(folder: Path, site: Path) -> list[Path]:
    """Write the page of the published ``folder`` (and copies of its plots) to ``site/<folder name>/``
    and rebuild the site's index; returns the files written."""
    if not (folder / RESULTS).exists():
        raise InvalidValueError(f"{folder} is not a published leaderboard folder (no {RESULTS})")
    page = site / folder.name
    page.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(folder.iterdir()):
        if path.suffix in PLOT_EXTENSIONS and path.is_file():
            shutil.copyfile(path, page / path.name)
            written.append(page / path.name)
    for path in sorted(page.iterdir()):  # a plot the folder no longer has (e.g. skipped: no data)
        if path.suffix in PLOT_EXTENSIONS and not (folder / path.name).exists():
            path.unlink()
    write_text_atomic(page / INDEX, board_page(folder))
    write_text_atomic(
        page / SUMMARY, json.dumps(summary(folder.name, read_records_of(folder)), indent=1) + "\n"
    )
    return [*written, page / INDEX, page / SUMMARY, write_index(site)]


def write_index(site: Path) -> Path:
    """Rebuild ``site/index.html`` from the summary of every board page in ``site``."""
    boards = []
    for path in sorted(site.glob(f"*/{SUMMARY}")):
        try:
            boards.append(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            logger.warning("skipped %s in the site's index: %s", path, exc)
    columns = ("Board", "Protocol", "Version", "Hash", "Dataset", "Data copy", "Model", "Rows", "Seeds")
    columns += ("Methods", "Hardware", "Commit")
    keys = ("board", "protocol", "version", "hash", "dataset", "data_copy", "model", "rows", "seeds")
    keys += ("methods", "hardware", "commit")
    rows = [{c: b.get(k, "") for c, k in zip(columns, keys, strict=True)} for b in boards]
    numeric = ("Rows", "Seeds", "Methods")
    values = [{c: float(row[c]) for c in numeric if isinstance(row[c], int | float)} for row in rows]
    links = {i: f"{quote(str(b.get('board', '')))}/{INDEX}" for i, b in enumerate(boards)}
    body = (
        "<h1>unlearnbench leaderboards</h1>\n"
        "<p>Every board is generated by <code>unlearnbench publish</code> from its result records; "
        "nothing is typed in by hand. Click a header to sort; type in the filter to keep matching rows.</p>\n"
        + html_table("boards", columns, rows, values, links)
    )
    if not boards:
        body += "\n<p><em>No board yet.</em></p>"
    path = site / INDEX
    site.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, page_html("unlearnbench leaderboards", body))
    return path


def board_folders(paths: Iterable[Path]) -> list[Path]:
    """The published folders among ``paths``: each path itself when it holds results, else its
    subfolders that do; refused when there are none."""
    found = []
    for path in paths:
        if (path / RESULTS).is_file():
            found.append(path)
        elif path.is_dir():
            found += sorted(p for p in path.iterdir() if (p / RESULTS).is_file())
        else:
            raise InvalidValueError(f"{path} is not a folder")
    if not found:
        raise InvalidValueError(
            f"no published leaderboard (a folder with {RESULTS}) in {', '.join(map(str, paths))}"
        )
    names = [p.name for p in found]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidValueError(f"two boards are named {twice[0]}; a site holds one page per folder name")
    return found


def build_site(paths: Iterable[Path], site: Path) -> list[Path]:
    """Write the page of every published folder among ``paths`` into ``site`` and its index."""
    written: list[Path] = []
    for folder in board_folders(list(paths)):
        written += write_board(folder, site)[:-1]
    return [*written, write_index(site)]
