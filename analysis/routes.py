"""Path analysis over the ``hops`` table (pure pandas): transit countries, detours,
speed-of-light checks, blackholes, and block localisation for attribution.

* :func:`path_summaries` — one row per trace: the sequence of countries and ASes (hops whose
  geolocation fails the speed-of-light check are flagged and left out), whether the
  destination answered, the last responding hop.
* :func:`routes_table` — one row per (affected_cc, transit_cc) for ``res64 analyze``.
* :func:`localisations` — for denied measurements, where the block begins: ``locus``
  (``local`` | ``transit`` | ``server``), the blocking hop's country and AS, ``rule_id``;
  fed to ``analysis.attribution.attribute(verdicts, localisations=...)``.

Speed of light: light in fibre covers about 200 km per millisecond, so a hop that answers in
less than ``distance / 200`` ms cannot be as far from the vantage as its geolocation says
(distance between country centroids less a margin for the countries' extent).  Such a hop's
country is flagged (``suspect_geo``) and never used.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from probe.steps import trace as T

RULES_VERSION = 1
KM_PER_MS = 200.0
CENTROID_MARGIN_KM = 500.0
CONTENT_MECHANISMS = (
    "tls_reset", "tls_timeout", "http_reset", "http_timeout", "http_blockpage", "http_status",
    "http_body",
)  # fmt: skip
TRIGGER_PROTOS = ("tls", "http")
CONTROL_SUFFIX = "~control"
LOCALISATION_COLUMNS = [
    "measurement_id", "locus", "hop_cc", "hop_asn", "rule_id", "hop_ip", "hop_ttl", "block_kind",
]  # fmt: skip
ROUTES_COLUMNS = [
    "affected_cc", "transit_cc", "traces", "traces_from_cc", "share", "destinations",
    "server_ccs", "detours", "median_added_rtt_ms", "blackholes", "example_trace_ids",
]  # fmt: skip

# Approximate country centroids (lat, lon), for the speed-of-light check only.  Countries
# missing here are not checked.
CENTROIDS: dict[str, tuple[float, float]] = {
    "AE": (24.0, 54.0), "AR": (-34.0, -64.0), "AT": (47.5, 14.5), "AU": (-25.0, 134.0),
    "BE": (50.8, 4.5), "BR": (-10.0, -52.0), "BY": (53.7, 28.0), "CA": (56.0, -106.0),
    "CH": (46.8, 8.2), "CN": (35.0, 103.0), "CU": (21.5, -79.5), "CZ": (49.8, 15.5),
    "DE": (51.2, 10.4), "DK": (56.0, 10.0), "DZ": (28.0, 2.6), "EG": (26.8, 30.8),
    "ES": (40.4, -3.7), "FI": (64.0, 26.0), "FR": (46.6, 2.4), "GB": (54.0, -2.5),
    "GR": (39.0, 22.0), "HK": (22.3, 114.2), "HU": (47.2, 19.5), "IE": (53.2, -8.0),
    "IL": (31.4, 35.0), "IN": (22.0, 79.0), "IR": (32.4, 53.7), "IT": (42.8, 12.6),
    "JP": (36.2, 138.3), "KE": (0.2, 37.9), "KP": (40.3, 127.5), "KR": (36.5, 127.9),
    "KZ": (48.0, 67.0), "MA": (31.8, -7.1), "MX": (23.6, -102.5), "NG": (9.1, 8.7),
    "NL": (52.1, 5.3), "NO": (61.0, 8.5), "NZ": (-41.0, 174.0), "PK": (30.4, 69.3),
    "PL": (52.0, 19.1), "PT": (39.6, -8.0), "RO": (45.9, 25.0), "RU": (61.5, 105.3),
    "SA": (23.9, 45.1), "SD": (15.5, 30.2), "SE": (62.0, 15.0), "SG": (1.35, 103.8),
    "SY": (35.0, 38.5), "TR": (39.0, 35.2), "UA": (49.0, 31.4), "US": (39.8, -98.6),
    "VE": (7.0, -66.0), "VN": (16.0, 107.8), "ZA": (-30.6, 22.9),
}  # fmt: skip


def distance_km(a: str | None, b: str | None) -> float | None:
    """Great-circle distance between two countries' centroids (None when unknown)."""
    if a is None or b is None or a not in CENTROIDS or b not in CENTROIDS:
        return None
    (la1, lo1), (la2, lo2) = CENTROIDS[a], CENTROIDS[b]
    p1, p2 = math.radians(la1), math.radians(la2)
    dp, dl = p2 - p1, math.radians(lo2 - lo1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


def too_fast(probe_cc: str | None, hop_cc: str | None, rtt_ms: float | None) -> bool:
    """The hop answered faster than light could reach its claimed country and back."""
    d = distance_km(probe_cc, hop_cc)
    if d is None or rtt_ms is None or pd.isna(rtt_ms):
        return False
    return float(rtt_ms) < max(0.0, d - CENTROID_MARGIN_KM) / KM_PER_MS


def flag_geo(hops: pd.DataFrame) -> pd.DataFrame:
    """``hops`` plus ``suspect_geo`` (speed of light violated) and ``geo_cc`` (the usable
    country: ``hop_cc`` unless suspect)."""
    df = hops.copy()
    df["suspect_geo"] = [
        too_fast(p, h, r)
        for p, h, r in zip(df["probe_cc"], df["hop_cc"], df["rtt_ms"], strict=True)
    ]
    df["geo_cc"] = df["hop_cc"].where(~df["suspect_geo"], None)
    return df


def _dedupe(seq: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for v in seq:
        if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v):
            continue
        if not out or out[-1] != v:
            out.append(v)
    return out


def path_summaries(hops: pd.DataFrame) -> pd.DataFrame:
    """One row per plain trace (proto tcp/icmp/udp) of ``hops``."""
    cols = ["trace_id", "measurement_id", "probe_cc", "dst_ip", "countries", "asns", "reached",
            "dest_cc", "last_hop_ip", "last_hop_cc", "last_hop_ttl", "dest_rtt_ms",
            "suspect_hops"]  # fmt: skip
    if hops.empty:
        return pd.DataFrame(columns=cols)
    df = flag_geo(hops[hops["proto"].isin(T.PROTOS)])
    rows = []
    for tid, g in df.sort_values(["trace_id", "ttl"]).groupby("trace_id", sort=False):
        answered = g[g["reply_kind"] != "none"]
        dest = answered[answered["hop_ip"] == answered["dst_ip"]]
        reached = not dest.empty
        te = answered[answered["reply_kind"] == "time_exceeded"]
        last = te.iloc[-1] if not te.empty else None
        rows.append(
            {
                "trace_id": tid,
                "measurement_id": g["measurement_id"].iloc[0],
                "probe_cc": g["probe_cc"].iloc[0],
                "dst_ip": g["dst_ip"].iloc[0],
                "countries": _dedupe(answered["geo_cc"]),
                "asns": _dedupe(answered["hop_asn"].astype("object")),
                "reached": reached,
                "dest_cc": dest["geo_cc"].iloc[0] if reached else None,
                "last_hop_ip": None if last is None else last["hop_ip"],
                "last_hop_cc": None if last is None else last["geo_cc"],
                "last_hop_ttl": None if last is None else int(last["ttl"]),
                "dest_rtt_ms": dest["rtt_ms"].iloc[0] if reached else None,
                "suspect_hops": int(g["suspect_geo"].sum()),
            }
        )
    return pd.DataFrame(rows, columns=cols)


def _segment_rtt(g: pd.DataFrame, cc: str) -> float | None:
    """RTT added while crossing ``cc``: first hop after the segment minus last hop before."""
    ans = g[(g["reply_kind"] != "none") & g["rtt_ms"].notna()]
    inside = [i for i, c in enumerate(ans["geo_cc"]) if c == cc]
    if not inside or inside[0] == 0 or inside[-1] + 1 >= len(ans):
        return None
    before = ans["rtt_ms"].iloc[inside[0] - 1]
    after = ans["rtt_ms"].iloc[inside[-1] + 1]
    return float(after - before)


def routes_table(hops: pd.DataFrame, measurements: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (affected_cc, transit_cc): how many traces from the affected country cross
    the transit country, towards which server countries, how many of these crossings are
    detours (traces from other countries to the same address avoid that country) and the
    median RTT added crossing it, and how many traces end (blackhole) there."""
    paths = path_summaries(hops)
    if paths.empty:
        return pd.DataFrame(columns=ROUTES_COLUMNS)
    server_cc: dict[str, Any] = {}
    if measurements is not None and not measurements.empty and "server_cc" in measurements:
        server_cc = dict(
            zip(measurements["measurement_id"], measurements["server_cc"], strict=True)
        )
    paths["server_cc"] = [
        server_cc.get(m) or d
        for m, d in zip(paths["measurement_id"], paths["dest_cc"], strict=True)
    ]
    flagged = flag_geo(hops[hops["proto"].isin(T.PROTOS)])
    by_trace = dict(iter(flagged.sort_values("ttl").groupby("trace_id")))
    countries_by_dst: dict[str, list[tuple[str, set[str]]]] = {}
    for _, p in paths.iterrows():
        countries_by_dst.setdefault(p["dst_ip"], []).append((p["probe_cc"], set(p["countries"])))
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    from_cc = paths.groupby("probe_cc")["trace_id"].nunique().to_dict()
    for _, p in paths.iterrows():
        for cc in p["countries"]:
            if cc in (p["probe_cc"], p["server_cc"]):
                continue
            s = stats.setdefault(
                (p["probe_cc"], cc),
                {"traces": set(), "dst": set(), "srv": set(), "det": 0, "rtt": [], "bh": 0},
            )
            s["traces"].add(p["trace_id"])
            s["dst"].add(p["dst_ip"])
            if isinstance(p["server_cc"], str):
                s["srv"].add(p["server_cc"])
            others = [cs for pcc, cs in countries_by_dst[p["dst_ip"]] if pcc != p["probe_cc"]]
            if others and all(cc not in cs for cs in others):
                s["det"] += 1
                added = _segment_rtt(by_trace[p["trace_id"]], cc)
                if added is not None:
                    s["rtt"].append(added)
            if not p["reached"] and p["last_hop_cc"] == cc:
                s["bh"] += 1
    rows = []
    for (acc, tcc), s in sorted(stats.items()):
        rows.append(
            {
                "affected_cc": acc,
                "transit_cc": tcc,
                "traces": len(s["traces"]),
                "traces_from_cc": int(from_cc.get(acc, 0)),
                "share": len(s["traces"]) / max(1, int(from_cc.get(acc, 0))),
                "destinations": len(s["dst"]),
                "server_ccs": ",".join(sorted(s["srv"])),
                "detours": s["det"],
                "median_added_rtt_ms": float(pd.Series(s["rtt"]).median()) if s["rtt"] else None,
                "blackholes": s["bh"],
                "example_trace_ids": sorted(s["traces"])[:5],
            }
        )
    return pd.DataFrame(rows, columns=ROUTES_COLUMNS)


def blackholes(hops: pd.DataFrame) -> pd.DataFrame:
    """Traces that never reached their destination while a trace from another country did:
    the last responding hop is where the path ends."""
    paths = path_summaries(hops)
    reached_from = paths[paths["reached"]].groupby("dst_ip")["probe_cc"].agg(set).to_dict()
    out = paths[
        [
            (not r) and bool(reached_from.get(d, set()) - {cc})
            for r, d, cc in zip(paths["reached"], paths["dst_ip"], paths["probe_cc"], strict=True)
        ]
    ]
    return out[["trace_id", "measurement_id", "probe_cc", "dst_ip", "last_hop_ip",
                "last_hop_cc", "last_hop_ttl"]].reset_index(drop=True)  # fmt: skip


def _obs(g: pd.DataFrame) -> list[T.Obs]:
    return [
        T.Obs(
            int(r.ttl),
            str(r.reply_kind),
            None if pd.isna(r.hop_ip) else r.hop_ip,
            None if pd.isna(r.reply_ttl) else int(r.reply_ttl),
        )
        for r in g.itertuples()
    ]


def _localise_one(g: pd.DataFrame, mechanism: str | None) -> T.Localisation:
    trig = g[g["proto"].isin(TRIGGER_PROTOS)]
    if not trig.empty:
        ctl = trig["trace_id"].astype(str).str.endswith(CONTROL_SUFFIX)
        if ctl.any() and (~ctl).any():
            return T.localise(_obs(trig[~ctl]), _obs(trig[ctl]))
    plain = g[g["proto"].isin(T.PROTOS)]
    if plain.empty:
        return T.Localisation("loc.no_trace", "none")
    first = plain[plain["trace_id"] == plain["trace_id"].iloc[0]]
    obs = _obs(first)
    if mechanism in ("tcp_reset", "tcp_refused") or any(o.kind == "rst" for o in obs):
        loc = T.locate_connect_reset(obs)
        if loc.found or mechanism in ("tcp_reset", "tcp_refused"):
            return loc
    if mechanism in CONTENT_MECHANISMS:
        return T.Localisation("loc.content_block_needs_trigger_probes", "none")
    return T.locate_blackhole(obs)


def localisations(hops: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Where each denied measurement's block begins, from its stored probes.

    One row per denied measurement that has hop rows and a localised block; ``locus`` is
    ``server`` at the endpoint, ``local`` in the vantage's country, ``transit`` elsewhere
    (``hop_cc`` is then the responsible country).  Hops whose geolocation fails the speed of
    light check give no country, so no row (never a guess).
    """
    if hops.empty or verdicts.empty:
        return pd.DataFrame(columns=LOCALISATION_COLUMNS)
    denied = verdicts
    if "status" in verdicts:
        denied = verdicts[verdicts["status"] == "denied"]
    mech = dict(zip(denied["measurement_id"], denied.get("mechanism", pd.Series(
        [None] * len(denied), index=denied.index)), strict=True))  # fmt: skip
    df = flag_geo(hops[hops["measurement_id"].isin(mech.keys())])
    rows = []
    for mid, g in df.groupby("measurement_id"):
        loc = _localise_one(g.sort_values("ttl"), mech.get(mid))
        if not loc.found:
            continue
        probe_cc = g["probe_cc"].iloc[0]
        geo_of = {
            ip: (cc, asn)
            for ip, cc, asn in zip(g["hop_ip"], g["geo_cc"], g["hop_asn"], strict=True)
            if isinstance(ip, str)
        }
        cc, asn = geo_of.get(loc.hop_ip, (None, None)) if loc.hop_ip else (None, None)
        cc = cc if isinstance(cc, str) else None  # NaN, or flagged by the speed of light
        loc = T.Localisation(**{**_fields(loc), "hop_cc": cc, "hop_asn": asn})
        locus = loc.locus(probe_cc)
        if locus == "unknown":
            continue
        rows.append(
            {
                "measurement_id": mid,
                "locus": locus,
                "hop_cc": cc,
                "hop_asn": None if asn is None or pd.isna(asn) else int(asn),
                "rule_id": loc.rule_id,
                "hop_ip": loc.hop_ip,
                "hop_ttl": loc.hop_ttl,
                "block_kind": loc.kind,
            }
        )
    return pd.DataFrame(rows, columns=LOCALISATION_COLUMNS)


def _fields(loc: T.Localisation) -> dict[str, Any]:
    return {f: getattr(loc, f) for f in loc.__dataclass_fields__}


__all__ = [
    "CENTROIDS",
    "LOCALISATION_COLUMNS",
    "ROUTES_COLUMNS",
    "RULES_VERSION",
    "blackholes",
    "distance_km",
    "flag_geo",
    "localisations",
    "path_summaries",
    "routes_table",
    "too_fast",
]
