"""The HTML of the leaderboard site (:mod:`.site`): the page shell with its one inline script
(allowed by its hash in the Content-Security-Policy), its style, and the sortable, filterable
table. Every value is HTML-escaped here."""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

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


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page_html(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(_csp())}">\n'
        f"<title>{escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n"
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
    head = "".join(f'<th scope="col"><button type="button">{escape(c)}</button></th>' for c in columns)
    body = []
    for i, (row, numbers) in enumerate(zip(rows, values, strict=True)):
        cells = []
        for j, column in enumerate(columns):
            text = escape(row.get(column, ""))
            if j == 0 and links and i in links:
                text = f'<a href="{escape(links[i])}">{text}</a>'
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
