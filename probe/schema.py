"""The one definition of every Parquet column (SPEC §4).

``MEASUREMENTS`` and ``HOPS`` are the Arrow schemas of the two tables; ``COLUMN_DOCS`` says
what each column holds.  ``SCHEMA_VERSION`` is stored in every file's metadata and in every
row; bump it whenever a column is added, removed or changes type.  ``tests/unit/test_schema.py``
holds this module against :mod:`probe.records`.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

_TS = pa.timestamp("us", tz="UTC")
_STR = pa.string()
_LIST = pa.list_(pa.string())

# (name, type, doc) in column order: identical to the field order of records.Measurement.
_MEASUREMENT_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("measurement_id", _STR, "unique id of the measurement (random, 26 chars)"),
    ("schema_version", pa.int16(), "version of this schema"),
    ("software_version", _STR, "res64-probe version that measured"),
    ("campaign", _STR, "campaign name (default 'adhoc')"),
    ("run_id", _STR, "id of the run (one invocation of res64 measure)"),
    ("started_at", _TS, "UTC start of the measurement"),
    ("duration_ms", pa.float64(), "wall time of all steps"),
    ("rep", pa.int32(), "repetition index within the run (--repeat)"),
    ("vantage_id", _STR, "random pseudonymous id of the vantage"),
    ("probe_cc", _STR, "ISO 3166-1 alpha-2 country of the vantage (ZZ unknown)"),
    ("probe_asn", pa.int64(), "AS number of the vantage"),
    ("probe_as_name", _STR, "AS name of the vantage"),
    ("via_proxy", _STR, "proxy URL without credentials, null when measuring directly"),
    ("is_control", pa.bool_(), "dedicated control record (helper, control proxy, import)"),
    ("steps_hidden", _LIST, "steps a proxy hides from the vantage (not measured locally)"),
    ("url", _STR, "normalised target URL"),
    ("hostname", _STR, "host part of the URL"),
    ("category_code", _STR, "Citizen Lab category code of the target"),
    ("operator_cc", _STR, "country under whose jurisdiction the site's operator acts"),
    ("dns_resolver", _STR, "resolver used (system resolver address or --resolver)"),
    ("dns_answers", _LIST, "A then AAAA answers, resolver order"),
    ("dns_failure", _STR, "OONI failure string, null on success"),
    ("dns_rcode", _STR, "DNS response code of the A query"),
    ("dns_ms", pa.float64(), "lookup time"),
    ("dns_control_resolver", _STR, "control resolver (UDP address or DoH URL)"),
    ("dns_control_answers", _LIST, "answers of the control resolver"),
    ("dns_control_failure", _STR, "failure of the control lookup"),
    ("dns_control_ms", pa.float64(), "control lookup time"),
    ("server_ip", _STR, "address measured by TCP/TLS/HTTP (first that connected)"),
    ("server_port", pa.int32(), "port measured"),
    ("server_cc", _STR, "GeoIP country of server_ip"),
    ("server_asn", pa.int64(), "GeoIP AS number of server_ip"),
    ("server_as_name", _STR, "GeoIP AS name of server_ip"),
    ("tcp_failure", _STR, "failure of the connect to server_ip (or of all addresses)"),
    ("tcp_ms", pa.float64(), "connect time"),
    ("tcp_attempts", _STR, "JSON list of every address tried: ip, port, failure, ms"),
    ("synack_ttl", pa.int16(), "IP TTL of the SYN-ACK (privileged capture only)"),
    ("rst_ttl", pa.int16(), "IP TTL of a RST/FIN received (privileged capture only)"),
    ("tls_failure", _STR, "failure of the validated handshake"),
    ("tls_version", _STR, "negotiated TLS version"),
    ("tls_cert_issuer", _STR, "issuer of the leaf certificate (RFC 4514)"),
    ("tls_cert_subject", _STR, "subject of the leaf certificate (RFC 4514)"),
    ("tls_cert_valid", pa.bool_(), "the chain and name validated"),
    ("tls_cert_not_after", _TS, "expiry of the leaf certificate"),
    ("tls_cert_sha256", _STR, "SHA-256 of the leaf certificate (DER)"),
    ("tls_ms", pa.float64(), "handshake time"),
    ("http_status", pa.int16(), "status of the final response"),
    ("http_failure", _STR, "failure of the HTTP step"),
    ("http_headers", _STR, "JSON list of [name, value] pairs of the final response"),
    ("http_title", _STR, "<title> of the final response body (bounded, sanitised)"),
    ("http_body_length", pa.int64(), "decoded body bytes read (capped)"),
    ("http_body_sha256", _STR, "SHA-256 of the decoded body bytes read"),
    ("http_body_prefix", pa.binary(), "first --body-bytes of the decoded body"),
    ("http_body_truncated", pa.bool_(), "the body exceeded the read cap"),
    ("http_final_url", _STR, "URL of the final response"),
    ("http_redirects", _LIST, "redirect chain: every URL requested after the first"),
    ("http_verified", pa.bool_(), "the fetch validated certificates"),
    ("http_ms", pa.float64(), "time of the HTTP step, redirects included"),
    ("failure_step", _STR, "dns|tcp|tls|http: first step that failed"),
    ("failure", _STR, "first failure string"),
    ("data_source", _STR, "res64 (this probe) | helper | control_proxy | ooni (imported)"),
    ("ooni_blocking", _STR, "imported OONI verdict field 'blocking' (as a string)"),
    ("ooni_accessible", pa.bool_(), "imported OONI verdict field 'accessible'"),
    ("import_note", _STR, "what an import tolerated or could not map (malformed parts)"),
]

_HOP_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("trace_id", _STR, "id of the traceroute ('~control' suffix: the control-name probes)"),
    ("vantage_id", _STR, "vantage that traced"),
    ("probe_cc", _STR, "country of the vantage"),
    ("started_at", _TS, "UTC start of the trace"),
    ("dst_ip", _STR, "destination address"),
    ("dst_port", pa.int32(), "destination port (tcp/udp)"),
    ("proto", _STR, "tcp|icmp|udp traces; tls|http for localisation trigger probes"),
    ("ttl", pa.int16(), "probe TTL"),
    ("measurement_id", _STR, "measurement that triggered the trace (nullable)"),
    ("campaign", _STR, "campaign name"),
    ("run_id", _STR, "run id"),
    ("hop_ip", _STR, "replying address, null for '*'"),
    ("rtt_ms", pa.float64(), "round-trip time"),
    (
        "reply_kind",
        _STR,
        "time_exceeded|synack|rst|unreachable|none; also echo_reply (icmp), data|fin (triggers)",
    ),
    ("reply_ttl", pa.int16(), "IP TTL of the reply"),
    ("hop_cc", _STR, "GeoIP country of hop_ip"),
    ("hop_asn", pa.int64(), "GeoIP AS number of hop_ip"),
]


def _schema(cols: list[tuple[str, pa.DataType, str]], table: str) -> pa.Schema:
    return pa.schema(
        [pa.field(n, t, metadata={"doc": d}) for n, t, d in cols],
        metadata={
            b"res64.table": table.encode(),
            b"res64.schema_version": str(SCHEMA_VERSION).encode(),
        },
    )


MEASUREMENTS: pa.Schema = _schema(_MEASUREMENT_COLUMNS, "measurements")
HOPS: pa.Schema = _schema(_HOP_COLUMNS, "hops")
COLUMN_DOCS: dict[str, str] = {n: d for n, _, d in _MEASUREMENT_COLUMNS + _HOP_COLUMNS}

# Partition columns of the hive layout (SPEC §7).  They live in the directory names only:
# ``campaign`` and ``probe_cc`` are dropped from the files (readers such as pandas refuse a
# column that is both in the file and in the path), ``date`` is derived from ``started_at``.
PARTITIONING: tuple[str, ...] = ("campaign", "probe_cc", "date")


def file_schema(table: str) -> pa.Schema:
    """The schema of the Parquet files themselves: the table's minus partition columns."""
    schema = table_schema(table)
    for name in PARTITIONING:
        idx = schema.get_field_index(name)
        if idx >= 0:
            schema = schema.remove(idx)
    return schema


def table_schema(table: str) -> pa.Schema:
    """The schema of ``measurements`` or ``hops``."""
    if table == "measurements":
        return MEASUREMENTS
    if table == "hops":
        return HOPS
    raise ValueError(f"unknown table {table!r}")


__all__ = [
    "COLUMN_DOCS",
    "HOPS",
    "MEASUREMENTS",
    "PARTITIONING",
    "SCHEMA_VERSION",
    "file_schema",
    "table_schema",
]
