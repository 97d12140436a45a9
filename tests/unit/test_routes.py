"""Route analysis: transit countries, detours, speed of light, blackholes, localisations."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd

from analysis import routes as R
from probe.records import Hop

NOW = datetime(2026, 1, 1, tzinfo=UTC)
WEB, HOLE = "198.51.100.10", "198.51.100.20"
GEO = {
    "10.1.0.1": ("IR", 64501),
    "10.11.0.2": ("TR", 64510),
    "10.2.0.1": ("DE", 64502),
    "10.13.0.2": ("NL", 64520),
    "10.14.0.2": ("US", 64530),
    WEB: ("US", 64530),
    HOLE: ("US", 64530),
}


def trace(
    tid: str, cc: str, dst: str, hops: list[tuple[str | None, float | None, str]], *,
    mid: str | None = None, proto: str = "tcp",
) -> list[dict[str, object]]:  # fmt: skip
    rows = []
    for ttl, (ip, rtt, kind) in enumerate(hops, start=1):
        hcc, asn = GEO.get(ip, (None, None)) if ip else (None, None)
        h = Hop(
            trace_id=tid, vantage_id="v", probe_cc=cc, started_at=NOW, dst_ip=dst, dst_port=443,
            proto=proto, ttl=ttl, measurement_id=mid, hop_ip=ip, rtt_ms=rtt, reply_kind=kind,
            reply_ttl=None if ip is None else 65 - ttl, hop_cc=hcc, hop_asn=asn,
        )  # fmt: skip
        rows.append(h.as_row())
    return rows


TE = "time_exceeded"
IR_WEB = [("10.1.0.1", 1.0, TE), ("10.11.0.2", 30.0, TE), (None, None, "none"),
          ("10.14.0.2", 120.0, TE), (WEB, 121.0, "synack")]  # fmt: skip
DE_WEB = [("10.2.0.1", 1.0, TE), ("10.13.0.2", 5.0, TE), ("10.14.0.2", 90.0, TE),
          (WEB, 91.0, "synack")]  # fmt: skip
IR_HOLE = [("10.1.0.1", 1.0, TE), ("10.11.0.2", 30.0, TE)] + [(None, None, "none")] * 5
DE_HOLE = [("10.2.0.1", 1.0, TE), ("10.13.0.2", 5.0, TE), ("10.14.0.2", 90.0, TE),
           (HOLE, 91.0, "synack")]  # fmt: skip


def hops_df(*traces: list[dict[str, object]]) -> pd.DataFrame:
    return pd.DataFrame([r for t in traces for r in t])


def test_speed_of_light() -> None:
    assert R.distance_km("IR", "IR") == 0
    assert 10_000 < (R.distance_km("IR", "US") or 0) < 13_000
    assert R.too_fast("IR", "US", 2.0)
    assert not R.too_fast("IR", "US", 120.0)
    assert not R.too_fast("IR", "TR", 30.0)
    assert not R.too_fast("IR", "XX", 0.1)  # no centroid: not checked


def test_path_summaries_countries_and_reach() -> None:
    p = R.path_summaries(hops_df(trace("t1", "IR", WEB, IR_WEB), trace("t2", "IR", HOLE, IR_HOLE)))
    t1 = p.set_index("trace_id").loc["t1"]
    assert t1["countries"] == ["IR", "TR", "US"] and t1["asns"] == [64501, 64510, 64530]
    assert bool(t1["reached"]) and t1["dest_cc"] == "US"
    t2 = p.set_index("trace_id").loc["t2"]
    assert not t2["reached"] and (t2["last_hop_ip"], t2["last_hop_cc"]) == ("10.11.0.2", "TR")


def test_routes_table_transit_detour_and_blackhole() -> None:
    df = hops_df(
        trace("a1", "IR", WEB, IR_WEB), trace("b1", "DE", WEB, DE_WEB),
        trace("a2", "IR", HOLE, IR_HOLE), trace("b2", "DE", HOLE, DE_HOLE),
    )  # fmt: skip
    table = R.routes_table(df).set_index(["affected_cc", "transit_cc"])
    tr = table.loc[("IR", "TR")]
    assert tr["traces"] == 2 and tr["traces_from_cc"] == 2 and tr["share"] == 1.0
    assert tr["detours"] == 2 and tr["median_added_rtt_ms"] == 119.0  # 120 after, 1 before
    assert tr["blackholes"] == 1 and tr["server_ccs"] == "US"
    assert ("IR", "US") not in table.index  # the server's own country is no transit
    bh = R.blackholes(df)
    assert list(bh["trace_id"]) == ["a2"] and bh["last_hop_cc"].iloc[0] == "TR"


def test_suspect_geolocation_is_flagged_and_not_used() -> None:
    fast = [("10.1.0.1", 1.0, TE), ("10.14.0.2", 2.0, TE), (WEB, 121.0, "synack")]
    p = R.path_summaries(hops_df(trace("f", "IR", WEB, fast)))
    assert p["suspect_hops"].iloc[0] == 1
    assert p["countries"].iloc[0] == ["IR", "US"]  # the US at 2 ms is dropped, not the reply


def test_localisations_feed_attribution() -> None:
    inj_test = [("10.1.0.1", 1.0, TE), (WEB, 2.0, "rst")]
    inj_ctl = [("10.1.0.1", 1.0, TE), ("10.11.0.2", 30.0, TE)]
    srv_ctl = [("10.1.0.1", 1.0, TE), ("10.11.0.2", 30.0, TE), (WEB, 121.0, "data")]
    srv_test = srv_ctl[:2] + [(WEB, 121.0, "rst")]
    rows = hops_df(
        trace("h", "IR", HOLE, IR_HOLE, mid="m_hole"),
        trace("i", "IR", WEB, inj_test, mid="m_inj", proto="tls"),
        trace("i~control", "IR", WEB, inj_ctl, mid="m_inj", proto="tls"),
        trace("s", "IR", WEB, srv_test, mid="m_srv", proto="tls"),
        trace("s~control", "IR", WEB, srv_ctl, mid="m_srv", proto="tls"),
        trace("ok", "IR", WEB, IR_WEB, mid="m_ok"),
    )
    # the injected RST came from the gateway: its arriving TTL says one hop away
    rows.loc[(rows.trace_id == "i") & (rows.reply_kind == "rst"), "reply_ttl"] = 64
    rows.loc[(rows.trace_id == "s") & (rows.reply_kind == "rst"), "reply_ttl"] = 62
    verdicts = pd.DataFrame(
        {
            "measurement_id": ["m_hole", "m_inj", "m_srv", "m_ok"],
            "status": ["denied", "denied", "denied", "accessible"],
            "mechanism": ["tcp_timeout", "tls_reset", "tls_reset", "none"],
        }
    )
    loc = R.localisations(rows, verdicts).set_index("measurement_id")
    assert list(R.localisations(rows, verdicts).columns[:5]) == [
        "measurement_id", "locus", "hop_cc", "hop_asn", "rule_id"
    ]  # fmt: skip
    assert set(loc.index) == {"m_hole", "m_inj", "m_srv"}
    assert tuple(loc.loc["m_hole", ["locus", "hop_cc", "hop_asn"]]) == ("transit", "TR", 64510)
    assert loc.loc["m_hole", "rule_id"] == "loc.blackhole_last_hop"
    assert tuple(loc.loc["m_inj", ["locus", "hop_cc", "hop_ip"]]) == ("local", "IR", "10.1.0.1")
    assert tuple(loc.loc["m_srv", ["locus", "hop_cc"]]) == ("server", "US")


def test_localisation_at_a_hop_with_impossible_geolocation_is_not_attributed() -> None:
    fast_hole = [("10.1.0.1", 1.0, TE), ("10.14.0.2", 2.0, TE)] + [(None, None, "none")] * 5
    rows = hops_df(trace("h", "IR", HOLE, fast_hole, mid="m"))
    verdicts = pd.DataFrame({"measurement_id": ["m"], "status": ["denied"],
                             "mechanism": ["tcp_timeout"]})  # fmt: skip
    assert R.localisations(rows, verdicts).empty
    assert R.localisations(rows.iloc[0:0], verdicts).empty
