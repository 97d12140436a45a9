"""Escaping of network strings in reports, and the report texts' consistency (pure, no I/O).

Page titles, headers and URLs come from servers that may be hostile: Markdown cells must keep
their table shape, spreadsheet cells must never become formulas, every format must survive
control characters, and the HTML templates must leave escaping to Jinja2's autoescape.
"""

from __future__ import annotations

import re
import string
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from analysis.report_i18n import LANGS, MECHANISMS, texts
from analysis.report_model import build_report
from analysis.report_safety import (
    FORMULA_PREFIXES,
    MAX_CELL_CHARS,
    clean_text,
    md_cell,
    neutralise_cell,
)
from analysis.report_values import as_counts, as_list, as_ts, display

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates"
HOSTILE = '<script>alert(1)</script>=HYPERLINK("x")'
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")

network_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("|`<>&[]*\\\n\r\t=+-@'\" \x00\x0b\x1b\x7f\u2028\u0085\ufffe")),
        st.characters(),
    ),
    max_size=400,
)


# -- Markdown ------------------------------------------------------------------------------


def test_md_cell_escapes_what_would_break_a_table() -> None:
    assert md_cell("a|b") == r"a\|b"
    assert md_cell("`code`") == r"\`code\`"
    assert md_cell(HOSTILE) == '&lt;script&gt;alert(1)&lt;/script&gt;=HYPERLINK("x")'
    assert md_cell("[click](javascript:alert(1))") == r"\[click\](javascript:alert(1))"
    assert md_cell("one\ntwo\r\nthree") == "one two three"
    assert md_cell("a\\|b") == r"a\\\|b"  # a backslash cannot un-escape the pipe
    assert md_cell("&lt;") == "&amp;lt;"
    assert md_cell(None) == "" and md_cell(float("nan")) == "" and md_cell(pd.NA) == ""
    assert md_cell(42) == "42"


@given(network_text)
def test_md_cell_never_leaves_markup_or_a_bare_pipe(s: str) -> None:
    out = md_cell(s)
    assert not UNESCAPED_PIPE.search(out.replace("\\\\", "")), out
    for bad in ("<", ">", "\n", "\r", "\x00"):
        assert bad not in out
    row = "| " + " | ".join([md_cell(s), "x", md_cell(s)]) + " |"
    assert len(UNESCAPED_PIPE.split(row.replace("\\\\", ""))) == 5  # 3 cells + 2 ends


# -- spreadsheets ----------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", FORMULA_PREFIXES)
def test_neutralise_quotes_every_formula_prefix(prefix: str) -> None:
    out = neutralise_cell(prefix + "SUM(A1:A9)")
    assert isinstance(out, str) and out.startswith("'")
    assert not out[1:].startswith(("\r",))  # a leading CR is folded away, not kept


def test_neutralise_examples() -> None:
    assert neutralise_cell('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert neutralise_cell("  =1+1") == "'  =1+1"  # blanks before '=' do not hide it
    assert neutralise_cell(HOSTILE) == HOSTILE  # starts with '<': text, kept verbatim
    assert neutralise_cell("IR") == "IR"
    assert neutralise_cell(-3) == -3 and neutralise_cell(0.25) == 0.25  # numbers stay numbers
    assert neutralise_cell(True) is True
    assert neutralise_cell(None) == "" and neutralise_cell(float("nan")) == ""
    assert neutralise_cell("a\nb") == "a b"


@given(network_text)
def test_neutralised_cells_are_never_formulas_and_always_xml_safe(s: str) -> None:
    out = neutralise_cell(s)
    assert isinstance(out, str)
    assert not out.startswith(FORMULA_PREFIXES)
    assert not out.lstrip().startswith(FORMULA_PREFIXES) or out.startswith("'")
    assert not ILLEGAL_CHARACTERS_RE.search(out)
    assert "\n" not in out and "\r" not in out


# -- every format -------------------------------------------------------------------------------


@given(network_text)
def test_clean_text_is_single_line_bounded_and_xml_safe(s: str) -> None:
    out = clean_text(s)
    assert len(out) <= MAX_CELL_CHARS
    assert not ILLEGAL_CHARACTERS_RE.search(out)
    assert not any(c in out for c in "\n\r\t\u2028\u2029\u0085\x7f\ufffe\uffff")
    out.encode("utf-8")  # raises on lone surrogates


def test_clean_text_bounds_and_missing_values() -> None:
    assert clean_text("x" * 1000).endswith("…") and len(clean_text("x" * 1000)) == MAX_CELL_CHARS
    assert clean_text("x" * 1000, 0) == "x" * 1000
    assert clean_text(None) == "" and clean_text(pd.NaT) == "" and clean_text(pd.NA) == ""
    assert clean_text("a\x00b\x1bc") == "abc"


def test_templates_never_bypass_autoescape() -> None:
    names = sorted(p.name for p in TEMPLATES.glob("*.j2"))
    assert "report.html.j2" in names and "report.md.j2" in names
    for p in TEMPLATES.glob("*.j2"):
        text = p.read_text()
        for bypass in ("|safe", "| safe", "autoescape false", "Markup", "<script"):
            assert bypass not in text, f"{p.name}: {bypass}"
    html = (TEMPLATES / "report.html.j2").read_text()
    assert 'http-equiv="Content-Security-Policy"' in html
    assert "http://" not in html and "https://" not in html  # no external resource


# -- texts -------------------------------------------------------------------------------------


def _fields(s: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(s) if name}


def test_every_language_has_the_same_keys_and_placeholders() -> None:
    en = texts("en")
    for lang in LANGS:
        t = texts(lang)
        assert set(t) == set(en), (lang, set(t) ^ set(en))
        for key, value in t.items():
            assert _fields(value) == _fields(en[key]), (lang, key)
            assert value.strip() == value and value, (lang, key)
    for m in MECHANISMS:
        assert f"mech_{m}" in en
    assert texts("es")["table"] == "Cuadro" and texts("fr")["table"] == "Tableau"


# -- tolerant readers ---------------------------------------------------------------------------


def test_tolerant_readers() -> None:
    assert as_list(["DE", "US"]) == ["DE", "US"]
    assert as_list('["DE", "US"]') == ["DE", "US"]
    assert as_list("DE;US") == ["DE", "US"] and as_list("DE, US") == ["DE", "US"]
    assert as_list(None) == [] and as_list(float("nan")) == []
    assert as_counts('{"http_geoblock": 2, "tls_reset": 5, "x": 0}') == {
        "tls_reset": 5,
        "http_geoblock": 2,
    }
    assert as_counts({"a": 1}) == {"a": 1} and as_counts("a:1, b:3") == {"b": 3, "a": 1}
    assert as_counts("not json") == {} and as_counts(None) == {}
    assert as_ts("2025-03-01T08:00:00+01:00") == "2025-03-01 07:00"
    assert as_ts(pd.Timestamp("2025-03-01 08:00")) == "2025-03-01 08:00"  # naive = UTC
    assert as_ts(None) == "" and as_ts(pd.NaT) == ""
    assert display(0.625, "share") == "62.5%" and display(None) == "" and display(3, "int") == "3"


def test_build_report_on_minimal_frames_tolerates_missing_columns() -> None:
    targets = pd.DataFrame(
        {
            "affected_cc": ["IR", "IR"],
            "url": ["https://a.test/", "https://b.test/"],
            "status": ["denied", "inconclusive"],
            "mechanism": ["tls_reset", "none"],
        }
    )
    pairs = pd.DataFrame(
        {"affected_cc": ["IR"], "responsible_cc": [None], "targets_denied": [1],
         "targets_tested": [2]}
    )  # fmt: skip
    r = build_report(meta={}, targets=targets, pairs=pairs, verdicts=None, analysis_files=())
    assert r.pairs.rows[0][:5] == ("IR", "unattributed", 1, 2, 0.5)
    assert [t.key for t in r.target_tables] == ["denied_IR"]
    assert r.period == "? to ? (UTC)"
    assert dict(r.key_figures)["Denials not attributed to a country"] == 1
    numbers = [t.number for t in r.all_tables() if t.number]
    assert numbers == list(range(1, len(numbers) + 1))


def test_hostile_country_codes_do_not_become_file_names() -> None:
    targets = pd.DataFrame(
        {"affected_cc": ["../../etc", "IR"], "url": ["u1", "u2"], "status": ["denied"] * 2}
    )
    pairs = pd.DataFrame({"affected_cc": ["../../etc"], "targets_denied": [1]})
    r = build_report(meta={}, targets=targets, pairs=pairs, verdicts=None, analysis_files=())
    keys = [t.key for t in r.all_tables()]
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", k) for k in keys), keys
    assert len(set(keys)) == len(keys)
