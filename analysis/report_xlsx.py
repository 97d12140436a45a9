"""Spreadsheet outputs of the report: one CSV file per table, and an XLSX workbook.

Both hold *every* row of every table (documents show at most a few hundred) with typed values:
counts are numbers, shares are fractions (formatted as percentages in the workbook).  Every
string cell passes through :func:`analysis.report_safety.neutralise_cell`, so a page title such
as ``=HYPERLINK(...)`` stays text.  CSV files are UTF-8 with a byte-order mark (so that
spreadsheet programs detect the encoding) and a header row of translated column labels.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from analysis.report_model import Report, Table
from analysis.report_safety import neutralise_cell

__all__ = ["write_csv_dir", "write_xlsx"]

MAX_COLUMN_WIDTH = 60
_HEADER_FILL = PatternFill("solid", fgColor="D9E2F3")


def _cells(table: Table) -> list[list[Any]]:
    rows = [[neutralise_cell(c.label) for c in table.columns]]
    rows += [[neutralise_cell(v) for v in row] for row in table.rows]
    return rows


def write_csv_dir(report: Report, out: Path) -> Path:
    """One ``<table key>.csv`` per table in ``out`` (created); returns ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for table in report.all_tables():
        path = out / f"{table.key}.csv"
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh, lineterminator="\r\n").writerows(_cells(table))
        tmp.replace(path)
    return out


def _sheet_name(key: str, used: set[str]) -> str:
    name = key[:31]
    n = 2
    while name.lower() in used:
        suffix = f"_{n}"
        name = key[: 31 - len(suffix)] + suffix
        n += 1
    used.add(name.lower())
    return name


def write_xlsx(report: Report, path: Path) -> Path:
    """The workbook: an ``about`` sheet, then one sheet per table (header frozen, filtered)."""
    wb = Workbook()
    wb.remove(wb.active)
    used: set[str] = set()
    bold = Font(bold=True)
    for table in report.all_tables():
        ws = wb.create_sheet(_sheet_name(table.key, used))
        for row in _cells(table):
            ws.append(row)
        for cell in ws[1]:
            cell.font = bold
            cell.fill = _HEADER_FILL
            cell.alignment = Alignment(vertical="top", wrap_text=True)
        for j, col in enumerate(table.columns, start=1):
            letter = get_column_letter(j)
            if col.kind == "share":
                for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                    cell.number_format = "0.0%"
            longest = max(
                [len(str(col.label)) * 0.8]
                + [len(str(r[j - 1])) for r in table.rows[:2000] if r[j - 1] is not None]
            )
            ws.column_dimensions[letter].width = min(max(longest + 2, 8), MAX_COLUMN_WIDTH)
        ws.freeze_panes = "A2"
        if table.columns:
            ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
    wb.properties.title = report.title
    wb.properties.creator = "res64-probe"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".xlsx.tmp")
    wb.save(tmp)
    tmp.replace(path)
    return path
