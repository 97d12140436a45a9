"""How res64's verdicts compare with OONI's own, measurement by measurement.

``res64 compare-ooni ANALYSIS_DIR`` reads the per-measurement verdicts of an analysis
(``verdicts.parquet`` or ``verdicts.csv``) and, for every imported OONI measurement
(``data_source == "ooni"``, not a control), puts OONI's verdict (``ooni_blocking`` /
``ooni_accessible``, kept by :mod:`probe.imports.ooni`) beside res64's ``status`` and
``mechanism``.  When the verdicts table does not carry the OONI columns, they are read from the
dataset files that ``analysis.json`` names (or from ``datasets`` given explicitly).

The classes compared (:data:`OONI_CLASSES` × :data:`RES64_CLASSES`)::

    OONI blocking / accessible          res64 status / mechanism
    false, accessible    ─────────────  accessible
    false, not accessible ────────────  down
    dns                  ─────────────  denied: dns_*
    tcp_ip               ─────────────  denied: tcp_*, route_blackhole
    http-failure         ─────────────  denied: tls_*, http_timeout, http_reset
    http-diff            ─────────────  denied: http_blockpage, http_body, http_status,
                                                http_geoblock, http_451, http_geo_redirect
    null (no verdict)                   (not compared)

A pair on one line *agrees*; both sides calling it a denial, by different layers, is
*partial*; anything else *disagrees*.  Every disagreement is listed with both sides' reasons,
and denials that OONI marked accessible are listed on their own: they are the cases a reader
should look at first.  Pure logic (:func:`compare`) is separate from reading
(:func:`compare_ooni`) and from rendering (:func:`comparison_tables`, :func:`comparison_lines`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from probe.errors import DatasetError

__all__ = [
    "OONI_CLASSES",
    "RES64_CLASSES",
    "ComparisonResult",
    "Disagreement",
    "compare",
    "compare_ooni",
    "comparison_lines",
    "comparison_tables",
    "ooni_class",
    "res64_class",
]

OONI_CLASSES: tuple[str, ...] = (
    "false/accessible",
    "false/down",
    "dns",
    "tcp_ip",
    "http-failure",
    "http-diff",
    "null",
)
RES64_CLASSES: tuple[str, ...] = (
    "accessible",
    "down",
    "inconclusive",
    "denied:dns",
    "denied:tcp",
    "denied:http-failure",
    "denied:http-diff",
    "denied:other",
)
_AGREES: dict[str, frozenset[str]] = {
    "false/accessible": frozenset({"accessible"}),
    "false/down": frozenset({"down"}),
    "dns": frozenset({"denied:dns"}),
    "tcp_ip": frozenset({"denied:tcp"}),
    "http-failure": frozenset({"denied:http-failure"}),
    "http-diff": frozenset({"denied:http-diff"}),
}
_OONI_DENIALS = frozenset({"dns", "tcp_ip", "http-failure", "http-diff"})
_HTTP_DIFF = frozenset(
    {"http_blockpage", "http_body", "http_status", "http_geoblock", "http_451", "http_geo_redirect"}
)
_HTTP_FAILURE = frozenset({"http_timeout", "http_reset"})
# dataset columns read for the OONI side and for the reasons shown
_DATASET_COLUMNS = (
    "measurement_id",
    "data_source",
    "is_control",
    "url",
    "ooni_blocking",
    "ooni_accessible",
    "failure_step",
    "failure",
    "http_status",
    "http_title",
    "import_note",
)
_REASON_COLUMNS = ("rule_id", "reason", "evidence", "detail", "explanation", "confidence")


def ooni_class(blocking: object, accessible: object) -> str:
    """OONI's verdict fields as one of :data:`OONI_CLASSES`."""
    b = None if blocking is None or _isna(blocking) else str(blocking)
    if b is None or b == "null":
        return "null"
    if b == "false":
        return "false/down" if accessible is False else "false/accessible"
    return b if b in _OONI_DENIALS else "null"


def res64_class(status: object, mechanism: object) -> str:
    """res64's verdict as one of :data:`RES64_CLASSES`."""
    s = str(status) if isinstance(status, str) else "inconclusive"
    if s != "denied":
        return s if s in ("accessible", "down") else "inconclusive"
    m = str(mechanism) if isinstance(mechanism, str) else ""
    if m.startswith("dns_"):
        return "denied:dns"
    if m.startswith("tcp_") or m == "route_blackhole":
        return "denied:tcp"
    if m.startswith("tls_") or m in _HTTP_FAILURE:
        return "denied:http-failure"
    if m in _HTTP_DIFF:
        return "denied:http-diff"
    return "denied:other"


def _isna(v: object) -> bool:
    try:
        return bool(pd.isna(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Disagreement:
    """One measurement on which the two verdicts differ."""

    measurement_id: str
    url: str
    probe_cc: str
    kind: str  # partial | disagree
    ooni: str  # OONI class
    res64: str  # res64 class
    ooni_reason: str
    res64_reason: str


@dataclass
class ComparisonResult:
    """The agreement matrix, its totals, and the cases to look at."""

    matrix: dict[str, Counter[str]] = field(default_factory=dict)
    compared: int = 0
    agree: int = 0
    partial: int = 0
    disagree: int = 0
    no_ooni_verdict: int = 0
    disagreements: list[Disagreement] = field(default_factory=list)
    denied_but_ooni_accessible: list[Disagreement] = field(default_factory=list)

    @property
    def agreement(self) -> float | None:
        """Share of compared measurements on which both agree (None when none compared)."""
        return self.agree / self.compared if self.compared else None

    def to_json(self) -> dict[str, Any]:
        return {
            "compared": self.compared,
            "agree": self.agree,
            "partial": self.partial,
            "disagree": self.disagree,
            "no_ooni_verdict": self.no_ooni_verdict,
            "agreement": self.agreement,
            "matrix": {k: dict(v) for k, v in self.matrix.items()},
            "disagreements": [_dc(d) for d in self.disagreements],
            "denied_but_ooni_accessible": [_dc(d) for d in self.denied_but_ooni_accessible],
        }


def _dc(d: Disagreement) -> dict[str, str]:
    return {f: getattr(d, f) for f in Disagreement.__slots__}


def _text(v: object) -> str:
    return "" if v is None or _isna(v) else str(v)


def _ooni_reason(row: Mapping[str, Any]) -> str:
    parts = [f"blocking={_text(row.get('ooni_blocking')) or 'null'}"]
    acc = row.get("ooni_accessible")
    parts.append(f"accessible={'null' if acc is None or _isna(acc) else str(bool(acc)).lower()}")
    return ", ".join(parts)


def _facts(row: Mapping[str, Any]) -> str:
    """What the measurement itself shows (the same data both verdicts were made from)."""
    out = []
    if _text(row.get("failure")):
        out.append(f"{_text(row.get('failure_step')) or '?'} failure {_text(row.get('failure'))}")
    if _text(row.get("http_status")):
        status = _text(row.get("http_status")).removesuffix(".0")
        title = _text(row.get("http_title"))[:60]
        out.append(f"HTTP {status}" + (f" {title!r}" if title else ""))
    return "; ".join(out)


def _res64_reason(row: Mapping[str, Any]) -> str:
    parts = [
        f"{_text(row.get('status')) or 'inconclusive'}/{_text(row.get('mechanism')) or 'none'}"
    ]
    for c in _REASON_COLUMNS:
        v = _text(row.get(c))
        if v:
            parts.append(f"{c}={v[:120]}")
    return ", ".join(parts)


def compare(rows: pd.DataFrame) -> ComparisonResult:
    """Pure: one row per imported OONI measurement with ``status``, ``mechanism``,
    ``ooni_blocking``, ``ooni_accessible`` (and optionally url, probe_cc, reasons, facts)."""
    res = ComparisonResult(matrix={c: Counter() for c in OONI_CLASSES})
    for rec in rows.to_dict("records"):
        o = ooni_class(rec.get("ooni_blocking"), _bool(rec.get("ooni_accessible")))
        r = res64_class(rec.get("status"), rec.get("mechanism"))
        res.matrix[o][r] += 1
        if o == "null":
            res.no_ooni_verdict += 1
            continue
        res.compared += 1
        facts = _facts(rec)
        d = Disagreement(
            measurement_id=_text(rec.get("measurement_id")),
            url=_text(rec.get("url")),
            probe_cc=_text(rec.get("probe_cc")),
            kind="",
            ooni=o,
            res64=r,
            ooni_reason=_ooni_reason(rec) + (f" ({facts})" if facts else ""),
            res64_reason=_res64_reason(rec),
        )
        if r in _AGREES[o]:
            res.agree += 1
        elif o in _OONI_DENIALS and r.startswith("denied:"):
            res.partial += 1
            res.disagreements.append(_with_kind(d, "partial"))
        else:
            res.disagree += 1
            res.disagreements.append(_with_kind(d, "disagree"))
        if r.startswith("denied:") and o == "false/accessible":
            res.denied_but_ooni_accessible.append(_with_kind(d, "disagree"))
    res.disagreements.sort(key=lambda x: (x.kind, x.ooni, x.res64, x.url, x.measurement_id))
    return res


def _bool(v: object) -> bool | None:
    if v is None or _isna(v):
        return None
    if isinstance(v, str):
        return {"true": True, "false": False}.get(v.strip().lower())
    return bool(v)


def _with_kind(d: Disagreement, kind: str) -> Disagreement:
    return Disagreement(
        d.measurement_id, d.url, d.probe_cc, kind, d.ooni, d.res64, d.ooni_reason, d.res64_reason
    )


# --------------------------------------------------------------------------------------------
# reading an analysis directory
# --------------------------------------------------------------------------------------------


def _read_verdicts(adir: Path) -> pd.DataFrame:
    pq_path, csv_path = adir / "verdicts.parquet", adir / "verdicts.csv"
    try:
        if pq_path.is_file():
            return pq.read_table(pq_path).to_pandas()
        if csv_path.is_file():
            return pd.read_csv(csv_path, keep_default_na=False, na_values=[""])
    except Exception as exc:
        raise DatasetError(f"{adir}: unreadable verdicts table ({exc})") from exc
    if not adir.is_dir():
        raise DatasetError(f"{adir}: no such analysis directory")
    raise DatasetError(f"{adir}: no verdicts.parquet or verdicts.csv (run res64 analyze first)")


def _input_paths(adir: Path) -> list[Path]:
    """Dataset files named by ``analysis.json`` (paths as recorded, or relative to it)."""
    meta_path = adir / "analysis.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{meta_path}: unreadable ({exc})") from exc
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("path", "file") and isinstance(v, str) and v.endswith(".parquet"):
                    found.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                if isinstance(v, str) and v.endswith(".parquet"):
                    found.append(v)
                else:
                    walk(v)

    walk(meta.get("inputs", meta))
    paths = []
    for f in dict.fromkeys(found):
        p = Path(f)
        for cand in (p, adir / p, adir.parent / p):
            if cand.is_file():
                paths.append(cand)
                break
        else:
            raise DatasetError(f"{f}: dataset file named in {meta_path.name} not found")
    return paths


def _dataset_columns(paths: Iterable[Path]) -> pd.DataFrame:
    frames = []
    for p in paths:
        files = sorted(p.rglob("*.parquet")) if p.is_dir() else [p]
        for f in files:
            try:
                names = set(pq.read_schema(f).names)
                cols = [c for c in _DATASET_COLUMNS if c in names]
                if "measurement_id" not in cols:
                    continue
                frames.append(pq.read_table(f, columns=cols).to_pandas())
            except Exception as exc:
                raise DatasetError(f"{f}: unreadable dataset file ({exc})") from exc
    if not frames:
        return pd.DataFrame(columns=list(_DATASET_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def compare_ooni(analysis_dir: Path, datasets: Sequence[Path] | None = None) -> ComparisonResult:
    """Compare the verdicts in ``analysis_dir`` with OONI's, for imported OONI measurements."""
    adir = Path(analysis_dir)
    verdicts = _read_verdicts(adir)
    missing = {"measurement_id", "status"} - set(verdicts.columns)
    if missing:
        raise DatasetError(f"{adir}: verdicts table lacks {', '.join(sorted(missing))}")
    need = {"ooni_blocking", "ooni_accessible", "data_source"}
    if not need <= set(verdicts.columns) or datasets is not None:
        paths = list(datasets) if datasets is not None else _input_paths(adir)
        extra = _dataset_columns(paths).drop_duplicates("measurement_id")
        keep = [c for c in extra.columns if c == "measurement_id" or c not in verdicts.columns]
        verdicts = verdicts.merge(extra[keep], on="measurement_id", how="left")
    if "data_source" not in verdicts.columns:
        raise DatasetError(f"{adir}: no imported OONI measurements found (no data_source column)")
    ooni = verdicts[verdicts["data_source"] == "ooni"]
    if "is_control" in ooni.columns:
        ooni = ooni[~ooni["is_control"].fillna(False).astype(bool)]
    if "mechanism" not in ooni.columns:
        ooni = ooni.assign(mechanism=None)
    return compare(ooni)


# --------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def comparison_lines(result: ComparisonResult) -> list[str]:
    """Plain text: summary, matrix (tab-separated), disagreements, denials OONI called fine."""
    r = result
    lines = [
        f"compared {r.compared} OONI measurements (+{r.no_ooni_verdict} without an OONI verdict)",
        f"agree {r.agree} ({_pct(r.agreement)}), partial {r.partial}, disagree {r.disagree}",
        "",
        "\t".join(["OONI \\ res64", *RES64_CLASSES]),
    ]
    for o in OONI_CLASSES:
        lines.append("\t".join([o, *(str(r.matrix.get(o, Counter())[c]) for c in RES64_CLASSES)]))
    if r.disagreements:
        lines += ["", "disagreements:"]
        for d in r.disagreements:
            lines.append(
                f"  [{d.kind}] {d.probe_cc} {d.url} {d.measurement_id}: "
                f"OONI {d.ooni} ({d.ooni_reason}) | res64 {d.res64} ({d.res64_reason})"
            )
    if r.denied_but_ooni_accessible:
        lines += ["", "denied by res64, accessible for OONI:"]
        for d in r.denied_but_ooni_accessible:
            lines.append(f"  {d.probe_cc} {d.url} {d.measurement_id}: {d.res64_reason}")
    return lines


def comparison_tables(result: ComparisonResult) -> list[Any]:
    """The same as rich tables (matrix, disagreements, denials OONI called accessible)."""
    from rich.table import Table

    r = result
    matrix = Table(
        title=(
            f"res64 vs OONI: {r.compared} compared, agree {r.agree} ({_pct(r.agreement)}), "
            f"partial {r.partial}, disagree {r.disagree}"
        )
    )
    matrix.add_column("OONI \\ res64", style="bold")
    for c in RES64_CLASSES:
        matrix.add_column(c, justify="right")
    for o in OONI_CLASSES:
        counts = r.matrix.get(o, Counter())
        cells = []
        for c in RES64_CLASSES:
            n = counts[c]
            style = "green" if c in _AGREES.get(o, ()) else ("red" if n else "dim")
            cells.append(f"[{style}]{n}[/{style}]")
        matrix.add_row(o, *cells)
    tables: list[Any] = [matrix]
    if r.disagreements:
        t = Table(title="Disagreements")
        for col in ("kind", "cc", "url", "OONI", "res64"):
            t.add_column(col, overflow="fold")
        for d in r.disagreements:
            t.add_row(d.kind, d.probe_cc, d.url, d.ooni_reason, d.res64_reason, end_section=False)
        tables.append(t)
    if r.denied_but_ooni_accessible:
        t = Table(title="Denied by res64, accessible for OONI")
        for col in ("cc", "url", "measurement", "res64"):
            t.add_column(col, overflow="fold")
        for d in r.denied_but_ooni_accessible:
            t.add_row(d.probe_cc, d.url, d.measurement_id, d.res64_reason)
        tables.append(t)
    return tables
