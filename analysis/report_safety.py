"""Escaping for report outputs: every string that came from the network passes through here.

Page titles, header values and URLs are attacker-controlled.  Each output format has one
function, and each is the only one used for that format:

* :func:`clean_text` — every format: drops control characters (XML 1.0 forbids most of them,
  so DOCX and XLSX writers would fail on them), folds line breaks and bounds the length;
* :func:`md_cell` — Markdown: escapes what could end a table cell or start markup
  (pipes, backticks, angle brackets, brackets, ampersands, backslashes, line breaks);
* :func:`neutralise_cell` — CSV and XLSX: a cell starting with ``=``, ``+``, ``-``, ``@``,
  a tab or a carriage return would be run as a formula by a spreadsheet, so it gets a leading
  single quote (the OWASP "CSV injection" advice);
* HTML is escaped by Jinja2's autoescape (and the page forbids every script through its
  Content-Security-Policy); DOCX text is written as XML text nodes by python-docx.

All functions are pure and total: any input gives a string, nothing raises.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd

__all__ = [
    "FORMULA_PREFIXES",
    "MAX_CELL_CHARS",
    "clean_text",
    "md_cell",
    "neutralise_cell",
]

MAX_CELL_CHARS = 300
"""Longest string shown in a report cell (longer network strings end with an ellipsis)."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet cell a formula (or hide one)."""

# C0 controls except tab/newline/CR, DEL, C1 controls, lone surrogates, and the two
# non-characters XML forbids: none of them belongs in a report.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_LINEBREAK = re.compile(r"[\r\n\u2028\u2029\u0085]+")
_MD_SPECIAL = re.compile(r"([\\`|\[\]*])")


def _is_missing(value: Any) -> bool:
    """None, NaN, pandas.NA and NaT (but never a string, list or array)."""
    if value is None:
        return True
    if isinstance(value, str | bytes | bool | int):
        return False
    if isinstance(value, float):
        return math.isnan(value)
    result = pd.isna(value)
    return result if isinstance(result, bool) else False


def clean_text(value: Any, limit: int = MAX_CELL_CHARS, *, keep_tabs: bool = False) -> str:
    """A safe single-line string: no control characters, no line breaks, at most ``limit``.

    ``None`` and NaN become ``""``.  Tabs become spaces unless ``keep_tabs`` (the CSV/XLSX
    neutraliser needs to see a leading tab to quote it).
    """
    if _is_missing(value):
        return ""
    s = value if isinstance(value, str) else str(value)
    s = _LINEBREAK.sub(" ", s)
    s = _CONTROL.sub("", s)
    if not keep_tabs:
        s = s.replace("\t", " ")
    if limit and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def md_cell(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """Text safe inside a Markdown table cell (and in Markdown prose).

    Backslash-escapes ``\\ ` | [ ] *`` and writes ``& < >`` as HTML entities, so a value can
    neither end the cell, open a code span or a link, nor inject raw HTML.
    """
    s = clean_text(value, limit)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", s)


def neutralise_cell(value: Any, limit: int = 32_000) -> Any:
    """A CSV/XLSX cell value that no spreadsheet runs as a formula.

    Numbers and booleans are returned unchanged (they cannot be formulas).  Strings are cleaned
    (control characters removed, line breaks folded, at most ``limit`` characters: Excel's cell
    limit is 32,767) and get a leading ``'`` when they start with one of
    :data:`FORMULA_PREFIXES`, before or after cleaning, or after leading blanks.
    """
    if _is_missing(value):
        return ""
    if isinstance(value, bool | int | float):
        return value
    raw = value if isinstance(value, str) else str(value)
    s = clean_text(raw, limit, keep_tabs=True)
    if any(x.startswith(FORMULA_PREFIXES) for x in (raw, s, s.lstrip())):
        return "'" + s
    return s
