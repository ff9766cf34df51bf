"""Text from a store (architecture and task names, settings, error messages) made inert in each
published format. The registry accepts plain names only, but a store or a results.csv may come
from anywhere, so every writer escapes what it writes:

- Markdown (CommonMark, GitHub): a backslash before the characters that start HTML, links, code,
  emphasis or a table cell (< > [ ] * |, the backtick and the backslash; & starts no tag); newlines
  become spaces.
- CSV opened in a spreadsheet: a text cell starting with = + - @ or a tab or carriage return is a
  formula there (OWASP, "CSV injection"); such a cell gets a leading apostrophe, unless it is a
  plain number.
- LaTeX: its ten special characters (and ± ≈ ≥ as math symbols).
- HTML: `html.escape`, in html_page.
"""

from __future__ import annotations

import re

import pandas as pd

_MARKDOWN_SPECIAL = re.compile(r"([\\`*<>\[\]|])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?%?")
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}",
                  "±": r"$\pm$", "≈": r"$\approx$", "≥": r"$\geq$"}


def markdown_text(text: object) -> str:
    """`text` as literal Markdown text, on one line."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def markdown_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table whose text cells and column names are literal Markdown (numbers untouched)."""
    escaped = frame.map(lambda value: markdown_text(value) if isinstance(value, str) else value)
    escaped.columns = [markdown_text(column) for column in frame.columns]
    return escaped


def csv_cell(value: object) -> object:
    """A text cell that a spreadsheet will not run as a formula; other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A table whose text cells and column names are safe to open in a spreadsheet."""
    safe = frame.map(csv_cell)
    safe.columns = [csv_cell(str(column)) for column in frame.columns]
    return safe


def latex_escape(text: object) -> str:
    """`text` with LaTeX's special characters escaped (and ± ≈ ≥ as math symbols)."""
    return "".join(_LATEX_SPECIAL.get(character, character) for character in str(text))
