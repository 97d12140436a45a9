"""``res64 report``: evidence reports (Markdown, HTML, CSV, XLSX, DOCX, PNG/SVG figures).

The only analysis module that writes report files.  It reads an analysis directory (the output
of ``res64 analyze``)::

    analysis.json                 inputs + SHA-256, versions, window, period, vantages, command
    pairs.parquet  | pairs.csv    one row per (affected_cc, responsible_cc)
    targets.parquet| targets.csv  one row per (affected_cc, url)
    verdicts.parquet              (optional) one row per measurement: example page titles

builds one language-specific :class:`~analysis.report_model.Report` from it (pure), and hands
that to one writer per format, so every format holds the same numbers::

    generate_report(Path("analysis"), Path("report"), formats=("html", "docx"), lang="fr")

Outputs in ``out_dir``: ``report.md``, ``report.html`` (self-contained: inline styles and
base64 figures, a Content-Security-Policy that forbids every script), ``csv/<table>.csv``,
``report.xlsx``, ``report.docx`` and ``figures/{heatmap,mechanisms}.{png,svg}``.  Templates
live in ``reports/templates/``.  Every file is written to a temporary name and renamed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from analysis.load import sha256_file
from analysis.report_figures import RenderedFigure, render_figures
from analysis.report_i18n import LANGS
from analysis.report_model import FileInfo, Report, build_report, display
from analysis.report_safety import md_cell
from probe._version import __version__
from probe.errors import ConfigError, DatasetError
from reports import TEMPLATES

__all__ = ["FORMATS", "LANGS", "generate_report", "load_analysis", "parse_formats"]

FORMATS: tuple[str, ...] = ("md", "html", "csv", "xlsx", "docx", "png")
"""Every output format, in the order they are written."""

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'none'"
)
"""The report page's Content-Security-Policy: no script, no external resource, no form."""
_VERDICT_COLUMNS = (
    "measurement_id", "url", "probe_cc", "status", "http_title", "vantage_id", "probe_asn",
    "probe_as_name",
)  # fmt: skip
_REQUIRED = {"pairs": ("affected_cc",), "targets": ("affected_cc", "url", "status")}


# -- reading the analysis directory ------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _read_table(
    adir: Path, stem: str, columns: Sequence[str] | None = None
) -> tuple[pd.DataFrame, Path]:
    """``<stem>.parquet`` (preferred) or ``<stem>.csv`` and its path; DatasetError if neither."""
    parquet, csv_ = adir / f"{stem}.parquet", adir / f"{stem}.csv"
    path = parquet if parquet.exists() else csv_
    if not path.exists():
        raise DatasetError(f"{adir}: no {stem}.parquet or {stem}.csv (is this an analysis dir?)")
    try:
        if path.suffix == ".parquet":
            ds = pads.dataset(path, format="parquet")
            cols = None if columns is None else [c for c in columns if c in ds.schema.names]
            return ds.to_table(columns=cols).to_pandas(), path
        # keep_default_na=False: "NA" is Namibia's country code, not a missing value
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], usecols=(
            None if columns is None else lambda c: c in columns
        ))  # fmt: skip
        return df, path
    except (OSError, ValueError, TypeError, pd.errors.ParserError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: cannot read ({_one_line(exc)})") from exc


def _read_meta(adir: Path) -> dict[str, Any]:
    path = adir / "analysis.json"
    if not path.is_file():
        raise DatasetError(f"{adir}: no analysis.json (is this an analysis dir?)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read ({_one_line(exc)})") from exc
    if not isinstance(meta, dict):
        raise DatasetError(f"{path}: not a JSON object")
    return meta


def _file_infos(paths: Iterable[Path]) -> list[FileInfo]:
    return [FileInfo(p.name, p.stat().st_size, sha256_file(p)) for p in paths if p.is_file()]


def load_analysis(
    analysis_dir: Path,
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, pd.DataFrame | None, list[FileInfo]]:
    """(metadata, targets, pairs, verdicts or None, files read with their SHA-256)."""
    adir = Path(analysis_dir)
    if not adir.is_dir():
        raise DatasetError(f"{adir}: not a directory (expected the output of `res64 analyze`)")
    meta = _read_meta(adir)
    pairs, pairs_path = _read_table(adir, "pairs")
    targets, targets_path = _read_table(adir, "targets")
    read = [adir / "analysis.json", pairs_path, targets_path]
    for stem, df in (("pairs", pairs), ("targets", targets)):
        missing = [c for c in _REQUIRED[stem] if c not in df.columns]
        if missing:
            raise DatasetError(f"{adir}: {stem} lacks column(s) {', '.join(missing)}")
    verdicts = None
    if (adir / "verdicts.parquet").exists():
        verdicts = _read_verdicts(adir / "verdicts.parquet")
        read.append(adir / "verdicts.parquet")
    return meta, targets, pairs, verdicts, _file_infos(read)


def _read_verdicts(path: Path) -> pd.DataFrame:
    """What the report needs of the per-measurement verdicts, bounded in memory.

    The denied rows with their page titles, plus one row per vantage (country, ASN, network
    name); ``attrs["rows"]`` holds the number of verdicts.  Millions of accessible rows are
    never turned into Python objects.
    """
    try:
        ds = pads.dataset(path, format="parquet")
        names = set(ds.schema.names)
        wanted = [c for c in _VERDICT_COLUMNS if c in names]
        if "status" in names:
            denied = ds.to_table(columns=wanted, filter=pc.field("status") == "denied")
        else:
            denied = ds.to_table(columns=wanted).slice(0, 0)
        vcols = [c for c in ("vantage_id", "probe_cc", "probe_asn", "probe_as_name") if c in names]
        frames = [denied.to_pandas()]
        if vcols:
            frames.append(ds.to_table(columns=vcols).to_pandas().drop_duplicates())
        rows = ds.count_rows()
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: cannot read ({_one_line(exc)})") from exc
    frames = [f.astype(object) for f in frames if len(f)]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=wanted)
    out.attrs["rows"] = rows
    return out


# -- writers -------------------------------------------------------------------------------


class _Raw(str):
    """Trusted Markdown (figure paths written by this module): not escaped."""


def _md_finalize(value: Any) -> str:
    if isinstance(value, _Raw):
        return value
    return md_cell(value, 0)


def _environment(markdown: bool) -> jinja2.Environment:
    if not (TEMPLATES / "report.html.j2").is_file():
        raise ConfigError(f"report templates not found in {TEMPLATES}")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=not markdown,  # HTML: every {{ }} is escaped; no template bypasses it
        finalize=_md_finalize if markdown else None,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals["cell"] = display
    return env


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def _write_bytes(path: Path, data: bytes) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def render_markdown(report: Report, figure_paths: Sequence[str]) -> str:
    """The Markdown report (figures referenced by relative path, when written)."""
    tpl = _environment(markdown=True).get_template("report.md.j2")
    return tpl.render(r=report, figures=[_Raw(p) for p in figure_paths])


def render_html(report: Report, figures: Sequence[RenderedFigure]) -> str:
    """The self-contained HTML report (inline CSS, base64 PNG figures, strict CSP)."""
    import base64

    tpl = _environment(markdown=False).get_template("report.html.j2")
    images = [
        (f.title, "data:image/png;base64," + base64.b64encode(f.png).decode("ascii"))
        for f in figures
    ]
    return tpl.render(r=report, figures=images, csp=CSP)


def parse_formats(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"md,html"`` or a sequence → validated formats in :data:`FORMATS` order."""
    if value is None:
        return FORMATS
    items = value.split(",") if isinstance(value, str) else list(value)
    wanted = {i.strip().lower() for i in items if i.strip()}
    unknown = sorted(wanted - set(FORMATS))
    if unknown or not wanted:
        raise ConfigError(
            f"unknown report format(s) {', '.join(unknown) or '(none)'}; "
            f"choose from {','.join(FORMATS)}"
        )
    return tuple(f for f in FORMATS if f in wanted)


def generate_report(
    analysis_dir: Path,
    out_dir: Path,
    *,
    formats: Sequence[str] = FORMATS,
    title: str | None = None,
    lang: str = "en",
    command: list[str] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Path]:
    """Write the report of ``analysis_dir`` into ``out_dir``; returns format → path.

    ``csv`` maps to the ``csv/`` directory (one file per table) and ``png`` to ``figures/``
    (PNG and SVG of each figure); the others map to ``report.<format>``.  Raises
    :class:`~probe.errors.DatasetError` when the analysis files are missing or unreadable and
    :class:`~probe.errors.ConfigError` for an unknown format or language.
    """
    fmts = parse_formats(formats)
    if lang not in LANGS:
        raise ConfigError(f"unknown report language {lang!r}; choose from {', '.join(LANGS)}")
    meta, targets, pairs, verdicts, files = load_analysis(Path(analysis_dir))
    report = build_report(
        meta=meta,
        targets=targets,
        pairs=pairs,
        verdicts=verdicts,
        analysis_files=files,
        lang=lang,
        title=title,
        command=command,
        software_version=__version__,
        generated_at=generated_at,
    )
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot create the output directory ({_one_line(exc)})") from exc
    figures: list[RenderedFigure] = []
    if {"html", "docx", "png"} & set(fmts):
        figures = render_figures(report.figures_data, report.t, report.figure_titles)
    written: dict[str, Path] = {}
    figure_paths: list[str] = []
    if "png" in fmts:
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        for f in figures:
            _write_bytes(fig_dir / f"{f.key}.png", f.png)
            _write_bytes(fig_dir / f"{f.key}.svg", f.svg)
            figure_paths.append(f"figures/{f.key}.png")
        written["png"] = fig_dir
    if "md" in fmts:
        written["md"] = _write_text(out / "report.md", render_markdown(report, figure_paths))
    if "html" in fmts:
        written["html"] = _write_text(out / "report.html", render_html(report, figures))
    if "csv" in fmts:
        from analysis.report_xlsx import write_csv_dir

        written["csv"] = write_csv_dir(report, out / "csv")
    if "xlsx" in fmts:
        from analysis.report_xlsx import write_xlsx

        written["xlsx"] = write_xlsx(report, out / "report.xlsx")
    if "docx" in fmts:
        from analysis.report_docx import write_docx

        written["docx"] = write_docx(report, figures, out / "report.docx")
    return {f: written[f] for f in fmts}
