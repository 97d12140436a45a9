"""Tolerant readers of analysis values, and the display form of a report cell (pure).

The analysis outputs may come from Parquet or CSV, and from versions of the analysis that
spell things slightly differently: lists arrive as arrays, JSON strings or ``a;b`` text, counts
as dicts, JSON objects or ``a:1, b:2`` text, timestamps as pandas values or ISO strings, and
missing values as None, NaN, NaT or pandas.NA.  These functions accept all of them and never
raise on odd input.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from analysis.report_safety import clean_text

__all__ = [
    "as_counts",
    "as_float",
    "as_int",
    "as_list",
    "as_str",
    "as_ts",
    "column",
    "counts_text",
    "display",
    "missing",
]


def missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, str | bytes | list | tuple | dict):
        return False
    r = pd.isna(v)
    return r if isinstance(r, bool) else False


def as_str(v: Any) -> str | None:
    if missing(v):
        return None
    s = str(v).strip()
    return s or None


def as_int(v: Any) -> int:
    if missing(v):
        return 0
    if isinstance(v, list | tuple | dict) or (hasattr(v, "__len__") and not isinstance(v, str)):
        return len(v)
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 0


def as_float(v: Any) -> float | None:
    if missing(v):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def as_list(v: Any) -> list[str]:
    """A list of strings from a list, an array, a JSON array or ``a;b``/``a,b`` text."""
    if missing(v):
        return []
    if isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                parsed = json.loads(s)
            except ValueError:
                parsed = None
            if isinstance(parsed, list):
                return [str(x) for x in parsed if not missing(x)]
        return [p.strip() for p in re.split(r"[;,|]", s) if p.strip()]
    if isinstance(v, Iterable):
        return [str(x) for x in v if not missing(x)]
    return [str(v)]


def as_counts(v: Any) -> dict[str, int]:
    """Counts from a dict, a JSON object, or ``a:1, b:2`` text (order kept, zeros dropped)."""
    if missing(v):
        return {}
    if isinstance(v, str):
        s = v.strip()
        try:
            parsed = json.loads(s) if s else {}
        except ValueError:
            parsed = dict(
                (k.strip(), n.strip())
                for k, _, n in (p.partition(":") for p in re.split(r"[;,]", s))
                if k.strip()
            )
        v = parsed
    if isinstance(v, Mapping):
        out = {str(k): as_int(n) for k, n in v.items()}
        return {k: n for k, n in sorted(out.items(), key=lambda kv: (-kv[1], kv[0])) if n}
    return {}


def as_ts(v: Any) -> str:
    """``YYYY-MM-DD HH:MM`` in UTC ('' when absent or unreadable)."""
    if missing(v):
        return ""
    try:
        ts = pd.Timestamp(v)
    except (TypeError, ValueError):
        return clean_text(v, 40)
    if ts is pd.NaT or pd.isna(ts):
        return ""
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.strftime("%Y-%m-%d %H:%M")


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{clean_text(k, 40)} {n}" for k, n in counts.items())


def display(value: Any, kind: str = "text") -> str:
    """The text shown in a document cell (Markdown, HTML, DOCX): shares as percentages."""
    if missing(value):
        return ""
    if kind == "share":
        f = as_float(value)
        return "" if f is None else f"{f * 100:.1f}%"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    return clean_text(value, 0)


def column(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` or an all-missing column (tolerates absent optional columns)."""
    if name in df.columns:
        return df[name]
    return pd.Series([None] * len(df), index=df.index, dtype=object)
