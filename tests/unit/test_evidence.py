"""Evidence tables: targets aggregation, country pairs, CSV safety, console rows."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from test_rules import controls, fail, meas, page, run

from analysis import evidence
from analysis.evidence import (
    PAIR_COLUMNS,
    TARGET_COLUMNS,
    _group_order,
    csv_frame,
    neutralise,
    pairs_for_display,
    write_csv,
)

SPEC_TARGET_COLUMNS = """affected_cc url status mechanism locus responsible_cc confidence
n_measurements n_denied n_controls_ok control_ccs first_seen last_seen
example_measurement_ids""".split()
SPEC_PAIR_COLUMNS = """affected_cc responsible_cc targets_denied targets_tested share_denied
mechanisms categories measurements vantages asns first_seen last_seen confidence""".split()


def target(ev, cc: str, url: str | None = None) -> dict:
    t = ev.targets
    t = t[t["affected_cc"] == cc]
    if url is not None:
        t = t[t["url"] == url]
    assert len(t) == 1
    return t.iloc[0].to_dict()


def test_columns_follow_the_spec():
    assert TARGET_COLUMNS[: len(SPEC_TARGET_COLUMNS)] == tuple(SPEC_TARGET_COLUMNS)
    assert PAIR_COLUMNS[: len(SPEC_PAIR_COLUMNS)] == tuple(SPEC_PAIR_COLUMNS)
    ev = run([*controls(), page(meas("IR", minutes=5), "GEOBLOCK", 403)])
    assert list(ev.targets.columns) == list(TARGET_COLUMNS)
    assert list(ev.pairs.columns) == list(PAIR_COLUMNS)


def test_denied_target_is_confirmed_and_traceable():
    ir = [page(meas("IR", minutes=m), "GEOBLOCK", 403) for m in (5, 200)]
    ev = run([*controls(), *controls(minutes=190), *ir])
    t = target(ev, "IR")
    assert (t["status"], t["mechanism"], t["locus"], t["responsible_cc"], t["confidence"]) == (
        "denied",
        "http_geoblock",
        "server",
        "US",
        "confirmed",
    )
    assert (t["n_measurements"], t["n_denied"], t["n_confirmed"]) == (2, 2, 2)
    assert t["n_controls_ok"] == 4 and list(t["control_ccs"]) == ["DE", "US"]
    assert sorted(t["example_measurement_ids"]) == sorted(m.measurement_id for m in ir)
    assert t["first_seen"] == pd.Timestamp(ir[0].started_at)
    assert t["last_seen"] == pd.Timestamp(ir[1].started_at)


def test_accessible_targets():
    ev = run(controls())
    t = target(ev, "US")
    assert (t["status"], t["mechanism"], t["locus"], t["responsible_cc"], t["confidence"]) == (
        "accessible",
        "none",
        "none",
        None,
        None,
    )
    assert t["n_controls_ok"] == 0 and list(t["control_ccs"]) == []


def test_mixed_results_are_inconclusive_with_their_counts():
    ir = [page(meas("IR", minutes=5), "GEOBLOCK", 403), meas("IR", minutes=6)]
    ev = run([*controls(), *ir])
    t = target(ev, "IR")
    assert (t["status"], t["n_measurements"], t["n_denied"], t["n_accessible"]) == (
        "inconclusive",
        2,
        1,
        1,
    )
    assert t["confidence"] is None and t["responsible_cc"] is None and t["locus"] == "unknown"
    assert t["mechanism"] == "http_geoblock"  # what went wrong, still reported
    assert ev.pairs.empty  # no denied target, no pair


def test_most_frequent_mechanism_wins_and_ties_prefer_the_explicit():
    ir = [
        fail(meas("IR", minutes=5), "tls", "connection_reset"),
        page(meas("IR", minutes=65), "GEOBLOCK", 403),
    ]
    ev = run([*controls(), *controls(minutes=60), *ir])
    t = target(ev, "IR")
    # one tls_reset (unattributed), one geoblock (US): a tie, the explicit one is chosen
    assert (t["status"], t["mechanism"], t["responsible_cc"]) == ("denied", "http_geoblock", "US")
    ir.append(fail(meas("IR", minutes=125), "tls", "connection_reset"))
    ev = run([*controls(), *controls(minutes=60), *controls(minutes=120), *ir])
    t = target(ev, "IR")
    assert (t["mechanism"], t["locus"], t["responsible_cc"]) == ("tls_reset", "unknown", None)


def test_challenge_target_is_inconclusive_none():
    ev = run([*controls(), page(meas("IR", minutes=5), "CHALLENGE", 403)])
    t = target(ev, "IR")
    assert (t["status"], t["mechanism"], t["locus"]) == ("inconclusive", "none", "unknown")


def test_example_ids_prefer_denials():
    ok = [meas("IR", minutes=m) for m in range(6)]
    bad = page(meas("IR", minutes=7), "GEOBLOCK", 403)
    ev = run([*controls(), *ok, bad])
    ex = list(target(ev, "IR")["example_measurement_ids"])
    assert len(ex) == 5 and ex[0] == bad.measurement_id


def test_group_order_is_stable_for_large_codes():
    codes = np.array([70000, 3, 70000, 3, 0, 1 << 33, 3])
    order = _group_order(codes)
    assert codes[order].tolist() == sorted(codes.tolist())
    assert order.tolist() == [4, 1, 3, 6, 0, 2, 5]


# -- pairs -----------------------------------------------------------------------------------


def _geoblocked(url: str, operator: str, minutes: int = 0) -> list:
    base = {"operator_cc": operator}
    ir = [replace(page(meas("IR", url, minutes=minutes + m), "GEOBLOCK", 403), **base)
          for m in (5, 65)]  # fmt: skip
    ctl = [replace(c, **base) for c in [*controls(url, minutes), *controls(url, minutes + 60)]]
    return [*ctl, *ir]


def test_pairs_targets_tested_counts_the_responsible_countrys_sites():
    rows = [
        *_geoblocked("https://a.example/", "US"),
        *[replace(m, operator_cc="US") for m in (meas("IR", "https://b.example/"),
                                                  meas("US", "https://b.example/"))],
        *[replace(m, operator_cc="DE") for m in (meas("IR", "https://c.example/"),
                                                  meas("US", "https://c.example/"))],
        *[replace(m, operator_cc=None, server_cc="US") for m in (
            meas("IR", "https://d.example/"), meas("US", "https://d.example/"))],
    ]  # fmt: skip
    ev = run(rows)
    p = ev.pairs.set_index(["affected_cc", "responsible_cc"]).loc[("IR", "US")]
    # IR measured a (denied), b (US operator), d (no operator, US server): 3 US sites; not c
    assert (p["targets_denied"], p["targets_tested"]) == (1, 3)
    assert p["share_denied"] == pytest.approx(1 / 3)
    assert json.loads(p["mechanisms"]) == {"http_geoblock": 1}
    assert json.loads(p["confidence"]) == {"confirmed": 1}
    assert json.loads(p["categories"]) == {"NEWS": 1}
    assert (p["measurements"], p["vantages"], p["asns"]) == (2, 1, 1)


def test_pairs_local_and_unattributed_count_every_target_of_the_country():
    rows = [*controls(), *controls(minutes=60)]
    nx = [fail(meas("IR", minutes=m), "dns", "dns_nxdomain_error") for m in (5, 65)]
    other = "https://other.example/"
    tls = [fail(meas("IR", other, minutes=m), "tls", "connection_reset") for m in (5, 65)]
    extra = [meas("IR", "https://fine.example/"), meas("US", "https://fine.example/")]
    ev = run([*rows, *nx, *controls(other), *controls(other, 60), *tls, *extra])
    pairs = ev.pairs
    assert list(zip(pairs["affected_cc"], pairs["responsible_cc"], strict=True)) == [
        ("IR", "IR"),
        ("IR", None),  # unattributed: its own row, after the attributed ones
    ]
    assert pairs["targets_tested"].tolist() == [3, 3]
    assert pairs["targets_denied"].tolist() == [1, 1]


def test_only_pairs_with_a_denied_target_appear():
    ev = run([*controls(), meas("IR", minutes=5)])
    assert ev.pairs.empty and list(ev.pairs.columns) == list(PAIR_COLUMNS)


def test_pairs_for_display():
    rows = pairs_for_display(run(_geoblocked("https://a.example/", "US")).pairs)
    assert rows == [
        {
            "affected": "IR",
            "responsible": "US",
            "denied/tested": "1/1",
            "share": "100%",
            "mechanisms": "http_geoblock 1",
            "confidence": "confirmed 1",
            "measurements": "2",
            "period": "2025-03-01..2025-03-01",
        }
    ]
    unattributed = pd.DataFrame([{"affected_cc": "IR", "responsible_cc": None}])
    assert pairs_for_display(unattributed)[0]["responsible"] == "unattributed"


# -- CSV ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("https://ok.example/", "https://ok.example/"),
        ("", ""),
        (None, None),
        (5, 5),
    ],
)
def test_neutralise(value, safe):
    assert neutralise(value) == safe


def test_csv_neutralises_hostile_cells(tmp_path):
    df = pd.DataFrame(
        {
            "url": ['=HYPERLINK("http://evil")', "https://fine.example/", None],
            "title": ["@x", "-y", "+z"],
            "ids": [["=a", "b"], [], ['c"d']],
            "n": [1, -2, 3],
            "when": pd.to_datetime(["2025-01-01T00:00:00Z"] * 3, utc=True),
        }
    )
    path = tmp_path / "x.csv"
    write_csv(df, path)
    got = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    assert got[0]["url"] == '\'=HYPERLINK("http://evil")'
    assert got[1]["url"] == "https://fine.example/"
    assert [r["title"] for r in got] == ["'@x", "'-y", "'+z"]
    assert json.loads(got[0]["ids"]) == ["=a", "b"] and json.loads(got[2]["ids"]) == ['c"d']
    assert got[1]["ids"] == "[]"
    assert [r["n"] for r in got] == ["1", "-2", "3"]  # numbers are numbers, not text
    assert got[0]["when"] == "2025-01-01T00:00:00.000000Z"
    for row in got:
        for v in row.values():
            assert not v.startswith(("=", "+", "@", "\t", "\r")) or v == ""
    assert csv_frame(df).loc[0, "url"].startswith("'")


def test_csv_in_two_halves_is_the_same_text(tmp_path, monkeypatch):
    """A large table is converted in two halves at once; the bytes do not change, even
    when a half holds only missing values in a column or lists with control characters."""
    n = 9
    df = pd.DataFrame(
        {
            "url": [f"https://s{i}.example/" if i % 3 else "=cmd" for i in range(n)],
            "resp": [None] * 5 + ["IR", None, "CN", None],  # the first half: nothing
            "ids": [[f"id{i}", "x\ny"] if i % 2 else [] for i in range(n)],
            "ccs": [["DE", "FR"]] * n,
            "n": list(range(n)),
            "when": pd.to_datetime(["2025-01-01T00:00:00Z"] * n, utc=True),
        }
    )
    whole, halves = tmp_path / "whole.csv", tmp_path / "halves.csv"
    write_csv(df, whole)
    monkeypatch.setattr(evidence, "CSV_SPLIT_ROWS", 4)
    sizes: list[int] = []
    convert = evidence.csv_table
    monkeypatch.setattr(evidence, "csv_table", lambda d: sizes.append(len(d)) or convert(d))
    write_csv(df, halves)
    assert sorted(sizes) == [4, 5]  # two halves, no whole-table fallback
    assert halves.read_bytes() == whole.read_bytes()
    assert len(list(csv.DictReader(io.StringIO(halves.read_text())))) == n


def test_targets_csv_from_an_analysis(tmp_path):
    hostile = "https://x.example/=cmd"
    ev = run([*controls(hostile), page(meas("IR", hostile, minutes=5), "GEOBLOCK", 403)])
    write_csv(ev.targets, tmp_path / "t.csv")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "t.csv").read_text())))
    assert {r["url"] for r in rows} == {hostile}
    assert json.loads(rows[0]["example_measurement_ids"])


def test_empty_tables():
    empty = evidence.targets(run([meas("US")]).verdicts.iloc[:0])
    assert empty.empty
