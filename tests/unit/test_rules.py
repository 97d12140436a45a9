"""Verdict rules, one case per rule: mechanism, status, locus and responsible country.

Measurements are built with :class:`probe.records.Measurement`; fingerprints are a small fake
that recognises marker words in bodies, so the cases do not depend on the signature data.
The helpers here (:func:`meas`, :func:`fail`, :class:`FakeFingerprints`, :func:`run`) are
shared with the other analysis unit tests.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from analysis import rules as R
from analysis.fingerprints import Match
from analysis.pipeline import Evidence, analyze_table
from probe.records import Measurement
from probe.schema import MEASUREMENTS, SCHEMA_VERSION

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
URL = "https://site.example/"
ASN = {"US": 7018, "DE": 3320, "FR": 3215, "IR": 58224, "CU": 27725, "RU": 12389, "ZZ": 0}
_seq = iter(range(10**9))


def body_of(text: str) -> bytes:
    return f"<html><head><title>{text}</title></head><body>{text}</body></html>".encode()


def meas(cc: str, url: str = URL, *, minutes: float = 0, **kw: Any) -> Measurement:
    """An accessible measurement of ``url`` from ``cc`` at ``T0 + minutes``; ``kw`` overrides."""
    n = next(_seq)
    https = url.startswith("https")
    body = kw.pop("body", body_of("Welcome to the example site home page"))
    base: dict[str, Any] = {
        "measurement_id": f"m{n:08d}",
        "schema_version": SCHEMA_VERSION,
        "software_version": "test",
        "campaign": "t",
        "run_id": "r",
        "started_at": T0 + timedelta(minutes=minutes),
        "vantage_id": f"v-{cc.lower()}",
        "probe_cc": cc,
        "probe_asn": ASN.get(cc, 64500),
        "probe_as_name": f"AS {cc}",
        "url": url,
        "hostname": url.split("/")[2],
        "category_code": "NEWS",
        "operator_cc": "US",
        "dns_resolver": "192.0.2.53",
        "dns_answers": ("93.184.216.34",),
        "dns_control_resolver": "198.51.100.1",
        "dns_control_answers": ("93.184.216.34",),
        "server_ip": "93.184.216.34",
        "server_port": 443 if https else 80,
        "server_cc": "NL",
        "server_asn": 15133,
        "tls_version": "TLSv1.3" if https else None,
        "tls_cert_valid": True if https else None,
        "http_status": 200,
        "http_headers": json.dumps([["content-type", "text/html"], ["x-site", "1"]]),
        "http_title": "Welcome to the example site home page",
        "http_body_length": len(body),
        "http_body_sha256": hashlib.sha256(body).hexdigest(),
        "http_body_prefix": body,
        "http_final_url": url,
        "http_verified": True if https else None,
    }
    base.update(kw)
    if (
        "http_body_prefix" in kw
        and kw["http_body_prefix"] is not None
        and "http_body_sha256" not in kw
    ):
        b = kw["http_body_prefix"]
        base["http_body_sha256"] = hashlib.sha256(b).hexdigest()
        base["http_body_length"] = len(b)
    return Measurement(**base)


def page(m: Measurement, text: str, status: int = 200, **kw: Any) -> Measurement:
    """``m`` with a different response page."""
    body = body_of(text)
    return replace(
        m,
        http_status=status,
        http_title=text,
        http_body_prefix=body,
        http_body_sha256=hashlib.sha256(body).hexdigest(),
        http_body_length=len(body),
        **kw,
    )


def fail(m: Measurement, step: str, failure: str, **kw: Any) -> Measurement:
    """``m`` failing at ``step`` with ``failure`` (later steps not reached)."""
    f: dict[str, Any] = {"failure_step": step, "failure": failure, f"{step}_failure": failure}
    order = ["dns", "tcp", "tls", "http"]
    later = order[order.index(step) + (0 if step == "http" else 1) :]
    if step == "dns":
        f.update(dns_answers=(), server_ip=None)
    if "tls" in later or step == "tls":
        f.update(tls_cert_valid=False if failure.startswith("ssl_") else None, tls_version=None)
    if "http" in later or step == "http":
        f.update(
            http_status=None,
            http_headers=None,
            http_title=None,
            http_body_length=None,
            http_body_sha256=None,
            http_body_prefix=None,
            http_final_url=None,
            http_verified=None,
        )
    f.update(kw)
    return replace(m, **f)


class FakeFingerprints:
    """Recognises marker words: GEOBLOCK, WEAKGEO, BLOCKPAGE[-CC], WEAKBLOCK, CHALLENGE."""

    version = 99

    def match_response(self, status, headers, title, body) -> list[Match]:
        text = (body or b"").decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        out = []

        def m(fid: str, kind: str, needs: bool = False, country: str | None = None) -> Match:
            return Match(fid, kind, "body", country, None, None, needs)

        if "GEOBLOCK" in text:
            out.append(m("geo", "geoblock"))
        if "WEAKGEO" in text:
            out.append(m("weakgeo", "geoblock", True))
        if "BLOCKPAGE-" in text:
            cc = text.split("BLOCKPAGE-", 1)[1][:2]
            out.append(m(f"bp-{cc}", "censorship", country=cc))
        elif "BLOCKPAGE" in text:
            out.append(m("bp", "censorship", country=None))
        if "WEAKBLOCK" in text:
            out.append(m("weakbp", "censorship", True))
        if "CHALLENGE" in text:
            out.append(m("challenge", "challenge"))
        return out

    def match_dns(self, answers) -> list[Match]:
        return [
            Match("dns-ir", "censorship", "dns", "IR", None, a, False)
            for a in answers
            if a == "10.10.34.34"
        ]


def table(rows: list[Measurement]) -> pa.Table:
    return pa.Table.from_pylist([m.as_row() for m in rows], schema=MEASUREMENTS)


def run(rows: list[Measurement], window: timedelta = timedelta(hours=24), **kw: Any) -> Evidence:
    return analyze_table(table(rows), window=window, fingerprints=FakeFingerprints(), **kw)


def verdict(ev: Evidence, mid: str) -> dict[str, Any]:
    v = ev.verdicts
    row = v[v["measurement_id"].astype(str) == mid]
    assert len(row) == 1, mid
    out = row.iloc[0].to_dict()
    return {
        k: (None if v is None or (isinstance(v, float) and v != v) or v is pd_na() else v)
        for k, v in out.items()
    }


def pd_na() -> Any:
    import pandas as pd

    return pd.NA


def controls(url: str = URL, minutes: float = 0, **kw: Any) -> list[Measurement]:
    """Accessible measurements of ``url`` from US and DE."""
    return [meas("US", url, minutes=minutes, **kw), meas("DE", url, minutes=minutes + 1, **kw)]


# -- the rule table itself ----------------------------------------------------------------


def test_rule_table_is_well_formed():
    assert R.RULES_VERSION == 1
    assert len(set(R.RULE_IDS)) == len(R.RULES)
    assert R.RULES[0].rule_id == "ok" and R.RULES[-1].rule_id == "no_response"
    mechanisms = {r.mechanism for r in R.RULES}
    # every SPEC mechanism except the routing one is produced by some rule
    assert set(R.MECHANISMS) - mechanisms == {"route_blackhole"}
    assert set(R.MECHANISM_PRIORITY) == set(R.MECHANISMS)


def test_classify_takes_the_first_matching_rule():
    f = R.Features.empty(3)
    f.step[:] = [R.STEP_NONE, R.STEP_TCP, R.STEP_TLS]
    f.fkind[:] = [R.FK_NONE, R.FK_TIMEOUT, R.FK_CERT]
    f.dns_inconsistent[2] = True  # DNS manipulation wins over the later TLS failure
    got = [R.RULES[i].rule_id for i in R.classify(f)]
    assert got == ["ok", "tcp.timeout", "dns.inconsistent"]


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (None, R.FK_NONE),
        ("generic_timeout_error", R.FK_TIMEOUT),
        ("connection_reset", R.FK_RESET),
        ("eof_error", R.FK_RESET),
        ("connection_refused", R.FK_REFUSED),
        ("dns_nxdomain_error", R.FK_NXDOMAIN),
        ("ssl_invalid_hostname", R.FK_CERT),
        ("ssl_unknown_authority", R.FK_CERT),
        ("ssl_invalid_certificate", R.FK_CERT),
        ("ssl_failed_handshake", R.FK_OTHER),
        ("http_request_failed: too_many_redirects", R.FK_OTHER),
        ("unknown_failure: x", R.FK_OTHER),
    ],
)
def test_failure_kinds(failure, kind):
    assert R.failure_kind(failure) == kind


# -- one case per rule, end to end through compute_verdicts -------------------------------

BOGUS = "45.9.9.9"  # a public address that no control sees


def _case_rows(name: str) -> tuple[list[Measurement], Measurement]:
    """(all rows, the measurement under test) for case ``name``; IR is the tested country."""
    ir = meas("IR", minutes=5)
    http = "http://plain.example/"
    ctl = controls()
    cases: dict[str, tuple[list[Measurement], Measurement]] = {
        "ok": (ctl, ir),
        "dns_nxdomain": (ctl, fail(ir, "dns", "dns_nxdomain_error")),
        "dns_failure": (ctl, fail(ir, "dns", "generic_timeout_error")),
        "dns_bogon": (
            ctl,
            fail(replace(ir, dns_answers=("10.1.2.3",), server_ip="10.1.2.3", server_asn=None),
                 "tcp", "generic_timeout_error"),
        ),
        "dns_blockpage_ip": (
            controls(http),
            page(replace(meas("IR", http, minutes=5), dns_answers=("10.10.34.34",),
                         server_ip="10.10.34.34", server_asn=None), "Blocked"),
        ),
        "dns_inconsistent": (
            ctl,
            fail(replace(ir, dns_answers=(BOGUS,), server_ip=BOGUS, server_asn=64666),
                 "tls", "ssl_invalid_hostname"),
        ),
        "tcp_refused": (ctl, fail(ir, "tcp", "connection_refused")),
        "tcp_timeout": (ctl, fail(ir, "tcp", "generic_timeout_error")),
        "tcp_reset": (ctl, fail(ir, "tcp", "connection_reset")),
        "tcp_failure": (ctl, fail(ir, "tcp", "host_unreachable")),
        "tls_reset": (ctl, fail(ir, "tls", "connection_reset")),
        "tls_eof": (ctl, fail(ir, "tls", "eof_error")),
        "tls_timeout": (ctl, fail(ir, "tls", "generic_timeout_error")),
        "tls_cert": (ctl, fail(ir, "tls", "ssl_unknown_authority")),
        "tls_failure": (ctl, fail(ir, "tls", "ssl_failed_handshake")),
        "http_reset": (ctl, fail(ir, "http", "eof_error")),
        "http_timeout": (ctl, fail(ir, "http", "generic_timeout_error")),
        "http_failure": (ctl, fail(ir, "http", "http_request_failed: protocol_error")),
        "http_blockpage": (ctl, page(ir, "BLOCKPAGE national")),
        "http_blockpage_named": (ctl, page(ir, "BLOCKPAGE-RU upstream")),
        "http_blockpage_weak": (ctl, page(ir, "WEAKBLOCK maybe")),
        "http_451": (ctl, page(ir, "Unavailable for legal reasons", 451)),
        "http_451_no_operator": (
            [replace(c, operator_cc=None) for c in ctl],
            page(replace(ir, operator_cc=None), "Unavailable for legal reasons", 451),
        ),
        "http_geoblock": (ctl, page(ir, "GEOBLOCK", 403)),
        "http_geo_redirect": (
            ctl,
            page(ir, "GEOBLOCK", 200, http_redirects=("https://site.example/unavailable",)),
        ),
        "http_geoblock_weak": (ctl, page(ir, "WEAKGEO", 403)),
        "http_challenge": (ctl, page(ir, "CHALLENGE", 403)),
        "http_status_tls": (ctl, page(ir, "Forbidden", 403)),
        "http_status_plain": (controls(http), page(meas("IR", http, minutes=5), "Forbidden", 403)),
        "http_body": (
            controls(http, http_status=302),
            page(meas("IR", http, minutes=5), "Error", 500,
                 http_headers=json.dumps([["content-type", "text/plain"]])),
        ),
        "http_error_like_controls": (
            controls(http, http_status=302),
            page(meas("IR", http, minutes=5), "Welcome to the example site home page", 500),
        ),
        "no_response": (ctl, replace(ir, http_status=None, http_body_prefix=None,
                                     http_body_sha256=None, http_title=None, http_headers=None)),
    }  # fmt: skip
    rows, m = cases[name]
    return [*rows, m], m


# name: (rule_id, status, mechanism, locus, responsible_cc, confidence)
CASES: dict[str, tuple[str, str, str, str, str | None, str | None]] = {
    "ok": ("ok", "accessible", "none", "none", None, None),
    "dns_nxdomain": ("dns.nxdomain", "denied", "dns_nxdomain", "local", "IR", "possible"),
    "dns_failure": ("dns.failure", "inconclusive", "none", "unknown", None, None),
    "dns_bogon": ("dns.bogon", "denied", "dns_bogon", "local", "IR", "possible"),
    "dns_blockpage_ip": (
        "dns.blockpage_ip.bogon", "denied", "dns_bogon", "local", "IR", "confirmed"),
    "dns_inconsistent": (
        "dns.inconsistent", "denied", "dns_inconsistent", "local", "IR", "possible"),
    "tcp_refused": ("tcp.refused", "denied", "tcp_refused", "unknown", None, "possible"),
    "tcp_timeout": ("tcp.timeout", "denied", "tcp_timeout", "unknown", None, "possible"),
    "tcp_reset": ("tcp.reset", "denied", "tcp_reset", "unknown", None, "possible"),
    "tcp_failure": ("tcp.failure", "inconclusive", "none", "unknown", None, None),
    "tls_reset": ("tls.reset", "denied", "tls_reset", "unknown", None, "possible"),
    "tls_eof": ("tls.reset", "denied", "tls_reset", "unknown", None, "possible"),
    "tls_timeout": ("tls.timeout", "denied", "tls_timeout", "unknown", None, "possible"),
    "tls_cert": ("tls.cert", "denied", "tls_cert", "local", "IR", "possible"),
    "tls_failure": ("tls.failure", "inconclusive", "none", "unknown", None, None),
    "http_reset": ("http.reset", "denied", "http_reset", "unknown", None, "possible"),
    "http_timeout": ("http.timeout", "denied", "http_timeout", "unknown", None, "possible"),
    "http_failure": ("http.failure", "inconclusive", "none", "unknown", None, None),
    "http_blockpage": ("http.blockpage", "denied", "http_blockpage", "local", "IR", "confirmed"),
    "http_blockpage_named": (
        "http.blockpage", "denied", "http_blockpage", "transit", "RU", "confirmed"),
    "http_blockpage_weak": (
        "http.blockpage.weak", "denied", "http_blockpage", "local", "IR", "possible"),
    "http_451": ("http.451", "denied", "http_451", "server", "US", "confirmed"),
    "http_451_no_operator": ("http.451", "denied", "http_451", "server", "NL", "confirmed"),
    "http_geoblock": ("http.geoblock", "denied", "http_geoblock", "server", "US", "confirmed"),
    "http_geo_redirect": (
        "http.geo_redirect", "denied", "http_geo_redirect", "server", "US", "confirmed"),
    "http_geoblock_weak": (
        "http.geoblock.weak", "denied", "http_geoblock", "server", "US", "possible"),
    "http_challenge": ("http.challenge", "inconclusive", "none", "unknown", None, None),
    "http_status_tls": ("http.status", "denied", "http_status", "server", "US", "possible"),
    "http_status_plain": ("http.status", "denied", "http_status", "unknown", None, "possible"),
    "http_body": ("http.body", "denied", "http_body", "unknown", None, "possible"),
    "http_error_like_controls": ("http.error", "inconclusive", "none", "unknown", None, None),
    "no_response": ("no_response", "inconclusive", "none", "unknown", None, None),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_rule_case(name):
    rows, m = _case_rows(name)
    v = verdict(run(rows), m.measurement_id)
    rule_id, status, mechanism, locus, responsible, confidence = CASES[name]
    got = (
        v["rule_id"],
        v["status"],
        v["mechanism"],
        v["locus"],
        v["responsible_cc"],
        v["confidence"],
    )
    assert got == (rule_id, status, mechanism, locus, responsible, confidence)
    if status == "denied":
        assert v["n_controls_ok"] >= 1


def test_every_rule_is_exercised():
    assert {c[0] for c in CASES.values()} == set(R.RULE_IDS) - {
        "dns.blockpage_ip",  # a non-bogon block-page address: see the next test
        "http.geo_redirect.weak",
    }


def test_public_blockpage_address_is_dns_inconsistent():
    class Fps(FakeFingerprints):
        def match_dns(self, answers):
            return [Match("dns-x", "censorship", "dns", "IR", None, a, False)
                    for a in answers if a == BOGUS]  # fmt: skip

    http = "http://plain.example/"
    ir = replace(meas("IR", http, minutes=5), dns_answers=(BOGUS,), server_ip=BOGUS)
    ev = analyze_table(table([*controls(http), ir]), fingerprints=Fps())
    v = verdict(ev, ir.measurement_id)
    assert (v["rule_id"], v["mechanism"], v["confidence"]) == (
        "dns.blockpage_ip",
        "dns_inconsistent",
        "confirmed",
    )


def test_weak_geo_redirect():
    ir = page(meas("IR", minutes=5), "WEAKGEO", 200, http_redirects=("https://site.example/x",))
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert (v["rule_id"], v["mechanism"], v["locus"]) == (
        "http.geo_redirect.weak",
        "http_geo_redirect",
        "server",
    )


def test_a_valid_certificate_clears_inconsistent_dns():
    # a CDN address seen nowhere else, but it served a certificate valid for the name
    ir = page(
        replace(meas("IR", minutes=5), dns_answers=(BOGUS,), server_ip=BOGUS, server_asn=64666),
        "Forbidden",
        403,
    )
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert v["mechanism"] == "http_status" and v["locus"] == "server"


def test_same_asn_clears_inconsistent_dns():
    ir = fail(
        replace(meas("IR", minutes=5), dns_answers=(BOGUS,), server_ip=BOGUS),  # AS 15133
        "tcp",
        "generic_timeout_error",
    )
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert v["mechanism"] == "tcp_timeout"


def test_own_control_answers_clear_inconsistent_dns():
    ir = fail(
        replace(meas("IR", minutes=5), dns_answers=(BOGUS,), dns_control_answers=(BOGUS,),
                server_ip=BOGUS, server_asn=None),
        "tcp",
        "generic_timeout_error",
    )  # fmt: skip
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert v["mechanism"] == "tcp_timeout"


def test_bogons_everywhere_are_not_manipulation():
    # a lab world: every answer is a loopback address, the controls' too
    lo = {"dns_answers": ("127.0.0.10",), "dns_control_answers": ("127.0.0.10",),
          "server_ip": "127.0.0.10"}  # fmt: skip
    ir = fail(meas("IR", minutes=5, **lo), "tcp", "generic_timeout_error")
    v = verdict(run([*controls(**lo), ir]), ir.measurement_id)
    assert v["mechanism"] == "tcp_timeout"


def test_bogon_with_bogon_control_answer_is_not_dns_bogon():
    ir = fail(
        replace(meas("IR", minutes=5), dns_answers=("10.1.2.3",), dns_control_answers=("10.1.2.3",),
                server_ip="10.1.2.3", server_asn=None),
        "tcp",
        "generic_timeout_error",
    )  # fmt: skip
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert v["mechanism"] == "tcp_timeout"


def test_block_page_address_with_valid_certificate_is_not_explicit():
    ir = replace(meas("IR", minutes=5), dns_answers=("10.10.34.34",), server_ip="10.10.34.34")
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert v["status"] == "accessible"


def test_unverified_fetch_after_a_tls_failure_is_not_ok():
    ir = fail(meas("IR", minutes=5), "tls", "ssl_invalid_hostname", http_status=200,
              http_verified=False, http_body_prefix=body_of("Welcome"))  # fmt: skip
    v = verdict(run([*controls(), ir]), ir.measurement_id)
    assert (v["status"], v["mechanism"]) == ("denied", "tls_cert")


def test_block_page_after_bogus_dns_is_dns_inconsistent_confirmed():
    http = "http://plain.example/"
    ir = page(
        replace(meas("IR", http, minutes=5), dns_answers=(BOGUS,), server_ip=BOGUS,
                server_asn=64666),
        "BLOCKPAGE national",
    )  # fmt: skip
    v = verdict(run([*controls(http), ir]), ir.measurement_id)
    assert (v["mechanism"], v["locus"], v["responsible_cc"], v["confidence"]) == (
        "dns_inconsistent",
        "local",
        "IR",
        "confirmed",
    )


def test_volatile_headers_do_not_split_responses():
    from analysis.verdicts import mask_headers

    a = json.dumps([["Date", "Mon, 01 Jan 2025 00:00:00 GMT"], ["Set-Cookie", "sid=abc"]])
    b = json.dumps([["Date", "Tue, 02 Jan 2025 00:00:00 GMT"], ["Set-Cookie", "sid=xyz"]])
    assert mask_headers(a) == mask_headers(b)
    assert mask_headers("not json") == "not json"
    assert mask_headers(None) is None


def test_strongest_match_order():
    from analysis.verdicts import strongest

    def m(kind, needs=False):
        return Match(kind, kind, "body", None, None, None, needs)

    assert strongest([m("challenge"), m("geoblock", True)]).kind == "geoblock"
    assert strongest([m("geoblock", True), m("geoblock")]).needs_controls is False
    assert strongest([m("geoblock"), m("censorship")]).kind == "censorship"
    assert strongest([]) is None


def test_rule_ids_are_stored_for_every_verdict():
    rows, _ = _case_rows("tcp_timeout")
    ev = run(rows)
    assert ev.verdicts["rule_id"].notna().all()
    assert set(ev.verdicts["rule_id"].astype(str)) <= set(R.RULE_IDS)
    assert np.array_equal(
        ev.verdicts["status"].astype(str).isin(R.STATUSES).to_numpy(), np.ones(len(rows), bool)
    )
