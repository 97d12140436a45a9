"""Locus and responsible country (SPEC §5), and the seam for routing localisations."""

from __future__ import annotations

import pandas as pd
import pytest
from test_rules import controls, fail, meas, page, run, verdict

from analysis.attribution import LOCALISATION_COLUMNS, attribute


def frame(**cols) -> pd.DataFrame:
    base = {
        "measurement_id": ["m1"],
        "status": ["denied"],
        "rule_id": ["http.geoblock"],
        "probe_cc": ["IR"],
        "operator_cc": ["US"],
        "server_cc": ["NL"],
        "http_verified": [True],
        "tls_cert_valid": [True],
        "fingerprint_cc": [None],
    }
    base.update({k: [v] for k, v in cols.items()})
    return pd.DataFrame(base)


def one(**cols) -> tuple[str, str | None, str]:
    r = attribute(frame(**cols)).iloc[0]
    resp = r["responsible_cc"]
    return str(r["locus"]), (None if pd.isna(resp) else str(resp)), str(r["locus_rule_id"])


@pytest.mark.parametrize(
    ("cols", "locus", "responsible"),
    [
        ({}, "server", "US"),  # geoblock: the operator's country
        ({"operator_cc": None}, "server", "NL"),  # operator unknown: the server's country
        ({"operator_cc": None, "server_cc": None}, "server", None),  # nothing known: unattributed
        ({"rule_id": "http.451"}, "server", "US"),
        ({"rule_id": "http.geo_redirect"}, "server", "US"),
        ({"rule_id": "dns.nxdomain"}, "local", "IR"),
        ({"rule_id": "dns.inconsistent"}, "local", "IR"),
        ({"rule_id": "dns.bogon"}, "local", "IR"),
        ({"rule_id": "tls.cert"}, "local", "IR"),
        ({"rule_id": "http.blockpage"}, "local", "IR"),
        ({"rule_id": "http.blockpage", "fingerprint_cc": "IR"}, "local", "IR"),
        ({"rule_id": "http.blockpage", "fingerprint_cc": "RU"}, "transit", "RU"),
        ({"rule_id": "http.blockpage.weak"}, "local", "IR"),
        ({"rule_id": "http.blockpage.weak", "fingerprint_cc": "RU"}, "unknown", None),
        ({"rule_id": "tcp.timeout"}, "unknown", None),
        ({"rule_id": "tcp.reset"}, "unknown", None),
        ({"rule_id": "tls.reset"}, "unknown", None),
        ({"rule_id": "tls.timeout"}, "unknown", None),
        ({"rule_id": "http.reset"}, "unknown", None),
        ({"rule_id": "http.timeout"}, "unknown", None),
        ({"rule_id": "http.status"}, "server", "US"),  # validated TLS: the site
        ({"rule_id": "http.status", "http_verified": None}, "unknown", None),
        ({"rule_id": "http.status", "tls_cert_valid": False}, "unknown", None),
        ({"rule_id": "http.body", "http_verified": False}, "unknown", None),
        ({"rule_id": "dns.nxdomain", "probe_cc": "ZZ"}, "local", None),  # unknown country
        ({"status": "accessible", "rule_id": "ok"}, "none", None),
        ({"status": "down", "rule_id": "tcp.refused"}, "none", None),
        ({"status": "inconclusive", "rule_id": "dns.nxdomain"}, "unknown", None),
    ],
)
def test_locus_and_responsible(cols, locus, responsible):
    got = one(**cols)
    assert got[:2] == (locus, responsible)
    assert got[2].startswith("locus.")


def test_country_codes_are_normalised():
    assert one(operator_cc=" us ")[:2] == ("server", "US")


def test_missing_columns_are_reported():
    with pytest.raises(ValueError, match="rule_id"):
        attribute(frame().drop(columns="rule_id"))


def _loc(**kw) -> pd.DataFrame:
    row = {"measurement_id": "m1", "locus": "transit", "hop_cc": "DE", "hop_asn": 3320,
           "rule_id": "loc.ttl"}  # fmt: skip
    row.update(kw)
    return pd.DataFrame([row])


def test_localisation_seam_columns():
    assert LOCALISATION_COLUMNS == ("measurement_id", "locus", "hop_cc", "hop_asn", "rule_id")


@pytest.mark.parametrize(
    ("loc", "locus", "responsible", "rule"),
    [
        ({}, "transit", "DE", "loc.ttl"),
        ({"locus": "local"}, "local", "IR", "loc.ttl"),
        ({"locus": "server"}, "server", "US", "loc.ttl"),
        ({"hop_cc": None}, "unknown", None, "locus.unknown"),  # no country: no guess
        ({"measurement_id": "other"}, "unknown", None, "locus.unknown"),
    ],
)
def test_localisations_refine_unknown_loci(loc, locus, responsible, rule):
    out = attribute(frame(rule_id="tls.reset"), _loc(**loc)).iloc[0]
    resp = None if pd.isna(out["responsible_cc"]) else out["responsible_cc"]
    assert (out["locus"], resp, out["locus_rule_id"]) == (locus, responsible, rule)


def test_localisations_never_override_a_known_locus_or_a_non_denial():
    out = attribute(frame(rule_id="http.geoblock"), _loc()).iloc[0]
    assert (out["locus"], out["responsible_cc"]) == ("server", "US")
    out = attribute(frame(rule_id="tls.reset", status="inconclusive"), _loc()).iloc[0]
    assert out["locus"] == "unknown" and pd.isna(out["responsible_cc"])


def test_localisation_may_name_the_mechanism():
    f = frame(rule_id="tcp.timeout", mechanism="tcp_timeout")
    out = attribute(f, _loc(mechanism="route_blackhole")).iloc[0]
    assert out["mechanism"] == "route_blackhole" and out["responsible_cc"] == "DE"


def test_end_to_end_with_localisations():
    ir = [fail(meas("IR", minutes=m), "tls", "connection_reset") for m in (5, 65)]
    loc = pd.DataFrame(
        [{"measurement_id": m.measurement_id, "locus": "transit", "hop_cc": "DE",
          "hop_asn": 3320, "rule_id": "loc.rst_ttl"} for m in ir]
    )  # fmt: skip
    ev = run([*controls(), *controls(minutes=60), *ir], localisations=loc)
    v = verdict(ev, ir[0].measurement_id)
    assert (v["locus"], v["responsible_cc"], v["locus_rule_id"]) == ("transit", "DE", "loc.rst_ttl")
    t = ev.targets.set_index("affected_cc").loc["IR"]
    assert (t["status"], t["locus"], t["responsible_cc"]) == ("denied", "transit", "DE")
    assert ev.pairs.loc[0, "responsible_cc"] == "DE"


def test_end_to_end_operator_fallback():
    rows = [replace_operator(m) for m in controls()]
    ir = replace_operator(page(meas("IR", minutes=5), "GEOBLOCK", 403))
    v = verdict(run([*rows, ir]), ir.measurement_id)
    assert (v["locus"], v["responsible_cc"]) == ("server", "NL")


def replace_operator(m):
    from dataclasses import replace

    return replace(m, operator_cc=None)
