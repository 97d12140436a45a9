"""`res64 analyze` on a dataset with traceroutes: a blackhole in a third country is attributed
to that country (locus transit), and the routes table names the transit country."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from analysis.pipeline import analyze
from probe.records import Measurement
from probe.schema import SCHEMA_VERSION
from probe.store import DatasetWriter, Manifest
from tests.unit.test_routes import GEO, HOLE, IR_HOLE, trace

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
URL = "https://hole.example/"


def _m(mid: str, cc: str, t: datetime, ok: bool) -> Measurement:
    return Measurement(
        measurement_id=mid, schema_version=SCHEMA_VERSION, software_version="t",
        campaign="c", run_id="r", started_at=t, vantage_id=f"v-{cc}", probe_cc=cc,
        probe_asn=64500, url=URL, hostname="hole.example", operator_cc="US",
        dns_answers=(HOLE,), dns_control_answers=(HOLE,), server_ip=HOLE, server_port=443,
        server_cc="US", server_asn=GEO[HOLE][1],
        tcp_failure=None if ok else "generic_timeout_error",
        tls_failure=None, tls_cert_valid=True if ok else None,
        http_status=200 if ok else None, http_verified=True if ok else None,
        http_title="Hole" if ok else None, http_body_length=1000 if ok else None,
        http_body_sha256="ab" * 32 if ok else None,
        failure_step=None if ok else "tcp", failure=None if ok else "generic_timeout_error",
    )  # fmt: skip


def test_blackhole_in_a_third_country_is_transit(tmp_path: Path):
    out = tmp_path / "data"
    man = Manifest("r", "c", T0.isoformat(), {}, {})
    ms = [
        _m("m1", "IR", T0, ok=False),
        _m("m2", "IR", T0 + timedelta(hours=2), ok=False),
        _m("c1", "DE", T0 + timedelta(minutes=5), ok=True),
        _m("c2", "US", T0 + timedelta(minutes=7), ok=True),
    ]
    DatasetWriter(out, "measurements", "c", "r", man).write_rows([m.as_row() for m in ms])
    hops = trace("t1", "IR", HOLE, IR_HOLE, mid="m1") + trace("t2", "IR", HOLE, IR_HOLE, mid="m2")
    for h in hops:
        h["campaign"], h["run_id"] = "c", "r"
    DatasetWriter(out, "hops", "c", "r", man, first_part=10).write_rows(hops)

    res = analyze([str(out)], tmp_path / "analysis")
    row = res.targets[res.targets["affected_cc"] == "IR"].iloc[0]
    assert (row["status"], row["mechanism"], row["locus"], row["responsible_cc"]) == (
        "denied", "tcp_timeout", "transit", "TR",
    )  # fmt: skip
    assert ("IR", "TR") in set(zip(res.pairs["affected_cc"], res.pairs["responsible_cc"],
                                   strict=True))  # fmt: skip
    routes = pd.read_csv(tmp_path / "analysis" / "routes.csv")
    assert ("IR", "TR") in set(zip(routes["affected_cc"], routes["transit_cc"], strict=True))
    assert res.counts["localised"] == 2
