"""A self-contained HTML page of tables and plots: inline CSS, one inline script (sortable tables),
images as data: URLs, and a Content-Security-Policy that lets nothing else load or run.

Every piece of text (title, heading, paragraph, caption, column name, cell) is escaped, so a name
such as `<script>alert(1)</script>` shows as text; the policy would block it even if it were not.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import numbers
import re
from dataclasses import dataclass, field

import pandas as pd

from rnnbench.core.errors import BenchmarkError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       max-width: 84rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; line-height: 1.5; }
h1 { font-size: 1.8rem; border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
h2 { font-size: 1.35rem; margin-top: 2.5rem; }
p { white-space: pre-line; }
.table-wrap { overflow: auto; max-height: 80vh; margin: 1rem 0; border: 1px solid #d0d7de; }
table { border-collapse: collapse; width: 100%; font-size: .82rem; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: .4rem .6rem; }
th, td { padding: .3rem .4rem; border-bottom: 1px solid #e5e8eb; text-align: left; }
th { position: sticky; top: 0; background: #f0f3f6; cursor: pointer; user-select: none; }
td { overflow-wrap: break-word; }
td.num { white-space: nowrap; }
th::after { content: " \\2195"; color: #8c959f; }
th[aria-sort="ascending"]::after { content: " \\25B2"; color: inherit; }
th[aria-sort="descending"]::after { content: " \\25BC"; color: inherit; }
tbody tr:nth-child(even) { background: #f6f8fa; }
tbody tr:hover { background: #eaeef2; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
.figures { display: flex; flex-wrap: wrap; gap: 1.5rem; margin: 1.5rem 0; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #d0d7de; }
figcaption { font-size: .9rem; color: #57606a; }
"""

# Click a header: sort its table's rows by that column (numbers by data-sort, else text; empty
# cells last either way); click again to reverse. The arrow is CSS on aria-sort.
SCRIPT = """
function cellValue(cell) {
  var key = cell.getAttribute("data-sort");
  if (key !== null) return Number(key);
  var text = cell.textContent.trim();
  return text === "" ? null : text;
}
function compareCells(a, b, ascending) {
  var x = cellValue(a), y = cellValue(b);
  if (x === null || y === null) return (x === null) - (y === null);
  var order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
  return ascending ? order : -order;
}
function sortBy(header) {
  var table = header.closest("table"), body = table.tBodies[0], column = header.cellIndex;
  var ascending = header.getAttribute("aria-sort") !== "ascending";
  table.querySelectorAll("th").forEach(function (th) { th.removeAttribute("aria-sort"); });
  header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  Array.from(body.rows)
    .sort(function (a, b) { return compareCells(a.cells[column], b.cells[column], ascending); })
    .forEach(function (row) { body.appendChild(row); });
}
document.querySelectorAll("thead th").forEach(function (th) {
  th.addEventListener("click", function () { sortBy(th); });
});
"""


@dataclass
class Section:
    """A heading, an optional paragraph, tables as (caption, DataFrame), images as (caption, PNG
    bytes), and links as (label, relative path) to pages beside this one."""

    heading: str
    text: str = ""
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    images: list[tuple[str, bytes]] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)


def render_page(title: str, sections: list[Section]) -> str:
    """The whole page as one HTML document that loads nothing from anywhere."""
    body = "\n".join(_section(section) for section in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_escape(_policy())}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_escape(title)}</h1>
{body}
<script>{SCRIPT}</script>
</body>
</html>
"""


def format_cells(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's cells as display text: floats to 4 significant digits, missing values empty."""
    return frame.apply(lambda column: column.map(_cell_text))


def _policy() -> str:
    """Allow the one script and the one style block (by hash) and data: images, nothing else."""
    return ("default-src 'none'; "
            f"script-src '{_sha256(SCRIPT)}'; style-src '{_sha256(STYLE)}'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _sha256(source: str) -> str:
    """A CSP hash source for an inline block's exact text."""
    return "sha256-" + base64.b64encode(hashlib.sha256(source.encode("utf-8")).digest()).decode("ascii")


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _section(section: Section) -> str:
    """One section: heading, paragraph, tables, then images."""
    parts = [f"<section>\n<h2>{_escape(section.heading)}</h2>"]
    if section.text:
        parts.append(f"<p>{_escape(section.text)}</p>")
    if section.links:
        items = "".join(f'<li><a href="{_escape(_relative(path))}">{_escape(label)}</a></li>'
                        for label, path in section.links)
        parts.append(f"<ul>{items}</ul>")
    parts += [_table(caption, frame) for caption, frame in section.tables]
    if section.images:
        figures = "\n".join(_image(caption, png) for caption, png in section.images)
        parts.append(f'<div class="figures">\n{figures}\n</div>')
    parts.append("</section>")
    return "\n".join(parts)


RELATIVE_PATH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")


def _relative(path: str) -> str:
    """A link's target: a plain relative path (a page beside this one), never a scheme such as
    javascript: or an absolute URL."""
    if not RELATIVE_PATH.fullmatch(path) or ".." in path.split("/"):
        raise BenchmarkError(f"a page links only to relative paths beside it (letters, digits, . _ / -), "
                             f"not {path!r}")
    return path


def _table(caption: str, frame: pd.DataFrame) -> str:
    """A sortable table; a meaningful index (named, or not 0..n-1) becomes the first columns."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    header = "".join(f'<th scope="col"{_numeric_class(frame.iloc[:, i])}>{_escape(name)}</th>'
                     for i, name in enumerate(frame.columns))
    texts = format_cells(frame)
    rows = []
    for values, shown in zip(frame.itertuples(index=False), texts.itertuples(index=False)):
        cells = "".join(_cell(value, text) for value, text in zip(values, shown))
        rows.append(f"<tr>{cells}</tr>")
    body = "\n".join(rows)
    return (f'<div class="table-wrap"><table>\n<caption>{_escape(caption)}</caption>\n'
            f"<thead><tr>{header}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table></div>")


def _numeric_class(column: pd.Series) -> str:
    """' class="num"' for a column of numbers (right-aligned like its cells), else ''."""
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    return ' class="num"' if numeric else ""


def _cell(value: object, text: str) -> str:
    """A td; a number carries its full value in data-sort so that sorting is exact."""
    if _is_number(value) and not math.isnan(value):
        key = "Infinity" if value == math.inf else "-Infinity" if value == -math.inf else repr(float(value))
        return f'<td class="num" data-sort="{_escape(key)}">{_escape(text)}</td>'
    return f"<td>{_escape(text)}</td>"


def _cell_text(value: object) -> str:
    if _is_number(value):
        if math.isnan(value):
            return ""
        return str(value) if isinstance(value, numbers.Integral) else f"{value:.4g}"
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _image(caption: str, png: bytes) -> str:
    """A figure with the PNG inlined as a data: URL."""
    if bytes(png[:8]) != PNG_SIGNATURE:
        raise BenchmarkError(f"The image {caption!r} is not a PNG (its bytes do not start with the PNG "
                             "signature): save the figure with format='png'.")
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_escape(caption)}">'
            f"<figcaption>{_escape(caption)}</figcaption></figure>")
