"""The report as data: every table, text and figure input, in one language (pure, no I/O).

:func:`build_report` turns the analysis outputs (already read into DataFrames and a metadata
dict) into a :class:`Report`.  Every writer (Markdown, HTML, CSV, XLSX, DOCX, figures) renders
the same :class:`Report`, so all formats hold the same numbers.  Values that came from the
network are cleaned here (:func:`analysis.report_safety.clean_text`: no control characters,
bounded length); each writer then escapes them for its own format.

The analysis outputs are read tolerantly: extra columns are ignored, optional ones may be
missing, lists may arrive as arrays, JSON strings or ``;``-separated text, and counts as dicts
or JSON strings.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from analysis.report_i18n import CONFIDENCES, LOCI, MECHANISMS, STATUSES, texts
from analysis.report_safety import clean_text
from analysis.report_values import (
    as_counts,
    as_float,
    as_int,
    as_list,
    as_str,
    as_ts,
    column,
    counts_text,
    display,
    missing,
)

__all__ = [
    "MAX_ROWS_SHOWN",
    "Column",
    "FileInfo",
    "HeatmapData",
    "Report",
    "Table",
    "build_report",
    "display",
]

MAX_ROWS_SHOWN = 500
"""Rows of one table shown in Markdown, HTML and DOCX (CSV and XLSX hold every row)."""
MAX_FILES_SHOWN = 100
MAX_EXAMPLES = 3
TITLE_CHARS = 120
_CONF_ORDER = {c: i for i, c in enumerate(CONFIDENCES)}
_SAFE_KEY = re.compile(r"[A-Za-z0-9]{1,12}")
_LIMITATIONS = (
    "limit_geoblock", "limit_resets", "limit_coverage", "limit_geoip", "limit_targets",
    "limit_titles",
)  # fmt: skip


@dataclass(frozen=True)
class Column:
    """One column; ``kind``: text, int, share (0–1), date, url, code (ids) or hash."""

    key: str
    label: str
    kind: str = "text"


@dataclass(frozen=True)
class Table:
    """One numbered table; ``rows`` hold typed values (str, int, float share, None)."""

    key: str  # file/sheet stem: [a-z0-9_]+
    number: int
    title: str  # "Table 1 – caption"
    caption: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    wide: bool = False
    limit: int = MAX_ROWS_SHOWN

    @property
    def shown(self) -> tuple[tuple[Any, ...], ...]:
        """The rows shown in documents (all rows go to CSV/XLSX)."""
        return self.rows[: self.limit]

    @property
    def truncated(self) -> bool:
        return len(self.rows) > self.limit


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int | None
    sha256: str


@dataclass(frozen=True)
class HeatmapData:
    """Inputs of both figures: share per (affected, responsible) and mechanisms per pair."""

    affected: tuple[str, ...]
    responsible: tuple[str, ...]  # the unattributed label last
    cells: Mapping[tuple[str, str], tuple[float, int, int]]  # share, denied, tested
    mechanisms: tuple[tuple[str, Mapping[str, int]], ...]  # ("IR → US", {mech: n})


@dataclass(frozen=True)
class Report:
    """Everything a writer needs, already in the report's language."""

    lang: str
    t: Mapping[str, str]
    title: str
    subtitle: str
    period: str
    generated_at: str
    summary_intro: str
    key_figures: tuple[tuple[str, int], ...]
    summary: tuple[str, ...]
    pairs: Table
    figures_data: HeatmapData
    figure_titles: tuple[str, str]
    target_tables: tuple[Table, ...]
    inconclusive: Table
    vantage_tables: tuple[Table, ...]
    method: tuple[str, ...]
    definitions: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    glossary: Table | None
    limitations: tuple[str, ...]
    provenance: tuple[Table, ...]
    about: Table | None = None

    def truncated_note(self, table: Table) -> str:
        """The note under a table whose rows are not all shown ('' when all are)."""
        if not table.truncated:
            return ""
        return self.t["truncated_note"].format(shown=table.limit, total=len(table.rows))

    def all_tables(self) -> list[Table]:
        """Every table in document order (the ``about`` table first, for workbooks)."""
        out = [self.about] if self.about is not None else []
        out += [self.pairs, *self.target_tables, self.inconclusive, *self.vantage_tables]
        if self.glossary is not None:
            out.append(self.glossary)
        return [*out, *self.provenance]


# -- the report ---------------------------------------------------------------------------


@dataclass
class _Numberer:
    t: Mapping[str, str]
    n: int = 0

    def table(
        self,
        key: str,
        caption: str,
        columns: Sequence[Column],
        rows: Iterable[Sequence[Any]],
        *,
        note: str = "",
        wide: bool = False,
        limit: int = MAX_ROWS_SHOWN,
    ) -> Table:
        self.n += 1
        title = f"{self.t['table']} {self.n} – {caption}"
        rows_ = tuple(tuple(r) for r in rows)
        return Table(key, self.n, title, caption, tuple(columns), rows_, note, wide, limit)


def _responsible(v: Any, t: Mapping[str, str]) -> str:
    return clean_text(as_str(v) or t["unattributed"], 20)


def _window_text(window: Any) -> str:
    if missing(window) or window == "":
        return "24 h"
    if isinstance(window, int | float):
        hours = float(window) / 3600
        return f"{hours:g} h"
    if isinstance(window, Mapping):
        return _window_text(window.get("seconds") or window.get("window"))
    s = clean_text(window, 20)
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd])", s)
    return f"{m.group(1)} {m.group(2)}" if m else s


def _command_text(cmd: Any) -> str:
    if missing(cmd) or cmd == "" or cmd == []:
        return ""
    if isinstance(cmd, str):
        return clean_text(cmd, 2000)
    return clean_text(shlex.join(str(c) for c in cmd), 2000)


def _period(meta: Mapping[str, Any], targets: pd.DataFrame) -> tuple[str, str]:
    period = meta.get("period") or {}
    first = as_ts(period.get("first") or period.get("start")) if isinstance(period, Mapping) else ""
    last = as_ts(period.get("last") or period.get("end")) if isinstance(period, Mapping) else ""
    if not first and len(targets):
        first = min((s for s in map(as_ts, column(targets, "first_seen")) if s), default="")
    if not last and len(targets):
        last = max((s for s in map(as_ts, column(targets, "last_seen")) if s), default="")
    return first or "?", last or "?"


def _vantages(
    meta: Mapping[str, Any], verdicts: pd.DataFrame | None
) -> tuple[int, dict[str, int], dict[str, int], dict[str, str]]:
    """(count, vantages per country, vantages per ASN, AS names) — never addresses."""
    v = meta.get("vantages") or {}
    count = as_int(v.get("count")) if isinstance(v, Mapping) else 0
    countries = as_counts(v.get("countries")) if isinstance(v, Mapping) else {}
    asns = as_counts(v.get("asns") or v.get("networks")) if isinstance(v, Mapping) else {}
    names: dict[str, str] = {}
    if verdicts is not None and len(verdicts) and "vantage_id" in verdicts.columns:
        vd = verdicts.drop_duplicates("vantage_id")
        if not countries and "probe_cc" in vd.columns:
            countries = as_counts(vd["probe_cc"].dropna().astype(str).value_counts().to_dict())
        if not asns and "probe_asn" in vd.columns:
            asns = as_counts(vd["probe_asn"].dropna().astype("int64").astype(str).value_counts())
        count = count or len(vd)
    if verdicts is not None and {"probe_asn", "probe_as_name"} <= set(verdicts.columns):
        pairs = verdicts[["probe_asn", "probe_as_name"]].dropna().drop_duplicates("probe_asn")
        names = {str(int(a)): clean_text(n, 80) for a, n in pairs.itertuples(index=False)}
    count = count or sum(countries.values())
    return count, countries, asns, names


def _titles(verdicts: pd.DataFrame | None) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """Page titles of denied measurements: by measurement id, and by (probe_cc, url)."""
    if verdicts is None or not len(verdicts) or "http_title" not in verdicts.columns:
        return {}, {}
    v = verdicts[verdicts["http_title"].notna()]
    if "status" in v.columns:
        v = v[v["status"] == "denied"]
    by_id: dict[str, str] = {}
    by_target: dict[tuple[str, str], str] = {}
    for row in v.itertuples(index=False):
        title = clean_text(row.http_title, TITLE_CHARS)
        if not title:
            continue
        if "measurement_id" in v.columns:
            by_id.setdefault(str(row.measurement_id), title)
        if {"probe_cc", "url"} <= set(v.columns):
            by_target.setdefault((str(row.probe_cc), str(row.url)), title)
    return by_id, by_target


def _pairs_part(
    pairs: pd.DataFrame, t: Mapping[str, str], num: _Numberer, note: str
) -> tuple[Table, HeatmapData]:
    """Table 1 (one row per country pair) and the inputs of both figures."""
    cols = (
        Column("affected_cc", t["c_affected"]),
        Column("responsible_cc", t["c_responsible"]),
        Column("targets_denied", t["c_targets_denied"], "int"),
        Column("targets_tested", t["c_targets_tested"], "int"),
        Column("share_denied", t["c_share"], "share"),
        Column("mechanisms", t["c_mechanisms"]),
        Column("confidence", t["c_confidence"]),
        Column("measurements", t["c_measurements"], "int"),
        Column("vantages", t["c_vantages"], "int"),
        Column("asns", t["c_networks"], "int"),
        Column("first_seen", t["c_first_seen"], "date"),
        Column("last_seen", t["c_last_seen"], "date"),
    )
    rows = []
    mech_by_pair = []
    cells: dict[tuple[str, str], tuple[float, int, int]] = {}
    for r in pairs.to_dict("records"):
        aff = clean_text(as_str(r.get("affected_cc")) or "?", 20)
        resp = _responsible(r.get("responsible_cc"), t)
        denied, tested = as_int(r.get("targets_denied")), as_int(r.get("targets_tested"))
        share = as_float(r.get("share_denied"))
        if share is None:
            share = denied / tested if tested else 0.0
        mechs = as_counts(r.get("mechanisms"))
        conf = as_counts(r.get("confidence"))
        conf = dict(sorted(conf.items(), key=lambda kv: _CONF_ORDER.get(kv[0], 9)))
        rows.append((
            aff, resp, denied, tested, round(share, 4), counts_text(mechs), counts_text(conf),
            as_int(r.get("measurements")), as_int(r.get("vantages")), as_int(r.get("asns")),
            as_ts(r.get("first_seen")), as_ts(r.get("last_seen")),
        ))  # fmt: skip
        if denied:
            cells[(aff, resp)] = (share, denied, tested)
            mech_by_pair.append((aff, resp, mechs))
    unattr = t["unattributed"]

    def order(aff: str, resp: str) -> tuple[str, bool, str]:
        return aff, resp == unattr, resp

    rows.sort(key=lambda r: order(r[0], r[1]))
    mech_by_pair.sort(key=lambda p: order(p[0], p[1]))
    responsible = sorted({k[1] for k in cells} - {unattr})
    heat = HeatmapData(
        affected=tuple(sorted({k[0] for k in cells})),
        responsible=tuple(responsible + ([unattr] if any(k[1] == unattr for k in cells) else [])),
        cells=cells,
        mechanisms=tuple((f"{a} → {r}", m) for a, r, m in mech_by_pair),
    )
    return num.table("pairs", t["cap_pairs"], cols, rows, note=note, wide=True), heat


def _target_tables(
    denied: pd.DataFrame,
    verdicts: pd.DataFrame | None,
    t: Mapping[str, str],
    num: _Numberer,
    note: str,
) -> list[Table]:
    """One table of denied targets per affected country (confirmed first)."""
    by_id, by_target = _titles(verdicts)
    has_category = column(denied, "category_code").notna().any()
    cols = [
        Column("url", t["c_url"], "url"),
        *([Column("category_code", t["c_category"])] if has_category else []),
        Column("mechanism", t["c_mechanism"]),
        Column("locus", t["c_locus"]),
        Column("responsible_cc", t["c_responsible"]),
        Column("confidence", t["c_confidence"]),
        Column("n_denied", t["c_n_denied"], "int"),
        Column("n_measurements", t["c_measurements"], "int"),
        Column("n_controls_ok", t["c_controls_ok"], "int"),
        Column("control_ccs", t["c_control_ccs"]),
        Column("first_seen", t["c_first_seen"], "date"),
        Column("last_seen", t["c_last_seen"], "date"),
        Column("example_measurement_ids", t["c_examples"], "code"),
        Column("page_title", t["c_page_title"]),
    ]
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for r in denied.to_dict("records"):
        cc = clean_text(as_str(r.get("affected_cc")) or "?", 20)
        url = as_str(r.get("url")) or ""
        examples = as_list(r.get("example_measurement_ids"))
        page_title = next((by_id[e] for e in examples if e in by_id), None)
        grouped.setdefault(cc, []).append((
            clean_text(url),
            *([clean_text(as_str(r.get("category_code")) or "", 20)] if has_category else []),
            clean_text(as_str(r.get("mechanism")) or "", 40),
            clean_text(as_str(r.get("locus")) or "", 20),
            _responsible(r.get("responsible_cc"), t),
            clean_text(as_str(r.get("confidence")) or "", 20),
            as_int(r.get("n_denied")),
            as_int(r.get("n_measurements")),
            as_int(r.get("n_controls_ok")),
            ", ".join(clean_text(c, 8) for c in as_list(r.get("control_ccs"))),
            as_ts(r.get("first_seen")),
            as_ts(r.get("last_seen")),
            ", ".join(clean_text(e, 80) for e in examples[:MAX_EXAMPLES]),
            page_title or by_target.get((cc, url), ""),
        ))  # fmt: skip
    ci = next(i for i, c in enumerate(cols) if c.key == "confidence")
    mi = next(i for i, c in enumerate(cols) if c.key == "mechanism")
    tables = []
    used: set[str] = set()
    for i, cc in enumerate(sorted(grouped), start=1):
        rows = sorted(grouped[cc], key=lambda r: (_CONF_ORDER.get(r[ci], 9), r[mi], r[0]))
        key = f"denied_{cc}" if _SAFE_KEY.fullmatch(cc) else f"denied_{i:03d}"
        key = key if key not in used else f"{key}_{i:03d}"
        used.add(key)
        cap = t["cap_targets"].format(cc=cc)
        tables.append(num.table(key, cap, cols, rows, note=note, wide=True))
    return tables


def _inconclusive_table(
    other: pd.DataFrame, t: Mapping[str, str], num: _Numberer, note: str
) -> Table:
    """Targets counted but not accused: inconclusive, or down everywhere."""
    cols = (
        Column("affected_cc", t["c_affected"]),
        Column("url", t["c_url"], "url"),
        Column("status", t["c_status"]),
        Column("mechanism", t["c_mechanism"]),
        Column("n_measurements", t["c_measurements"], "int"),
        Column("n_denied", t["c_n_failed"], "int"),
        Column("n_controls_ok", t["c_controls_ok"], "int"),
        Column("first_seen", t["c_first_seen"], "date"),
        Column("last_seen", t["c_last_seen"], "date"),
    )
    rows = sorted(
        (
            clean_text(as_str(r.get("affected_cc")) or "?", 20),
            clean_text(as_str(r.get("url")) or ""),
            clean_text(as_str(r.get("status")) or "", 20),
            clean_text(as_str(r.get("mechanism")) or "", 40),
            as_int(r.get("n_measurements")),
            as_int(r.get("n_denied")),
            as_int(r.get("n_controls_ok")),
            as_ts(r.get("first_seen")),
            as_ts(r.get("last_seen")),
        )
        for r in other.to_dict("records")
    )
    return num.table("inconclusive", t["cap_inconclusive"], cols, rows, note=note, wide=True)


def _vantage_tables(
    countries: Mapping[str, int],
    asns: Mapping[str, int],
    as_names: Mapping[str, str],
    t: Mapping[str, str],
    num: _Numberer,
) -> tuple[Table, Table]:
    """Vantage points counted by country and by network (never addresses)."""
    by_country = num.table(
        "vantage_countries",
        t["cap_vantage_countries"],
        (Column("cc", t["c_country"]), Column("n", t["c_vantages"], "int")),
        sorted((clean_text(k, 20), n) for k, n in countries.items()),
    )
    rows = [
        (f"AS{clean_text(k, 20).removeprefix('AS')}", as_names.get(k, ""), n)
        for k, n in asns.items()
    ]
    rows.sort(key=lambda r: (int(r[0][2:]) if r[0][2:].isdigit() else 1 << 40, r[0]))
    cols = (
        Column("asn", t["c_asn"]),
        Column("as_name", t["c_as_name"]),
        Column("n", t["c_vantages"], "int"),
    )
    return by_country, num.table("vantage_networks", t["cap_vantage_networks"], cols, rows)


def _glossary(
    targets: pd.DataFrame, heat: HeatmapData, t: Mapping[str, str], num: _Numberer
) -> Table | None:
    """One-line explanations of the mechanisms that appear in the report."""
    seen = {str(m) for m in column(targets, "mechanism").dropna()} - {"none"}
    for _, mechs in heat.mechanisms:
        seen |= set(mechs)
    rows = [(m, t[f"mech_{m}"]) for m in MECHANISMS if m in seen]
    if not rows:
        return None
    cols = (Column("term", t["c_term"]), Column("meaning", t["c_meaning"]))
    return num.table("mechanisms", t["cap_glossary"], cols, rows)


def _provenance(
    meta: Mapping[str, Any],
    analysis_files: Sequence[FileInfo],
    versions: Sequence[tuple[str, str]],
    t: Mapping[str, str],
    num: _Numberer,
) -> tuple[Table, Table, Table]:
    """Dataset files, analysis files (with SHA-256), versions and commands."""
    inputs = []
    for f in meta.get("inputs") or []:
        if isinstance(f, Mapping):
            path = clean_text(f.get("path") or f.get("file") or "", 500)
            inputs.append((path, as_int(f.get("size")) or None, clean_text(f.get("sha256"), 80)))
        else:
            inputs.append((clean_text(f, 500), None, ""))
    cols = (
        Column("path", t["c_file"], "code"),
        Column("size", t["c_size"], "int"),
        Column("sha256", t["c_sha256"], "hash"),
    )
    ds = num.table("dataset_files", t["cap_dataset_files"], cols, inputs, limit=MAX_FILES_SHOWN)
    an_rows = [(f.path, f.size, f.sha256) for f in analysis_files]
    an = num.table("analysis_files", t["cap_analysis_files"], cols, an_rows)
    kv = (Column("item", t["c_item"]), Column("value", t["c_value"], "code"))
    return ds, an, num.table("versions", t["cap_versions"], kv, versions)


def build_report(
    *,
    meta: Mapping[str, Any],
    targets: pd.DataFrame,
    pairs: pd.DataFrame,
    verdicts: pd.DataFrame | None,
    analysis_files: Sequence[FileInfo],
    lang: str = "en",
    title: str | None = None,
    command: Sequence[str] | None = None,
    software_version: str = "",
    generated_at: datetime | None = None,
) -> Report:
    """Pure: the :class:`Report` of one analysis in language ``lang``."""
    t = texts(lang)
    num = _Numberer(t)
    generated = (generated_at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    first, last = _period(meta, targets)
    counts = meta.get("counts") if isinstance(meta.get("counts"), Mapping) else {}
    n_verdicts = verdicts.attrs.get("rows", len(verdicts)) if verdicts is not None else 0
    n_meas = as_int(counts.get("measurements")) or n_verdicts
    n_meas = n_meas or sum(as_int(x) for x in column(pairs, "measurements"))
    note = t["source_note"].format(measurements=n_meas, first=first[:10], last=last[:10])
    n_vant, v_countries, v_asns, as_names = _vantages(meta, verdicts)
    status = column(targets, "status").astype(object)
    denied = targets[status == "denied"]

    # tables in document order (their numbers follow)
    pairs_table, heat = _pairs_part(pairs, t, num, note)
    target_tables = _target_tables(denied, verdicts, t, num, note)
    inconclusive = _inconclusive_table(targets[status.isin(["inconclusive", "down"])], t, num, note)
    vantage_tables = _vantage_tables(v_countries, v_asns, as_names, t, num)
    glossary = _glossary(targets, heat, t, num)
    rules_v = clean_text(meta.get("rules_version", "?"), 40) or "?"
    fp_v = clean_text(meta.get("fingerprints_version", "?"), 40) or "?"
    window = _window_text(meta.get("window"))
    analysis_counts = ", ".join(
        f"{clean_text(k, 40)} {as_int(v)}" for k, v in counts.items() if not isinstance(v, Mapping)
    )
    provenance = _provenance(
        meta,
        analysis_files,
        [
            (t["k_software_analysis"], clean_text(meta.get("software_version", ""), 80)),
            (t["k_software_report"], software_version),
            (t["k_rules"], rules_v),
            (t["k_fingerprints"], fp_v),
            (t["k_window"], window),
            (t["k_analysis_generated"], as_ts(meta.get("generated_at"))),
            (t["k_report_generated"], generated),
            (t["k_analysis_command"], _command_text(meta.get("command"))),
            (t["k_report_command"], _command_text(command)),
            (t["k_counts"], analysis_counts),
        ],
        t,
        num,
    )

    key_figures = (
        (t["kf_vantages"], n_vant),
        (t["kf_vantage_countries"], len(v_countries)),
        (t["kf_vantage_networks"], len(v_asns)),
        (t["kf_targets"], int(column(targets, "url").nunique())),
        (t["kf_measurements"], n_meas),
        (t["kf_denials"], len(denied)),
        (t["kf_denied_targets"], int(column(denied, "url").nunique())),
        (t["kf_affected"], len(target_tables)),
        (t["kf_pairs"], len(heat.cells)),
        (t["kf_unattributed"], int(column(denied, "responsible_cc").map(as_str).isna().sum())),
        (t["kf_inconclusive"], int((status == "inconclusive").sum())),
        (t["kf_down"], int(column(targets[status == "down"], "url").nunique())),
    )
    report_title = clean_text(title, 200) if title else t["title_default"]
    period_text = t["period_value"].format(first=first, last=last)
    documented = [pairs_table, *target_tables, inconclusive, *vantage_tables]
    documented += [glossary] if glossary is not None else []
    documented += provenance
    about = Table(
        "about",
        0,
        t["cap_about"],
        t["cap_about"],
        (Column("item", t["c_item"]), Column("value", t["c_value"])),
        (
            (t["k_title"], report_title),
            (t["k_period"], period_text),
            (t["generated"], generated),
            (t["k_language"], lang),
            *((tb.key, tb.title) for tb in documented),
        ),
    )
    return Report(
        lang=lang,
        t=t,
        title=report_title,
        subtitle=t["subtitle"],
        period=period_text,
        generated_at=generated,
        summary_intro=t["summary_intro"].format(first=first, last=last),
        key_figures=key_figures,
        summary=() if len(denied) else (t["summary_none"],),
        pairs=pairs_table,
        figures_data=heat,
        figure_titles=(
            f"{t['figure']} 1 – {t['fig_heatmap']}",
            f"{t['figure']} 2 – {t['fig_mechanisms']}",
        ),
        target_tables=tuple(target_tables),
        inconclusive=inconclusive,
        vantage_tables=vantage_tables,
        method=(
            t["method_steps"],
            t["method_controls"].format(window=window),
            t["method_rules"].format(rules=rules_v, fingerprints=fp_v),
            t["method_attribution"].format(unattributed=t["unattributed"]),
        ),
        definitions=(
            (t["s_confidence"], tuple((c, t[f"conf_{c}"]) for c in CONFIDENCES)),
            (t["s_locus"], tuple((c, t[f"locus_{c}"]) for c in LOCI)),
            (t["s_status"], tuple((s, t[f"status_{s}"]) for s in STATUSES)),
        ),
        glossary=glossary,
        limitations=tuple(t[k] for k in _LIMITATIONS),
        provenance=provenance,
        about=about,
    )
