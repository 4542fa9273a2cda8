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

import base64
import hashlib
import html
import json
import logging
import math
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from markdown_it import MarkdownIt

from unlearnbench.errors import InvalidValueError
from unlearnbench.report.claims import render_claims
from unlearnbench.report.leaderboard import Table, tables
from unlearnbench.report.plots import PLOTS
from unlearnbench.report.publish import README, RESULTS, methods_section, read_defaults, read_records_of
from unlearnbench.report.record import ResultRecord
from unlearnbench.run.artifacts import write_text_atomic

logger = logging.getLogger(__name__)

INDEX = "index.html"
SUMMARY = "board.json"
"""Each board page's summary, read to build the site's index."""
PLOT_EXTENSIONS = (".png", ".svg")

SCRIPT = """
(function () {
  "use strict";
  function value(row, col) {
    var v = row.cells[col].getAttribute("data-value");
    return v === null || v === "" ? null : parseFloat(v);
  }
  function text(row, col) {
    return row.cells[col].textContent.trim();
  }
  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.querySelector("button").addEventListener("click", function () {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(heads, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = value(a, col), y = value(b, col), order;
          if (x === null && y === null) {
            order = text(a, col).localeCompare(text(b, col));
          } else if (x === null || y === null) {
            return x === null ? 1 : -1;
          } else {
            order = x - y;
          }
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll("input.filter"), function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    var count = document.getElementById(input.getAttribute("data-count"));
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
      var rows = table.tBodies[0].rows, shown = 0;
      Array.prototype.forEach.call(rows, function (row) {
        var content = row.textContent.toLowerCase();
        var keep = words.every(function (w) { return content.indexOf(w) !== -1; });
        row.hidden = !keep;
        if (keep) { shown += 1; }
      });
      count.textContent = shown + " of " + rows.length + " rows";
    });
  });
})();
"""
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5rem auto; max-width: 110rem; padding: 0 1rem;
       color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2rem; border-bottom: 1px solid #ccc; } h3 { font-size: 1.05rem; }
table { border-collapse: collapse; margin: .4rem 0 1rem; font-size: 13px; }
th, td { border: 1px solid #d0d0d0; padding: .2rem .5rem; text-align: left; vertical-align: top; }
table.sortable td, table.sortable th { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: #f0f3f6; position: sticky; top: 0; }
th button { all: unset; cursor: pointer; font-weight: 600; }
th button:focus-visible { outline: 2px solid #0969da; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; }
tr[hidden] { display: none; }
.filterbar { margin: .3rem 0; } .filterbar input { width: 18rem; padding: .2rem .4rem; }
.count { color: #555; margin-left: .6rem; } .caption { color: #444; font-size: 13px; }
dl.prov { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem; }
dl.prov dt { font-weight: 600; } dl.prov dd { margin: 0; }
figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
code { background: #f3f3f3; padding: 0 .2rem; }
"""


def _csp() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return (
        "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'"
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(_csp())}">\n'
        f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
        f"<script>{SCRIPT}</script>\n</body>\n</html>\n"
    )


def _number(value: float | None) -> str:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else repr(float(value))


def html_table(
    table_id: str,
    columns: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    values: Sequence[Mapping[str, float | None]],
    links: Mapping[int, str] | None = None,
) -> str:
    """A sortable, filterable table: ``rows`` give each column's text, ``values`` the number it sorts
    by (text columns sort by their text); ``links`` makes a row's first cell a link."""
    head = "".join(f'<th scope="col"><button type="button">{_e(c)}</button></th>' for c in columns)
    body = []
    for i, (row, numbers) in enumerate(zip(rows, values, strict=True)):
        cells = []
        for j, column in enumerate(columns):
            text = _e(row.get(column, ""))
            if j == 0 and links and i in links:
                text = f'<a href="{_e(links[i])}">{text}</a>'
            number = _number(numbers.get(column))
            if number:
                cells.append(f'<td class="num" data-value="{number}">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="filterbar"><input type="search" class="filter" data-table="{table_id}" '
        f'data-count="{table_id}-count" placeholder="Filter rows: words, e.g. ft reprune" '
        f'aria-label="Filter the rows of this table"><span class="count" id="{table_id}-count">'
        f"{len(rows)} of {len(rows)} rows</span></div>\n"
        f'<div class="scroll"><table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>\n'
        "<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def _board_table(md: MarkdownIt, index: int, table: Table) -> str:
    notes = "".join(f"<p>{_e(note)}</p>" for note in table.notes)
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
    rows = "\n".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
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
        f"<h1>{_e(name)}: {_e(info['protocol'])} leaderboard</h1>",
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
            "<h3>Failed rows</h3>\n<ul>" + "".join(f"<li>{_e(line)}</li>" for line in failed) + "</ul>"
        )
    parts.append(md.render(methods_section(records, read_defaults(folder))))
    parts.append(md.render(render_claims(records)))
    plots = _plots(folder)
    parts.append('<h2 id="plots">Plots</h2>')
    for plot in plots:
        svg = f' (<a href="{_e(quote(plot))}.svg">SVG</a>)' if (folder / f"{plot}.svg").exists() else ""
        parts.append(
            f'<figure><img src="{_e(quote(plot))}.png" alt="{_e(plot)} plot">'
            f"<figcaption>{_e(plot)}{svg}</figcaption></figure>"
        )
    if not plots:
        parts.append("<p><em>No plot: the records hold no data for one.</em></p>")
    for report in sorted(p for p in folder.glob("*.md") if p.name != README):
        parts.append(
            f'<section class="report"><h2>{_e(report.name)}</h2>\n{md.render(report.read_text())}</section>'
        )
    return _page(f"{name} · unlearnbench leaderboard", "\n".join(parts))


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
    write_text_atomic(path, _page("unlearnbench leaderboards", body))
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
