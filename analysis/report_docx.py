"""The DOCX report (python-docx), laid out like an annex to an ITU contribution.

* A4, Times New Roman; numbered headings; "Table N – caption" above each table and
  "Figure N – caption" below each figure (the numbers are Word ``SEQ`` fields with their
  values filled in, so Word can renumber and build lists of tables);
* source notes in small type under each table; header rows repeat on every page;
* the wide tables (country pairs, denied targets, inconclusive targets) sit in a landscape
  section between portrait ones.

Text reaches the document only through python-docx runs (XML text nodes), so markup in page
titles stays text; :func:`analysis.report_safety.clean_text` has already removed the control
characters that XML cannot hold.
"""

from __future__ import annotations

import io
from pathlib import Path

from docx import Document
from docx.enum.section import WD_ORIENT, WD_SECTION
from docx.enum.table import WD_TABLE_ALIGNMENT
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Cm, Pt, RGBColor
from docx.text.paragraph import Paragraph

from analysis.report_figures import RenderedFigure
from analysis.report_model import Report, Table, display

__all__ = ["write_docx"]

FONT = "Times New Roman"
MONO = "Courier New"
MARGIN_CM = 2.0
A4 = (Cm(21.0), Cm(29.7))


def _set_font(style, size: float, *, bold: bool | None = None, name: str = FONT) -> None:
    style.font.name = name
    style.font.size = Pt(size)
    style.font.color.rgb = RGBColor(0, 0, 0)
    if bold is not None:
        style.font.bold = bold
    rpr = style.element.get_or_add_rPr()
    fonts = rpr.find(qn("w:rFonts"))
    if fonts is None:
        fonts = OxmlElement("w:rFonts")
        rpr.append(fonts)
    for attr in ("w:asciiTheme", "w:hAnsiTheme", "w:eastAsiaTheme", "w:cstheme"):
        fonts.attrib.pop(qn(attr), None)  # theme fonts would override the named font
    for attr in ("w:ascii", "w:hAnsi", "w:cs", "w:eastAsia"):
        fonts.set(qn(attr), name)


def _styles(doc) -> None:
    _set_font(doc.styles["Normal"], 11)
    pf = doc.styles["Normal"].paragraph_format
    pf.space_after = Pt(6)
    pf.space_before = Pt(0)
    for level, size in ((1, 13), (2, 11.5)):
        st = doc.styles[f"Heading {level}"]
        _set_font(st, size, bold=True)
        st.font.italic = False
        st.paragraph_format.space_before = Pt(14 if level == 1 else 10)
        st.paragraph_format.space_after = Pt(6)
        st.paragraph_format.keep_with_next = True


def _seq_field(par: Paragraph, name: str, number: int) -> None:
    """A ``SEQ name`` field showing ``number`` (Word renumbers; other readers show the value)."""
    fld = OxmlElement("w:fldSimple")
    fld.set(qn("w:instr"), f" SEQ {name} \\* ARABIC ")
    run = OxmlElement("w:r")
    rpr = OxmlElement("w:rPr")
    rpr.append(OxmlElement("w:b"))
    run.append(rpr)
    text = OxmlElement("w:t")
    text.text = str(number)
    run.append(text)
    fld.append(run)
    par._p.append(fld)


def _caption(doc, word: str, seq: str, number: int, caption: str, *, above: bool) -> None:
    par = doc.add_paragraph()
    par.alignment = WD_ALIGN_PARAGRAPH.CENTER
    par.paragraph_format.keep_with_next = above
    par.paragraph_format.space_before = Pt(10 if above else 4)
    par.paragraph_format.space_after = Pt(4 if above else 10)
    par.add_run(f"{word} ").bold = True
    _seq_field(par, seq, number)
    par.add_run(f" – {caption}").bold = True


def _note(doc, text: str) -> None:
    par = doc.add_paragraph()
    par.paragraph_format.space_after = Pt(8)
    run = par.add_run(text)
    run.italic = True
    run.font.size = Pt(8)


def _shade(cell, fill: str) -> None:
    tcpr = cell._tc.get_or_add_tcPr()
    shd = OxmlElement("w:shd")
    shd.set(qn("w:val"), "clear")
    shd.set(qn("w:color"), "auto")
    shd.set(qn("w:fill"), fill)
    tcpr.append(shd)


def _row_flag(row, tag: str) -> None:
    """Set a row property: ``w:tblHeader`` (repeat on every page), ``w:cantSplit``."""
    el = OxmlElement(tag)
    el.set(qn("w:val"), "true")
    row._tr.get_or_add_trPr().append(el)


def _widths(table: Table, total_cm: float, size: float) -> list[float]:
    """Column widths (cm): each column gets its longest word, the rest goes by content length.

    Character widths are estimates (Times ~0.52 em, Courier 0.6 em; headers are bold but
    half a point smaller).
    """
    pad = 0.5  # cell margins (2 × 0.19 cm) and a safety margin, cm
    char_cm = 0.52 * size / 28.35

    def longest_word(text: str) -> int:
        return max((len(w) for w in text.split()), default=0)

    floors, prefs = [], []
    for j, col in enumerate(table.columns):
        texts = [display(r[j], col.kind) for r in table.shown[:200]]
        mono = 1.2 if col.kind in ("code", "hash") else 1.0
        head = longest_word(col.label) * 1.1 * (size - 0.5) / size
        if col.kind == "hash":
            floor = pref = 64 * mono
        elif col.kind in ("int", "share", "date"):
            floor = pref = max([head, 3.0] + [longest_word(x) * mono for x in texts])
        else:
            lengths = sorted(len(x) for x in texts) or [4]
            cap = 16 if col.kind == "text" else 10  # URLs and ids may wrap anywhere
            floor = max([head, 3.0] + [min(longest_word(x), cap) * mono for x in texts])
            pref = max(floor, min(lengths[len(lengths) * 3 // 4] * mono, 36))
        floors.append(floor * char_cm + pad)
        prefs.append(pref * char_cm + pad)
    if sum(floors) >= total_cm:
        return [f * total_cm / sum(floors) for f in floors]
    extra, want = total_cm - sum(floors), [p - f for p, f in zip(prefs, floors, strict=True)]
    if sum(want) <= 0:
        return [f * total_cm / sum(floors) for f in floors]
    return [f + extra * w / sum(want) for f, w in zip(floors, want, strict=True)]


def _apply_widths(t, widths: list[float]) -> None:
    """Cell widths and the table grid (LibreOffice reads the grid, Word the cells)."""
    grid = t._tbl.tblGrid
    for gc, w in zip(grid.findall(qn("w:gridCol")), widths, strict=True):
        gc.set(qn("w:w"), str(Cm(w).twips))
    for j, w in enumerate(widths):
        for cell in t.columns[j].cells:
            cell.width = Cm(w)


def _cell_text(cell, text: str, *, size: float, bold: bool = False, mono: bool = False) -> None:
    par = cell.paragraphs[0]
    par.paragraph_format.space_after = Pt(0)
    run = par.add_run(text)
    run.font.size = Pt(size)
    run.bold = bold
    if mono:
        run.font.name = MONO
        run._r.get_or_add_rPr().get_or_add_rFonts().set(qn("w:hAnsi"), MONO)


def _table(doc, report: Report, table: Table, width_cm: float) -> None:
    _caption(doc, report.t["table"], "Table", table.number, table.caption, above=True)
    if not table.rows:
        doc.add_paragraph(report.t["none_found"]).alignment = WD_ALIGN_PARAGRAPH.CENTER
        return
    hashes = any(c.kind == "hash" for c in table.columns)
    size = 7 if len(table.columns) > 11 else 7.5 if len(table.columns) > 8 or hashes else 9
    rows = table.shown
    t = doc.add_table(rows=1 + len(rows), cols=len(table.columns))
    t.style = doc.styles["Table Grid"]
    t.alignment = WD_TABLE_ALIGNMENT.CENTER
    t.autofit = False
    widths = _widths(table, width_cm, size)
    header = t.rows[0]
    _row_flag(header, "w:tblHeader")
    for j, col in enumerate(table.columns):
        _cell_text(header.cells[j], col.label, size=size - 0.5, bold=True)
        _shade(header.cells[j], "D9E2F3")
    for i, row in enumerate(rows, start=1):
        _row_flag(t.rows[i], "w:cantSplit")
        cells = t.rows[i].cells
        for j, col in enumerate(table.columns):
            mono = col.kind in ("code", "hash")
            _cell_text(cells[j], display(row[j], col.kind), size=size, mono=mono)
            if col.kind in ("int", "share"):
                cells[j].paragraphs[0].alignment = WD_ALIGN_PARAGRAPH.RIGHT
    _apply_widths(t, widths)
    notes = [n for n in (table.note, report.truncated_note(table)) if n]
    if notes:
        _note(doc, " ".join(notes))
    else:
        doc.add_paragraph().paragraph_format.space_after = Pt(4)


def _section(doc, landscape: bool) -> float:
    """Start a new section in the given orientation; returns the text width in cm."""
    sec = doc.add_section(WD_SECTION.NEW_PAGE)
    return _orient(sec, landscape)


def _orient(sec, landscape: bool) -> float:
    w, h = A4
    sec.orientation = WD_ORIENT.LANDSCAPE if landscape else WD_ORIENT.PORTRAIT
    sec.page_width, sec.page_height = (h, w) if landscape else (w, h)
    side = Cm(MARGIN_CM - 0.5 if landscape else MARGIN_CM)  # wide tables get 1 cm more
    sec.left_margin = sec.right_margin = side
    sec.top_margin = sec.bottom_margin = Cm(MARGIN_CM)
    return (sec.page_width - 2 * side) / Cm(1)


def _png_size(png: bytes) -> tuple[int, int]:
    """Pixel width and height from a PNG's IHDR chunk."""
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def _figure(doc, report: Report, fig: RenderedFigure, width_cm: float, height_cm: float) -> None:
    par = doc.add_paragraph()
    par.alignment = WD_ALIGN_PARAGRAPH.CENTER
    par.paragraph_format.keep_with_next = True
    w_px, h_px = _png_size(fig.png)
    width_cm = min(width_cm, height_cm * w_px / max(h_px, 1))
    par.add_run().add_picture(io.BytesIO(fig.png), width=Cm(width_cm))
    caption = fig.title.split(" – ", 1)[1]
    _caption(doc, report.t["figure"], "Figure", fig.number, caption, above=False)


def _bullets(doc, items, style: str = "List Bullet") -> None:
    for item in items:
        doc.add_paragraph(item, style=style)


def write_docx(report: Report, figures: list[RenderedFigure], path: Path) -> Path:
    """Write the DOCX report to ``path`` (tmp + rename)."""
    t = report.t
    doc = Document()
    _styles(doc)
    width = _orient(doc.sections[0], landscape=False)
    doc.core_properties.title = report.title
    doc.core_properties.author = "res64-probe"
    doc.core_properties.language = report.lang

    annex = doc.add_paragraph()
    annex.alignment = WD_ALIGN_PARAGRAPH.CENTER
    annex.add_run(t["annex"].upper()).bold = True
    title = doc.add_paragraph()
    title.alignment = WD_ALIGN_PARAGRAPH.CENTER
    title.paragraph_format.space_before = Pt(6)
    run = title.add_run(report.title)
    run.bold = True
    run.font.size = Pt(16)
    sub = doc.add_paragraph()
    sub.alignment = WD_ALIGN_PARAGRAPH.CENTER
    sub.add_run(report.subtitle).italic = True
    meta = doc.add_paragraph()
    meta.alignment = WD_ALIGN_PARAGRAPH.CENTER
    meta.add_run(f"{t['period']}: ").bold = True
    meta.add_run(report.period)
    meta.add_run().add_break()
    meta.add_run(f"{t['generated']}: ").bold = True
    meta.add_run(f"{report.generated_at} UTC")

    doc.add_heading(f"1\u2003{t['s_summary']}", level=1)
    doc.add_paragraph(report.summary_intro)
    for label, value in report.key_figures:
        par = doc.add_paragraph(style="List Bullet")
        par.paragraph_format.space_after = Pt(2)
        par.add_run(f"{label}: ")
        par.add_run(str(value)).bold = True
    for p in report.summary:
        doc.add_paragraph(p)
    doc.add_paragraph(t["reading_note"]).paragraph_format.space_before = Pt(8)

    # the wide tables (and the figures that go with the first one), in landscape
    width = _section(doc, landscape=True)
    doc.add_paragraph(t["pairs_intro"].format(unattributed=t["unattributed"]))
    _table(doc, report, report.pairs, width)
    for fig in figures:
        _figure(doc, report, fig, 15.0, 11.0)
    doc.add_heading(f"2\u2003{t['s_targets']}", level=1)
    doc.add_paragraph(t["targets_intro"])
    if not report.target_tables:
        doc.add_paragraph(t["none_found"])
    for table in report.target_tables:
        _table(doc, report, table, width)
    doc.add_heading(f"3\u2003{t['s_inconclusive']}", level=1)
    doc.add_paragraph(t["inconclusive_intro"])
    _table(doc, report, report.inconclusive, width)

    width = _section(doc, landscape=False)
    doc.add_heading(f"4\u2003{t['s_vantages']}", level=1)
    doc.add_paragraph(t["vantages_intro"])
    for table in report.vantage_tables:
        _table(doc, report, table, min(width, 12.0))
    doc.add_heading(f"5\u2003{t['s_method']}", level=1)
    for p in report.method:
        doc.add_paragraph(p)
    for n, (heading, items) in enumerate(report.definitions, start=1):
        doc.add_heading(f"5.{n}\u2003{heading}", level=2)
        for term, text in items:
            par = doc.add_paragraph(style="List Bullet")
            par.add_run(term).bold = True
            par.add_run(f": {text}")
    if report.glossary is not None:
        _table(doc, report, report.glossary, width)
    doc.add_heading(f"6\u2003{t['s_limits']}", level=1)
    _bullets(doc, report.limitations)
    doc.add_heading(f"7\u2003{t['s_provenance']}", level=1)
    doc.add_paragraph(t["provenance_intro"])
    for table in report.provenance:
        _table(doc, report, table, width)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".docx.tmp")
    doc.save(str(tmp))
    tmp.replace(path)
    return path
