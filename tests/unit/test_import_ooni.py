"""OONI import: the pure mapping, the file readers, the dataset writer and the API client.

Every record here is built in the test (no corpus data): a 0.4-style measurement (requests
newest first, no TLS records), a 0.5-style one (depth tags, TLS handshakes, DoH), and broken
variants.  The API client runs against ``httpx.MockTransport``: no network.
"""

from __future__ import annotations

import base64
import copy
import gzip
import json
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow.dataset as ds
import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis.compare_ooni import compare, comparison_lines, comparison_tables, ooni_class
from probe.errors import ConfigError, DatasetError
from probe.imports import import_ooni_api, import_ooni_files
from probe.imports.ooni import (
    CONTROL_VANTAGE,
    NOT_CONNECTED,
    OoniConversion,
    blocking_text,
    convert,
    normalise_failure,
    unwrap,
)
from probe.imports.ooni_api import ApiQuery, ApiUnavailable, OoniApi
from probe.imports.writer import iter_json
from probe.schema import SCHEMA_VERSION

PROBE_IP = "203.0.113.77"  # must never reach a row


def legacy_record(**over: Any) -> dict[str, Any]:
    """A 0.4-style Web Connectivity measurement: redirect http → https, block page body."""
    rec: dict[str, Any] = {
        "measurement_uid": "uid-legacy-1",
        "report_id": "20200101T000000Z_webconnectivity_XX_64500_n1_abc",
        "test_name": "web_connectivity",
        "test_version": "0.4.1",
        "software_name": "ooniprobe",
        "software_version": "3.10.0",
        "probe_cc": "RU",
        "probe_asn": "AS64500",
        "probe_network_name": "Example Net",
        "probe_ip": PROBE_IP,
        "input": "http://blocked.example/",
        "measurement_start_time": "2020-03-03 09:15:05",
        "test_start_time": "2020-03-03 09:00:00",
        "test_runtime": 1.5,
        "test_keys": {
            "client_resolver": "198.51.100.53",
            "queries": [
                {
                    "hostname": "blocked.example",
                    "query_type": "A",
                    "engine": "system",
                    "failure": None,
                    "answers": [
                        {"answer_type": "CNAME", "hostname": "cdn.blocked.example."},
                        {"answer_type": "A", "ipv4": "192.0.2.10"},
                        {"answer_type": "AAAA", "ipv6": "2001:db8::10"},
                    ],
                }
            ],
            "tcp_connect": [
                {"ip": "192.0.2.10", "port": 80, "status": {"success": True, "failure": None}},
            ],
            # newest first, as OONI writes them
            "requests": [
                {
                    "failure": None,
                    "request": {"url": "http://blockpage.example/index.html", "method": "GET"},
                    "response": {
                        "code": 200,
                        "headers": {"Content-Type": "text/html; charset=utf-8", "Server": "x"},
                        "body": "<html><title>Доступ ограничен</title>blocked</html>",
                    },
                },
                {
                    "failure": None,
                    "request": {"url": "http://blocked.example/", "method": "GET"},
                    "response": {
                        "code": 302,
                        "headers": {"Location": "http://blockpage.example/index.html"},
                        "body": None,
                    },
                },
            ],
            "control": {
                "dns": {"failure": None, "addrs": ["192.0.2.10"]},
                "tcp_connect": {"192.0.2.10:80": {"status": True, "failure": None}},
                "http_request": {
                    "status_code": 200,
                    "body_length": 4864,
                    "title": "  Real   site ",
                    "headers": {"Server": "nginx"},
                    "failure": None,
                },
            },
            "control_failure": None,
            "blocking": "http-diff",
            "accessible": False,
        },
    }
    rec.update(over)
    return rec


def _cert_der() -> bytes:
    ca = trustme.CA(organization_name="Test CA Org")
    pem = ca.issue_cert("www.example.org").cert_chain_pems[0].bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)


def lte_record() -> dict[str, Any]:
    """A 0.5-style measurement: depth tags, DoH, TLS, redirect to a refused endpoint."""
    der = _cert_der()
    tags0 = ["classic", "depth=0", "fetch_body=true"]
    return {
        "report_id": "",
        "test_name": "web_connectivity",
        "test_version": "0.5.28",
        "probe_cc": "IT",
        "probe_asn": "AS137",
        "probe_ip": PROBE_IP,
        "input": "https://short.example/abc",
        "measurement_start_time": "2024-02-12 20:33:47",
        "test_keys": {
            "queries": [
                {
                    "hostname": "short.example",
                    "query_type": "A",
                    "engine": "doh",
                    "resolver_address": "https://dns.example/dns-query",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": "192.0.2.20"}],
                    "tags": ["depth=0"],
                },
                {
                    "hostname": "short.example",
                    "query_type": "ANY",
                    "engine": "getaddrinfo",
                    "resolver_address": "",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": "192.0.2.20"}],
                    "tags": ["classic", "depth=0"],
                },
                {
                    "hostname": "www.example.org",
                    "query_type": "ANY",
                    "engine": "getaddrinfo",
                    "failure": None,
                    "answers": [{"answer_type": "A", "ipv4": "192.0.2.30"}],
                    "tags": ["classic", "depth=1"],
                },
            ],
            "tcp_connect": [
                {
                    "ip": "192.0.2.20",
                    "port": 443,
                    "status": {"success": True, "failure": None},
                    "tags": tags0,
                },
                {
                    "ip": "192.0.2.30",
                    "port": 443,
                    "status": {"success": False, "failure": "connection_refused"},
                    "tags": ["classic", "depth=1"],
                },
            ],
            "tls_handshakes": [
                {
                    "address": "192.0.2.20:443",
                    "server_name": "short.example",
                    "failure": None,
                    "tls_version": "TLSv1.3",
                    "peer_certificates": [
                        {"format": "base64", "data": base64.b64encode(der).decode()}
                    ],
                    "tags": tags0,
                }
            ],
            "requests": [
                {
                    "failure": None,
                    "address": "192.0.2.20:443",
                    "request": {"url": "https://short.example/abc", "x_transport": "tcp"},
                    "response": {
                        "code": 308,
                        "headers_list": [["Location", "https://www.example.org/"]],
                        "body": {"format": "base64", "data": base64.b64encode(b"moved").decode()},
                    },
                    "tags": tags0,
                }
            ],
            "control": {
                "dns": {"failure": None, "addrs": ["192.0.2.20"]},
                "tcp_connect": {"192.0.2.20:443": {"status": True, "failure": None}},
                "tls_handshake": {"192.0.2.20:443": {"status": True, "failure": None}},
                "http_request": {"status_code": 200, "body_length": 10, "failure": None},
            },
            "control_failure": None,
            "blocking": "http-failure",
            "accessible": False,
        },
    }


def conv(rec: object) -> OoniConversion:
    return convert(rec, campaign="c", run_id="r")


# --------------------------------------------------------------------------------------------
# failure strings and small helpers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (None, None),
        (False, None),
        ("", None),
        ("connection_reset", "connection_reset"),
        ("generic_timeout_error", "generic_timeout_error"),
        ("dns_name_error", "dns_nxdomain_error"),
        ("connection_refused_error", "connection_refused"),
        ("android_dns_cache_no_data", "dns_no_answer"),
        (
            "ssl_error: error:14007086:SSL routines:certificate verify failed",
            "ssl_invalid_certificate",
        ),
        (
            "unknown_failure: stopped after too many redirects",
            "http_request_failed: too_many_redirects",
        ),
        ("http_invalid_redirect_url", "http_request_failed: invalid_redirect_url"),
        ("unknown_failure: weird thing", "unknown_failure: weird thing"),
        ("unknown_failure 'ascii' codec", "unknown_failure: ascii_codec"),
        ("response_never_received", "unknown_failure: response_never_received"),
    ],
)
def test_normalise_failure(raw: object, want: str | None) -> None:
    got, note = normalise_failure(raw)
    assert got == want
    assert (note is None) == (raw in (None, False, "") or raw == want)


def test_blocking_text() -> None:
    assert blocking_text(False) == "false"
    assert blocking_text("dns") == "dns"
    assert blocking_text(None) is None


# --------------------------------------------------------------------------------------------
# 0.4 mapping
# --------------------------------------------------------------------------------------------


def test_legacy_measurement_maps_like_the_probe() -> None:
    c = conv(legacy_record())
    m = c.measurement
    assert m is not None and c.problems == ()
    assert m.measurement_id == "uid-legacy-1"
    assert m.schema_version == SCHEMA_VERSION
    assert m.data_source == "ooni" and not m.is_control
    assert (m.probe_cc, m.probe_asn, m.probe_as_name) == ("RU", 64500, "Example Net")
    assert m.started_at.isoformat() == "2020-03-03T09:15:05+00:00"
    assert m.duration_ms == 1500.0
    assert m.url == "http://blocked.example/" and m.hostname == "blocked.example"
    # A then AAAA, CNAME followed but not stored
    assert m.dns_answers == ("192.0.2.10", "2001:db8::10")
    assert m.dns_resolver == "198.51.100.53" and m.dns_failure is None
    assert (m.server_ip, m.server_port, m.tcp_failure) == ("192.0.2.10", 80, None)
    # the final request is the first listed; the chain is in request order
    assert m.http_status == 200
    assert m.http_final_url == "http://blockpage.example/index.html"
    assert m.http_redirects == ("http://blockpage.example/index.html",)
    assert m.http_title == "Доступ ограничен"
    assert m.http_body_prefix is not None and b"blocked" in m.http_body_prefix
    assert json.loads(m.http_headers or "[]")[0] == ["Content-Type", "text/html; charset=utf-8"]
    assert (m.failure_step, m.failure) == (None, None)
    assert (m.ooni_blocking, m.ooni_accessible) == ("http-diff", False)


def test_legacy_control_row() -> None:
    c = conv(legacy_record())
    k, m = c.control, c.measurement
    assert k is not None and m is not None
    assert k.is_control and k.vantage_id == CONTROL_VANTAGE and k.probe_cc == "ZZ"
    assert k.data_source == "ooni"
    assert k.measurement_id == "uid-legacy-1.th"
    assert (k.url, k.started_at) == (m.url, m.started_at)
    assert k.dns_answers == ("192.0.2.10",) and k.server_ip == "192.0.2.10"
    assert (k.http_status, k.http_title, k.http_body_length) == (200, "Real site", 4864)
    assert k.failure is None
    assert k.ooni_blocking is None  # OONI's verdict belongs to the probe's row only


def test_requests_listed_oldest_first_are_recognised() -> None:
    rec = legacy_record()
    rec["test_keys"]["requests"].reverse()
    m = conv(rec).measurement
    assert m is not None
    assert m.http_status == 200 and m.http_redirects == ("http://blockpage.example/index.html",)
    assert "oldest first" in (m.import_note or "")


def test_vantage_is_a_stable_pseudonym_and_no_probe_ip_is_kept() -> None:
    a = conv(legacy_record()).measurement
    b = conv(legacy_record(measurement_uid="uid-2")).measurement
    other = conv(legacy_record(report_id="another-report")).measurement
    assert a is not None and b is not None and other is not None
    assert a.vantage_id == b.vantage_id != other.vantage_id
    assert a.vantage_id is not None and a.vantage_id.startswith("ooni-AS64500-")
    for row in (a.as_row(), conv(legacy_record()).control.as_row()):  # type: ignore[union-attr]
        assert PROBE_IP not in repr(row)


def test_measurement_id_without_uid_is_deterministic_and_distinct() -> None:
    r1 = legacy_record()
    del r1["measurement_uid"]
    r2 = copy.deepcopy(r1)
    r2["test_keys"]["blocking"] = False
    a, a2, b = conv(r1).measurement, conv(copy.deepcopy(r1)).measurement, conv(r2).measurement
    assert a is not None and a2 is not None and b is not None
    assert a.measurement_id == a2.measurement_id != b.measurement_id


def test_https_reset_without_handshake_record_is_a_tls_failure() -> None:
    rec = legacy_record(input="https://blocked.example/")
    tk = rec["test_keys"]
    tk["tcp_connect"][0]["port"] = 443
    tk["requests"] = [
        {"failure": "connection_reset", "request": {"url": "https://blocked.example/"}}
    ]
    m = conv(rec).measurement
    assert m is not None
    assert (m.failure_step, m.tls_failure, m.http_failure) == ("tls", "connection_reset", None)
    assert "inferred" in (m.import_note or "")


def test_dns_failure_stops_the_flow() -> None:
    rec = legacy_record()
    q = rec["test_keys"]["queries"][0]
    q["failure"], q["answers"] = "dns_nxdomain_error", None
    m = conv(rec).measurement
    assert m is not None
    assert (m.failure_step, m.failure) == ("dns", "dns_nxdomain_error")
    assert m.server_ip is None and m.http_status is None


def test_tcp_failure_stops_the_flow() -> None:
    rec = legacy_record()
    rec["test_keys"]["tcp_connect"][0]["status"] = {
        "success": False,
        "failure": "generic_timeout_error",
    }
    m = conv(rec).measurement
    assert m is not None
    assert (m.failure_step, m.failure, m.server_ip) == (
        "tcp",
        "generic_timeout_error",
        "192.0.2.10",
    )
    assert m.http_status is None


def test_control_failure_gives_no_control_row() -> None:
    rec = legacy_record()
    rec["test_keys"]["control_failure"] = "connection_refused"
    c = conv(rec)
    assert c.measurement is not None and c.control is None
    assert "test helper failed" in (c.measurement.import_note or "")


# --------------------------------------------------------------------------------------------
# 0.5 mapping
# --------------------------------------------------------------------------------------------


def test_lte_measurement_redirect_then_refused() -> None:
    c = conv(lte_record())
    m = c.measurement
    assert m is not None
    assert m.measurement_id.startswith("ooni-") and len(m.measurement_id) == 37
    assert m.dns_resolver == "system" and m.dns_answers == ("192.0.2.20",)
    assert m.dns_control_resolver == "https://dns.example/dns-query"
    assert m.dns_control_answers == ("192.0.2.20",)
    assert m.tls_version == "TLSv1.3" and m.tls_cert_valid is True
    assert m.tls_cert_issuer is not None and "Test CA Org" in m.tls_cert_issuer
    assert m.tls_cert_sha256 is not None and len(m.tls_cert_sha256) == 64
    # redirect at depth 0, refused connect at depth 1: the probe's http step fails there
    assert (m.http_status, m.http_final_url) == (308, "https://short.example/abc")
    assert m.http_redirects == ("https://www.example.org/",)
    assert (m.failure_step, m.failure) == ("http", "connection_refused")
    assert m.http_body_prefix == b"moved"
    k = c.control
    assert k is not None and k.tls_cert_valid is True and k.http_status == 200


def test_lte_tls_failure_means_no_http() -> None:
    rec = lte_record()
    rec["test_keys"]["tls_handshakes"][0]["failure"] = "ssl_invalid_hostname"
    m = conv(rec).measurement
    assert m is not None
    assert (m.failure_step, m.tls_failure, m.tls_cert_valid) == (
        "tls",
        "ssl_invalid_hostname",
        False,
    )
    assert m.http_status is None and m.http_failure is None


def test_lte_addresses_ooni_did_not_connect_to() -> None:
    rec = lte_record()
    tk = rec["test_keys"]
    tk["queries"][1]["answers"] = [{"answer_type": "A", "ipv4": "127.0.0.1"}]
    m = conv(rec).measurement
    assert m is not None
    assert m.dns_answers == ("127.0.0.1",)
    assert (m.failure_step, m.failure) == ("tcp", NOT_CONNECTED)
    assert m.http_status is None  # OONI's fetch through the DoH address is not the probe's view


# --------------------------------------------------------------------------------------------
# tolerance
# --------------------------------------------------------------------------------------------


def test_other_tests_are_skipped_and_garbage_refused() -> None:
    assert conv({"test_name": "dns_consistency", "input": "x"}).skipped == "dns_consistency"
    assert conv([1, 2]).refused is not None
    assert conv({"foo": 1}).refused == "no test_name"
    assert conv(legacy_record(input=None)).refused == "no input URL"
    assert conv(legacy_record(input="ftp://x")).refused is not None
    no_time = legacy_record(measurement_start_time=None, test_start_time=None)
    assert conv(no_time).refused is not None


def test_start_time_fallback_and_bad_fields_are_flagged() -> None:
    rec = legacy_record(measurement_start_time="garbage", probe_cc="Russia", probe_asn="ASX")
    rec["test_keys"]["queries"] = "not a list"
    rec["test_keys"]["requests"][0]["response"]["body"] = {"format": "base64", "data": "@@@"}
    c = conv(rec)
    m = c.measurement
    assert m is not None and c.malformed
    assert m.started_at.isoformat() == "2020-03-03T09:00:00+00:00"
    assert m.probe_cc == "ZZ" and m.probe_asn is None
    assert m.import_note is not None and m.import_note.startswith("malformed:")
    assert any("test_start_time" in p for p in c.problems)


def test_unwrap_api_recordings() -> None:
    meta = {"measurement_uid": "u1", "raw_measurement": json.dumps(legacy_record())}
    wrapped = {"status": 200, "contentType": "application/json", "body": json.dumps(meta)}
    raw = unwrap(wrapped)
    assert isinstance(raw, dict) and raw["input"] == "http://blocked.example/"
    m = conv(wrapped).measurement
    assert m is not None and m.measurement_id == "uid-legacy-1"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
_KEYS = [
    "queries",
    "tcp_connect",
    "tls_handshakes",
    "requests",
    "control",
    "blocking",
    "accessible",
]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.booleans(),
    st.dictionaries(st.sampled_from(_KEYS), _json, max_size=7),
    st.sampled_from(_KEYS),
    _json,
)
def test_convert_never_raises_on_odd_test_keys(
    lte: bool, tk: dict[str, Any], key: str, junk: Any
) -> None:
    rec = lte_record() if lte else legacy_record()
    rec["test_keys"].update(tk)
    for name in ("requests", "queries", "tcp_connect", "tls_handshakes"):
        items = rec["test_keys"].get(name)
        if isinstance(items, list) and items and isinstance(items[0], dict):
            items[0][key] = junk
    c = conv(rec)
    assert c.refused is None or not c.refused.startswith("internal error"), c.refused
    if c.measurement is not None:
        c.measurement.as_row()


# --------------------------------------------------------------------------------------------
# comparison with OONI's verdicts (pure part of analysis.compare_ooni)
# --------------------------------------------------------------------------------------------


def test_compare_matrix_and_disagreements() -> None:
    rows = pd.DataFrame(
        [
            # (ooni_blocking, ooni_accessible, status, mechanism)
            ("a", "false", True, "accessible", "none"),
            ("b", "false", False, "down", "none"),
            ("c", "dns", False, "denied", "dns_nxdomain"),
            ("d", "tcp_ip", False, "denied", "tcp_timeout"),
            ("e", "http-failure", False, "denied", "tls_reset"),
            ("f", "http-diff", False, "denied", "http_blockpage"),
            ("g", "dns", False, "denied", "tcp_timeout"),  # partial: denial, other layer
            ("h", "false", True, "denied", "http_blockpage"),  # OONI missed it
            ("i", "http-diff", False, "inconclusive", None),  # disagree
            ("j", None, None, "accessible", "none"),  # no OONI verdict
        ],
        columns=["measurement_id", "ooni_blocking", "ooni_accessible", "status", "mechanism"],
    ).assign(url="http://x.example/", probe_cc="RU", rule_id="R1", failure=None)
    r = compare(rows)
    assert (r.compared, r.agree, r.partial, r.disagree, r.no_ooni_verdict) == (9, 6, 1, 2, 1)
    assert r.agreement == pytest.approx(6 / 9)
    assert r.matrix["dns"]["denied:tcp"] == 1 and r.matrix["null"]["accessible"] == 1
    kinds = {d.measurement_id: d.kind for d in r.disagreements}
    assert kinds == {"g": "partial", "h": "disagree", "i": "disagree"}
    h = next(d for d in r.disagreements if d.measurement_id == "h")
    assert "blocking=false" in h.ooni_reason and "rule_id=R1" in h.res64_reason
    assert [d.measurement_id for d in r.denied_but_ooni_accessible] == ["h"]
    text = "\n".join(comparison_lines(r))
    assert "agree 6 (66.7 %)" in text and "denied by res64, accessible for OONI" in text
    assert len(comparison_tables(r)) == 3
    json.dumps(r.to_json())


@pytest.mark.parametrize(
    ("blocking", "accessible", "want"),
    [
        ("false", True, "false/accessible"),
        ("false", False, "false/down"),
        (None, None, "null"),
        ("dns", False, "dns"),
        ("weird", None, "null"),
    ],
)
def test_ooni_class(blocking: str | None, accessible: bool | None, want: str) -> None:
    assert ooni_class(blocking, accessible) == want


# --------------------------------------------------------------------------------------------
# files and datasets
# --------------------------------------------------------------------------------------------


def _read(out: Path, table: str = "measurements") -> list[dict[str, Any]]:
    return ds.dataset(out / table, format="parquet", partitioning="hive").to_table().to_pylist()


def test_readers_accept_json_array_jsonl_gz_and_pretty(tmp_path: Path) -> None:
    recs = [legacy_record(measurement_uid=f"u{i}") for i in range(4)]
    (tmp_path / "one.json").write_text(json.dumps(recs[0], indent=2))
    (tmp_path / "arr.json").write_text(json.dumps(recs[1:3]))
    with gzip.open(tmp_path / "lines.jsonl.gz", "wt") as f:
        f.write(json.dumps(recs[3]) + "\n\n{broken\n" + json.dumps({"test_name": "tor"}) + "\n")
    (tmp_path / "empty.jsonl").write_text("")
    got = [(w, r) for p in sorted(tmp_path.iterdir()) for w, r in iter_json(p)]
    assert len(got) == 6
    files = [tmp_path / n for n in ("one.json", "arr.json", "lines.jsonl.gz", "empty.jsonl")]
    s = import_ooni_files(files, tmp_path / "out", campaign="t")
    assert (s.files, s.records, s.measurements, s.controls) == (4, 6, 4, 4)
    assert (s.refused, s.skipped["tor"]) == (1, 1)
    assert any("lines.jsonl.gz:3" in p for p in s.problems)
    rows = _read(tmp_path / "out")
    assert len(rows) == 8
    assert {r["probe_cc"] for r in rows} == {"RU", "ZZ"}
    assert {r["campaign"] for r in rows} == {"t"}
    manifest = json.loads(s.manifest_path.read_text()) if s.manifest_path else {}
    assert manifest["status"] == "complete"
    assert [i["name"] for i in manifest["config"]["inputs"]] == [f.name for f in files]
    assert all(len(i["sha256"]) == 64 for i in manifest["config"]["inputs"])
    assert manifest["counts"]["measurements"] == 4


def test_reimport_does_not_duplicate(tmp_path: Path) -> None:
    f = tmp_path / "m.jsonl"
    f.write_text(json.dumps(legacy_record()) + "\n")
    import_ooni_files([f], tmp_path / "out")
    again = import_ooni_files([f], tmp_path / "out")
    assert (again.measurements, again.duplicates) == (0, 1)
    assert len(_read(tmp_path / "out")) == 2


def test_truncated_gzip_is_reported_not_fatal(tmp_path: Path) -> None:
    data = gzip.compress(
        ("\n".join(json.dumps(legacy_record(measurement_uid=f"u{i}")) for i in range(50))).encode()
    )
    f = tmp_path / "cut.jsonl.gz"
    f.write_bytes(data[: len(data) // 2])
    s = import_ooni_files([f], tmp_path / "out")
    assert s.refused >= 1 and any("unreadable" in p for p in s.problems)


def test_missing_input_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        import_ooni_files([tmp_path / "nope.json"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# API client (MockTransport, fake sleep)
# --------------------------------------------------------------------------------------------


class FakeApi:
    """A tiny OONI API: ``n`` measurements, paged; some raw ones missing; optional 429s."""

    def __init__(self, n: int, missing: set[int] = frozenset(), throttle: int = 0) -> None:  # type: ignore[assignment]
        self.n = n
        self.missing = missing
        self.throttle = throttle
        self.calls: list[str] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(str(request.url))
        assert request.url.host == "api.test"
        if self.throttle:
            self.throttle -= 1
            return httpx.Response(429, headers={"Retry-After": "7"})
        q = request.url.params
        if request.url.path == "/api/v1/measurements":
            off, lim = int(q["offset"]), int(q["limit"])
            res = [
                {"measurement_uid": f"m{i}", "test_name": "web_connectivity" if i % 5 else "signal"}
                for i in range(off, min(off + lim, self.n))
            ]
            return httpx.Response(200, json={"metadata": {"offset": off}, "results": res})
        if request.url.path == "/api/v1/raw_measurement":
            i = int(q["measurement_uid"][1:])
            if i in self.missing:
                return httpx.Response(404)
            rec = legacy_record()
            del rec["measurement_uid"]
            return httpx.Response(200, json=rec)
        return httpx.Response(404)


def test_api_import_pages_rate_limits_and_caches(tmp_path: Path) -> None:
    fake = FakeApi(23, missing={7})
    sleeps: list[float] = []
    client = httpx.Client(transport=httpx.MockTransport(fake.handler))
    kw = dict(
        probe_cc="ru",
        since="2024-01-01",
        until="2024-01-31",
        client=client,
        cache_dir=tmp_path / "cache",
        base_url="https://api.test",
        page_size=10,
        sleep=sleeps.append,
    )
    s = import_ooni_api(tmp_path / "out", **kw)  # type: ignore[arg-type]
    # 23 results: 5 "signal" skipped, 1 raw missing (after the measurement_meta fallback)
    assert (s.measurements, s.skipped["signal"], s.unavailable) == (17, 5, 1)
    searches = [c for c in fake.calls if "/measurements?" in c]
    assert len(searches) == 3 and all("probe_cc=RU" in c for c in searches)
    rows = _read(tmp_path / "out")
    assert {r["measurement_id"] for r in rows if not r["is_control"]} >= {"m1", "m2"}
    # second run: everything already stored → only the search is asked again
    fake.calls.clear()
    again = import_ooni_api(tmp_path / "out", **kw)  # type: ignore[arg-type]
    assert again.duplicates == 17 and again.measurements == 0
    assert all("raw_measurement" not in c for c in fake.calls if "m7" not in c)
    # a new dataset re-uses the cache: no raw request except the missing one
    fake.calls.clear()
    import_ooni_api(tmp_path / "out2", **kw)  # type: ignore[arg-type]
    assert [c for c in fake.calls if "raw_measurement" in c and "m7" not in c] == []


def test_api_spaces_requests() -> None:
    fake = FakeApi(25)
    sleeps: list[float] = []
    api = OoniApi(
        httpx.Client(transport=httpx.MockTransport(fake.handler)),
        base_url="https://api.test",
        min_interval=1.5,
        sleep=sleeps.append,
        clock=lambda: 100.0,  # frozen clock: every request but the first waits the interval
    )
    assert len(list(api.search(ApiQuery.build("IT", page_size=10)))) == 25
    assert len(fake.calls) == 3 and sleeps == [1.5, 1.5]


def test_api_retries_429_with_retry_after() -> None:
    fake = FakeApi(3, throttle=2)
    sleeps: list[float] = []
    api = OoniApi(
        httpx.Client(transport=httpx.MockTransport(fake.handler)),
        base_url="https://api.test",
        min_interval=0,
        sleep=sleeps.append,
    )
    got = list(api.search(ApiQuery.build("IT", page_size=10)))
    assert len(got) == 3 and sleeps == [7.0, 7.0]


def test_api_gives_up_after_bounded_retries() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    api = OoniApi(
        httpx.Client(transport=httpx.MockTransport(down)),
        base_url="https://api.test",
        max_retries=2,
        sleep=lambda s: None,
    )
    with pytest.raises(ApiUnavailable, match="unavailable"):
        list(api.search(ApiQuery.build("IT")))
    assert api.requests == 3


def test_api_response_size_is_bounded() -> None:
    big = b"[" + b"1," * 5000 + b"1]"
    api = OoniApi(
        httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=big))),
        base_url="https://api.test",
        max_bytes=1000,
        sleep=lambda s: None,
    )
    assert api.raw_measurement("m1") is None


@pytest.mark.parametrize(
    ("kw", "msg"),
    [
        ({"probe_cc": "Russia"}, "two-letter"),
        ({"probe_cc": "RU", "since": "yesterday"}, "YYYY-MM-DD"),
        ({"probe_cc": "RU", "since": "2024-02-01", "until": "2024-01-01"}, "after"),
        ({"probe_cc": "RU", "domain": "https://x.org/"}, "host name"),
    ],
)
def test_api_query_validation(kw: dict[str, str], msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        ApiQuery.build(**kw)
