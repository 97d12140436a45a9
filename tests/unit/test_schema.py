"""The Parquet schema and the record dataclasses must agree column for column."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pyarrow as pa

from probe import schema
from probe.records import HOP_FIELDS, MEASUREMENT_FIELDS, Hop, Measurement

SPEC_MEASUREMENT_COLUMNS = """
measurement_id schema_version software_version campaign run_id started_at duration_ms
vantage_id probe_cc probe_asn probe_as_name via_proxy is_control url hostname category_code
operator_cc dns_resolver dns_answers dns_failure dns_ms dns_control_resolver dns_control_answers
dns_control_failure server_ip server_port server_cc server_asn tcp_failure tcp_ms tls_failure
tls_version tls_cert_issuer tls_cert_valid tls_ms http_status http_failure http_headers http_title
http_body_length http_body_sha256 http_body_prefix http_final_url http_redirects http_ms
failure_step failure
""".split()

SPEC_HOP_COLUMNS = """
trace_id measurement_id vantage_id probe_cc started_at dst_ip dst_port proto ttl hop_ip rtt_ms
reply_kind reply_ttl hop_cc hop_asn
""".split()


def test_measurement_schema_matches_record_fields_in_order():
    assert tuple(schema.MEASUREMENTS.names) == MEASUREMENT_FIELDS


def test_hop_schema_matches_record_fields_in_order():
    assert tuple(schema.HOPS.names) == HOP_FIELDS


def test_every_spec_column_is_present():
    assert set(SPEC_MEASUREMENT_COLUMNS) <= set(schema.MEASUREMENTS.names)
    assert set(SPEC_HOP_COLUMNS) <= set(schema.HOPS.names)


def test_every_column_is_documented():
    for f in list(schema.MEASUREMENTS) + list(schema.HOPS):
        assert f.metadata and f.metadata[b"doc"], f.name


def test_file_schema_drops_partition_columns_only():
    fs = schema.file_schema("measurements")
    assert "campaign" not in fs.names and "probe_cc" not in fs.names
    assert len(fs.names) == len(schema.MEASUREMENTS.names) - 2
    assert schema.file_schema("hops").names == [
        n for n in schema.HOPS.names if n not in ("campaign", "probe_cc")
    ]


def test_a_full_record_converts_to_arrow_with_the_schema():
    m = Measurement(
        measurement_id="x",
        schema_version=schema.SCHEMA_VERSION,
        software_version="0",
        campaign="c",
        run_id="r",
        started_at=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        dns_answers=("192.0.2.1", "2001:db8::1"),
        http_redirects=("https://a.example/",),
        http_body_prefix=b"\x00\xff<html>",
        http_status=200,
        tls_cert_valid=True,
    )
    t = pa.Table.from_pylist([m.as_row()], schema=schema.MEASUREMENTS)
    row = t.to_pylist()[0]
    assert row["dns_answers"] == ["192.0.2.1", "2001:db8::1"]
    assert row["http_body_prefix"] == b"\x00\xff<html>"
    assert row["started_at"].microsecond == 678901
    h = Hop(
        trace_id="t",
        vantage_id="v",
        probe_cc="DE",
        started_at=m.started_at,
        dst_ip="192.0.2.1",
        dst_port=443,
        proto="tcp",
        ttl=3,
    )
    assert pa.Table.from_pylist([h.as_row()], schema=schema.HOPS).num_rows == 1


def test_records_are_frozen():
    assert dataclasses.fields(Measurement)
    m = Measurement("a", 1, "v", "c", "r", datetime.now(UTC))
    try:
        m.url = "x"  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("Measurement must be frozen")
