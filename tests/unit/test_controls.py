"""Controls: exact windows, distinct countries, down vs inconclusive, confidence levels.

The window indices are checked against brute force (hypothesis), then verdict-level cases:
no controls, controls failing too, same-country measurements only, window boundaries,
dedicated control records, and the properties that protect against false accusations.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_rules import URL, controls, fail, meas, page, run, verdict

from analysis.controls import (
    Controls,
    Page,
    TimeAxis,
    WindowIndex,
    is_bogon,
    similar,
    title_words,
    uncommon_header_names,
)

HOUR = 3_600_000_000  # µs

# -- brute force --------------------------------------------------------------------------


def brute(url, cc, t, ok, ctrl, w, r):
    other = (cc != cc[r]) | ctrl
    if ctrl[r]:
        other = np.ones(len(url), bool)
    inwin = (url == url[r]) & (np.abs(t - t[r]) <= w)
    n_ok = int((inwin & ok & other & (np.arange(len(url)) != r)).sum())
    n_acc_all = int((inwin & ok).sum())
    n_other = int((inwin & other & (np.arange(len(url)) != r)).sum())
    others = {int(c) for c in cc[inwin & ok & (cc != cc[r])]} if not ctrl[r] else set()
    return n_ok, n_acc_all, n_other, len(others) >= 2


population = st.integers(min_value=1, max_value=40).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 2), min_size=n, max_size=n),  # url
        st.lists(st.integers(0, 3), min_size=n, max_size=n),  # country
        st.lists(st.integers(0, 12), min_size=n, max_size=n),  # hours
        st.lists(st.booleans(), min_size=n, max_size=n),  # ok
        st.lists(st.integers(0, 9), min_size=n, max_size=n),  # control when 0
        st.sampled_from([0, 1, 7]),  # µs jitter: boundaries
    )
)


@settings(max_examples=150, deadline=None)
@given(population, st.booleans())
def test_window_counts_match_brute_force(data, ranked):
    url, cc, hours, ok, ctrl, jitter = data
    url, cc = np.array(url), np.array(cc)
    t = np.array(hours, np.int64) * HOUR + np.arange(len(url)) % 2 * jitter
    ok, ctrl = np.array(ok), np.array(ctrl) == 0
    w = 3 * HOUR
    c = Controls(url, cc, t, ok, ctrl, w, 3, 4)
    if ranked:  # the rank encoding must count exactly the same
        c.axis = TimeAxis(t, w, 1 << 61)
        assert c.axis.ranked
        acc, own = ok, ok & ~ctrl
        c.acc_u = WindowIndex(c.axis, url[acc], t[acc], cc[acc], 4)
        c.acc_uc = WindowIndex(c.axis, url[own] * 4 + cc[own], t[own])
        c.oth_u = WindowIndex(c.axis, url[~ok], t[~ok])
        own_other = ~ok & ~ctrl
        c.oth_uc = WindowIndex(c.axis, url[own_other] * 4 + cc[own_other], t[own_other])
    rows = np.flatnonzero(~ok)
    counts = c.counts(rows)
    multi = c.multi_country(rows)
    for i, r in enumerate(rows.tolist()):
        n_ok, n_acc, n_other, two = brute(url, cc, t, ok, ctrl, w, r)
        assert counts.n_ok[i] == n_ok
        assert counts.n_acc_all[i] == n_acc
        assert counts.n_other[i] == n_other
        if not ctrl[r]:
            assert multi[i] == two


@settings(max_examples=100, deadline=None)
@given(population)
def test_target_controls_match_brute_force(data):
    url, cc, hours, ok, ctrl, _ = data
    url, cc, t = np.array(url), np.array(cc), np.array(hours, np.int64) * HOUR
    ok, ctrl = np.array(ok), np.array(ctrl) == 0
    w = 2 * HOUR
    c = Controls(url, cc, t, ok, ctrl, w, 3, 4)
    rows = np.flatnonzero(~ok & ~ctrl)
    target = url[rows] * 4 + cc[rows]
    n_ok, ccs = c.target_controls(rows, target, 12)
    backwards = np.arange(4)[::-1]  # the codes in another order: 3, 2, 1, 0
    n_ok2, offsets, codes = c.target_control_sets(rows, target, 12, code_order=backwards)
    assert np.array_equal(n_ok, n_ok2)
    for tg in range(12):
        assert codes[offsets[tg] : offsets[tg + 1]].tolist() == sorted(ccs[tg], reverse=True)
    for tg in range(12):
        mine = rows[target == tg]
        served = set()
        for r in mine.tolist():
            near = (url == url[r]) & (np.abs(t - t[r]) <= w) & ok & ((cc != cc[r]) | ctrl)
            served |= set(np.flatnonzero(near).tolist())
        assert n_ok[tg] == len(served)
        assert ccs[tg] == sorted({int(cc[s]) for s in served if cc[s] != tg % 4})


def test_window_boundary_is_inclusive():
    t = np.array([0, HOUR, HOUR + 1, -HOUR, -HOUR - 1], np.int64)
    url = np.zeros(5, int)
    cc = np.array([0, 1, 2, 3, 1])
    ok = np.array([False, True, True, True, True])
    c = Controls(url, cc, t, ok, np.zeros(5, bool), HOUR, 1, 4)
    assert c.counts(np.array([0])).n_ok.tolist() == [2]  # t ± 1 h exactly, not 1 µs beyond


# -- verdict level --------------------------------------------------------------------------


def _status(rows, mid, **kw):
    return verdict(run(rows, **kw), mid)


def test_no_controls_is_inconclusive():
    ir = fail(meas("IR"), "tcp", "generic_timeout_error")
    v = _status([ir], ir.measurement_id)
    assert (v["status"], v["n_controls_ok"], v["locus"]) == ("inconclusive", 0, "unknown")


def test_failing_everywhere_is_down():
    rows = [
        fail(meas(cc, minutes=i), "tcp", "connection_refused")
        for i, cc in enumerate("US DE IR".split())
    ]
    ev = run(rows)
    assert set(ev.verdicts["status"].astype(str)) == {"down"}
    t = ev.targets.set_index("affected_cc")
    assert t.loc["IR", "status"] == "down" and t.loc["IR", "mechanism"] == "tcp_refused"
    assert t.loc["IR", "locus"] == "none" and t.loc["IR", "responsible_cc"] is None


def test_failing_alone_is_not_down():
    # no other country measured the URL: nothing says it is down for everybody
    rows = [fail(meas("IR", minutes=i), "tcp", "connection_refused") for i in range(3)]
    assert set(run(rows).verdicts["status"].astype(str)) == {"inconclusive"}


def test_same_country_measurements_are_no_controls():
    ok_ir = meas("IR", minutes=1)
    bad_ir = fail(meas("IR", minutes=2), "tls", "connection_reset")
    v = _status([ok_ir, bad_ir], bad_ir.measurement_id)
    assert v["status"] == "inconclusive"
    t = run([ok_ir, bad_ir]).targets
    assert t.loc[0, "status"] == "inconclusive"  # mixed: never resolved either way


def test_down_needs_no_accessible_measurement_anywhere_in_the_window():
    rows = [
        fail(meas("US"), "tcp", "connection_refused"),
        fail(meas("IR", minutes=1), "tcp", "connection_refused"),
        meas("IR", minutes=2),  # IR itself reached it: not down, and no control: inconclusive
    ]
    assert _status(rows, rows[1].measurement_id)["status"] == "inconclusive"


@pytest.mark.parametrize(
    ("offset", "status"),
    [
        (timedelta(hours=24), "denied"),
        (timedelta(hours=24, microseconds=1), "inconclusive"),
        (-timedelta(hours=24), "denied"),
        (-timedelta(hours=24, microseconds=1), "inconclusive"),
    ],
)
def test_window_boundaries(offset, status):
    ir = fail(meas("IR"), "tcp", "generic_timeout_error")
    us = replace(meas("US"), started_at=ir.started_at + offset)
    assert _status([ir, us], ir.measurement_id)["status"] == status


def test_window_is_configurable():
    ir = fail(meas("IR"), "tcp", "generic_timeout_error")
    us = meas("US", minutes=90)
    assert _status([ir, us], ir.measurement_id)["status"] == "denied"
    assert _status([ir, us], ir.measurement_id, window=timedelta(hours=1))["status"] == (
        "inconclusive"
    )


def test_dedicated_control_records_count_as_controls():
    ir = fail(meas("IR"), "tcp", "generic_timeout_error")
    zz = replace(meas("ZZ", minutes=3), is_control=True, vantage_id="ooni-th")
    v = _status([ir, zz], ir.measurement_id)
    assert (v["status"], v["n_controls_ok"]) == ("denied", 1)
    # a control record in the same country counts too
    ir_ctrl = replace(meas("IR", minutes=3), is_control=True, vantage_id="helper")
    assert _status([ir, ir_ctrl], ir.measurement_id)["status"] == "denied"


def test_control_records_get_no_target_rows_and_are_never_denied():
    ir = meas("IR")
    zz = replace(fail(meas("ZZ", minutes=3), "tcp", "generic_timeout_error"), is_control=True)
    ev = run([ir, *controls(), zz])
    assert "ZZ" not in set(ev.targets["affected_cc"])
    assert verdict(ev, zz.measurement_id)["status"] != "denied"


# -- confidence -------------------------------------------------------------------------------


def test_confirmed_needs_an_explicit_signal():
    ir = page(meas("IR", minutes=5), "GEOBLOCK", 403)
    assert _status([*controls(), ir], ir.measurement_id)["confidence"] == "confirmed"


def test_likely_needs_two_denials_at_different_times_and_two_control_countries():
    a = fail(meas("IR", minutes=0), "tls", "connection_reset")
    b = fail(meas("IR", minutes=60), "tls", "connection_reset")
    rows = [a, b, *controls(minutes=10)]
    ev = run(rows)
    assert verdict(ev, a.measurement_id)["confidence"] == "likely"
    assert ev.targets.set_index("affected_cc").loc["IR", "status"] == "denied"


def test_one_control_country_is_only_possible():
    a = fail(meas("IR", minutes=0), "tls", "connection_reset")
    b = fail(meas("IR", minutes=60), "tls", "connection_reset")
    ev = run([a, b, meas("US", minutes=10), meas("US", minutes=20)])
    assert verdict(ev, a.measurement_id)["confidence"] == "possible"
    # every measurement denied, but nothing confirmed or likely: the target stays inconclusive
    assert ev.targets.set_index("affected_cc").loc["IR", "status"] == "inconclusive"


def test_two_denials_at_the_same_time_are_not_reproduced():
    a = fail(meas("IR", minutes=0), "tls", "connection_reset")
    b = replace(fail(meas("IR", minutes=0), "tls", "connection_reset"), vantage_id="v-ir2")
    ev = run([a, b, *controls(minutes=10)])
    assert verdict(ev, a.measurement_id)["confidence"] == "possible"


def test_a_single_unconfirmed_failure_is_not_a_denied_target():
    a = fail(meas("IR"), "tcp", "generic_timeout_error")
    ev = run([a, *controls()])
    assert verdict(ev, a.measurement_id)["status"] == "denied"
    assert ev.targets.set_index("affected_cc").loc["IR", "status"] == "inconclusive"


# -- properties: controls protect against false accusations -----------------------------------

OUTCOMES = ["ok", "tcp", "tls", "nx", "403", "geo", "weak", "challenge", "httpfail"]


def _build(spec) -> list:
    out = []
    for i, (cc, minutes, outcome, url_i) in enumerate(spec):
        url = URL if url_i == 0 else "http://other.example/"
        m = meas("ZZ" if cc == "ZZ" else cc, url, minutes=minutes)
        if cc == "ZZ":
            m = replace(m, is_control=True, vantage_id="ctl")
        m = {
            "ok": m,
            "tcp": fail(m, "tcp", "generic_timeout_error"),
            "tls": fail(m, "tls", "connection_reset"),
            "nx": fail(m, "dns", "dns_nxdomain_error"),
            "403": page(m, "Forbidden", 403),
            "geo": page(m, "GEOBLOCK", 403),
            "weak": page(m, "WEAKGEO", 200),
            "challenge": page(m, "CHALLENGE", 403),
            "httpfail": fail(m, "http", "http_request_failed: protocol_error"),
        }[outcome]
        out.append(replace(m, measurement_id=f"p{i:04d}"))
    return out


specs = st.lists(
    st.tuples(
        st.sampled_from(["US", "DE", "IR", "ZZ"]),
        st.integers(0, 3000),
        st.sampled_from(OUTCOMES),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=12,
)


def _accessible_controls(ev, mid) -> int:
    v = ev.verdicts.set_index(ev.verdicts["measurement_id"].astype(str))
    me = v.loc[mid]
    acc = v[(v["status"] == "accessible") & (v["url"] == me["url"])]
    near = (acc["started_at"] - me["started_at"]).abs() <= timedelta(hours=24)
    other = (acc["probe_cc"] != me["probe_cc"]) | acc["is_control"]
    return int((near & other).sum())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs)
def test_every_denial_has_an_accessible_control(spec):
    ev = run(_build(spec))
    for mid in ev.verdicts.loc[ev.verdicts["status"] == "denied", "measurement_id"].astype(str):
        assert _accessible_controls(ev, mid) >= 1
    for r in ev.targets[ev.targets["status"] == "denied"].to_dict("records"):
        assert r["n_controls_ok"] >= 1 and len(r["control_ccs"]) >= 1


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs, st.sampled_from(["US", "DE", "ZZ"]), st.integers(0, 3000), st.sampled_from(OUTCOMES[1:])
)
def test_a_failing_control_never_turns_inconclusive_into_denied(spec, cc, minutes, outcome):
    before = run(_build(spec)).verdicts
    extra = _build([*spec, (cc, minutes, outcome, 0)])
    after = run(extra).verdicts
    b = dict(zip(before["measurement_id"].astype(str), before["status"].astype(str), strict=True))
    a = dict(zip(after["measurement_id"].astype(str), after["status"].astype(str), strict=True))
    for mid, status in b.items():
        if status == "inconclusive":
            assert a[mid] != "denied", mid


# -- helpers of the HTTP comparison and DNS ------------------------------------------------


def test_similar_pages_after_ooni():
    a = Page(1000, frozenset(), frozenset())
    assert similar(a, Page(800, frozenset(), frozenset()))  # 0.8 > 0.7
    assert not similar(a, Page(700, frozenset(), frozenset()))  # 0.7 is not > 0.7
    assert similar(
        Page(10, frozenset({"x-a"}), frozenset()), Page(900, frozenset({"x-a"}), frozenset())
    )
    assert similar(
        Page(10, frozenset(), frozenset({"forbidden"})),
        Page(900, frozenset(), frozenset({"forbidden"})),
    )
    assert not similar(Page(None, frozenset(), frozenset()), Page(10, frozenset(), frozenset()))


def test_uncommon_headers_and_title_words():
    h = '[["Server","nginx"],["X-Geo-Block","1"],["Date","x"]]'
    assert uncommon_header_names(h) == {"x-geo-block"}
    assert uncommon_header_names("garbage") == frozenset()
    assert title_words("Access Denied - your country") == {"access", "denied", "country"}


@pytest.mark.parametrize(
    ("ip", "bogon"),
    [
        ("10.1.2.3", True),
        ("127.0.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.1.1", True),
        ("0.0.0.0", True),
        ("::1", True),
        ("fd00::1", True),
        ("::ffff:10.0.0.1", True),
        ("93.184.216.34", False),
        ("2606:4700::1111", False),
        ("not-an-ip", False),
    ],
)
def test_bogons(ip, bogon):
    assert is_bogon(ip) is bogon


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_distinct_answers_are_the_set_of_triples(packed, chunk, monkeypatch):
    """Both deduplication paths (one packed key per row, or three hash passes), whole or
    in chunks, give exactly the distinct (host, answer, label) triples of the rows."""
    import analysis.controls as C

    rng = np.random.default_rng(7)
    n = 400
    lengths = rng.choice([0, 1, 1, 2, 2, 3, 5], n)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    answers = rng.integers(0, 40, int(offsets[-1])).astype(np.int32)
    host = rng.integers(0, 9, n).astype(np.int32)
    label = rng.integers(0, 5, n).astype(np.int32)
    rows = np.sort(rng.choice(n, 300, replace=False))
    expected = {
        (int(host[r]), int(a), int(label[r]))
        for r in rows
        for a in answers[offsets[r] : offsets[r + 1]]
    }
    monkeypatch.setattr(C, "DISTINCT_CHUNK", chunk)
    if packed:
        h, ip, lab = C._distinct_answers(host, label, offsets, answers, rows, 5)
    else:
        h, ip, lab = C._distinct_chunk(host, label, offsets, answers, rows, 5, packed=False)
    got = list(zip(h.tolist(), ip.tolist(), lab.tolist(), strict=True))
    assert len(got) == len(set(got))
    assert set(got) == expected
