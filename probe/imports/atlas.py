"""RIPE Atlas traceroute results → ``hops`` rows (pure: no I/O).

Results are parsed with RIPE NCC's own parser, ``ripe.atlas.sagan`` (``TracerouteResult``), so
every probe firmware version it knows is read the same way; malformed results are flagged
(sagan's ``is_malformed``) and counted, never fatal.

One row per TTL, as the ``hops`` table wants (SPEC §4): the address that answered most of
the TTL's packets (Atlas sends three), its median RTT and reply TTL; ``*`` hops become rows
with a null ``hop_ip`` and ``reply_kind`` ``none``.  ICMP extensions are ignored.  The Paris
traceroute id is part of ``trace_id``.  The probe's own addresses (``from``, ``src_addr``) are
never stored; the vantage is ``atlas-<probe id>``.

``reply_kind``: ``time_exceeded`` for routers, ``unreachable`` for ICMP errors (``err``) and
for the destination's port-unreachable answer to UDP probes, ``synack`` / ``rst`` for TCP
probes (``flags``), and ``echo_reply`` for the destination's answer to ICMP probes.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ripe.atlas.sagan import TracerouteResult
from ripe.atlas.sagan.base import ParsingDict

from probe.records import Hop

__all__ = [
    "AtlasConversion",
    "ProbeInfo",
    "convert",
    "probes_from_json",
    "trace_id",
]

TRACEROUTE = "traceroute"
ECHO_REPLY = "echo_reply"


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """What the project needs of an Atlas probe's metadata."""

    probe_id: int
    cc: str | None
    asn: int | None = None


@dataclass(frozen=True, slots=True)
class AtlasConversion:
    """What one Atlas result became."""

    kind: str | None
    trace_id: str | None = None
    hops: tuple[Hop, ...] = ()
    skipped: str | None = None
    """The result type when it is not a traceroute."""
    refused: str | None = None
    problems: tuple[str, ...] = ()
    parser_hops: int = 0
    """``TracerouteResult.total_hops`` as the parser reports it."""

    @property
    def malformed(self) -> bool:
        return bool(self.problems) or self.refused is not None


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def probes_from_json(data: object) -> dict[int, ProbeInfo]:
    """Probe metadata in any of Atlas' shapes: an API page ``{"results": [...]}``, a list of
    probes, a measurement dump ``{"probes": {"results": [...]}}`` or one probe object."""
    out: dict[int, ProbeInfo] = {}
    items: Iterable[object]
    if isinstance(data, dict) and "probes" in data:
        data = data["probes"]
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        items = data["results"]
    elif isinstance(data, list):
        items = data
    elif isinstance(data, dict):
        items = [data]
    else:
        items = []
    for p in items:
        if not isinstance(p, dict):
            continue
        pid = _int(p.get("id")) or _int(p.get("prb_id"))
        if pid is None:
            continue
        cc = p.get("country_code")
        cc = cc.upper() if isinstance(cc, str) and len(cc) == 2 and cc.isalpha() else None
        out[pid] = ProbeInfo(pid, cc, _int(p.get("asn_v4")) or _int(p.get("asn_v6")))
    return out


def trace_id(msm_id: object, prb_id: object, timestamp: object, paris_id: object) -> str:
    base = f"atlas-{msm_id}-{prb_id}-{timestamp}"
    return base + (f"-p{paris_id}" if _int(paris_id) is not None else "")


@dataclass
class _HopSummary:
    ip: str | None = None
    rtt: float | None = None
    reply_ttl: int | None = None
    kind: str = "none"
    extra: dict[str, Any] = field(default_factory=dict)


def _valid_ip(v: object) -> str | None:
    if not isinstance(v, str) or not v:
        return None
    try:
        return str(ipaddress.ip_address(v))
    except ValueError:
        return None


def _summarise(hop: Any, dst: str | None, proto: str) -> _HopSummary:
    by_ip: Counter[str] = Counter()
    packets: list[Any] = list(hop.packets)
    for p in packets:
        ip = _valid_ip(p.origin)
        if ip is not None:
            by_ip[ip] += 1
    if not by_ip:
        return _HopSummary()
    ip = by_ip.most_common(1)[0][0]  # ties: first seen (Counter keeps insertion order)
    mine = [p for p in packets if _valid_ip(p.origin) == ip]
    rtts = [p.rtt for p in mine if isinstance(p.rtt, float | int)]
    raw0: Mapping[str, Any] = mine[0].raw_data if isinstance(mine[0].raw_data, dict) else {}
    flags = str(raw0.get("flags") or "")
    if any(p.is_error for p in mine):
        kind = "unreachable"
    elif "R" in flags:
        kind = "rst"
    elif "S" in flags and "A" in flags:
        kind = "synack"
    elif dst is not None and ip == dst:
        kind = ECHO_REPLY if proto == "icmp" else "unreachable"
    else:
        kind = "time_exceeded"
    extra = {"responders": dict(by_ip)} if len(by_ip) > 1 else {}
    return _HopSummary(
        ip=ip,
        rtt=round(statistics.median(rtts), 3) if rtts else None,
        reply_ttl=mine[0].ttl if isinstance(mine[0].ttl, int) else None,
        kind=kind,
        extra=extra,
    )


def convert(
    raw: object,
    *,
    campaign: str,
    run_id: str,
    probes: Mapping[int, ProbeInfo] | None = None,
    probe_cc: str | None = None,
) -> AtlasConversion:
    """Map one Atlas result to hop rows; never raises.

    The probe's country comes from ``probes`` (metadata), else ``probe_cc``, else ``ZZ``.
    """
    if not isinstance(raw, dict):
        return AtlasConversion(None, refused=f"not a JSON object ({type(raw).__name__})")
    kind = raw.get("type")
    kind = kind if isinstance(kind, str) else None
    if kind is not None and kind != TRACEROUTE:
        return AtlasConversion(kind, skipped=kind)
    if kind is None and not isinstance(raw.get("result"), list):
        return AtlasConversion(None, refused="not an Atlas result (no type, no result list)")
    try:
        return _convert(raw, campaign, run_id, probes or {}, probe_cc)
    except Exception as exc:  # the parser on hostile input: flag it, go on
        return AtlasConversion(TRACEROUTE, refused=f"parser error {type(exc).__name__}: {exc}")


def _convert(
    raw: dict[str, Any],
    campaign: str,
    run_id: str,
    probes: Mapping[int, ProbeInfo],
    probe_cc: str | None,
) -> AtlasConversion:
    r = TracerouteResult(
        raw, on_error=ParsingDict.ACTION_IGNORE, on_malformation=ParsingDict.ACTION_IGNORE
    )
    problems: list[str] = []
    if r.is_malformed:
        problems.append("flagged malformed by the parser")
    dst = _valid_ip(r.destination_address)
    if dst is None:
        errors = [h.error_message for h in r.hops if getattr(h, "is_error", False)]
        why = f"no destination address ({errors[0][:60]})" if errors else "no destination address"
        return AtlasConversion(
            TRACEROUTE, refused=why, problems=tuple(problems), parser_hops=r.total_hops
        )
    if not isinstance(r.created, datetime):
        return AtlasConversion(TRACEROUTE, refused="no timestamp", parser_hops=r.total_hops)
    started = r.created.astimezone(UTC)
    info = probes.get(r.probe_id) if r.probe_id is not None else None
    cc = (info.cc if info else None) or probe_cc or "ZZ"
    tid = trace_id(r.measurement_id, r.probe_id, raw.get("timestamp"), r.paris_id)
    proto = (r.protocol or "").lower() or "udp"
    hops: list[Hop] = []
    for hop in r.hops:
        ttl = hop.index
        if not isinstance(ttl, int):
            problems.append("hop without a number")
            continue
        s = _summarise(hop, dst, proto)
        extra = dict(s.extra)
        if hop.is_error:
            extra["error"] = hop.error_message
        hops.append(
            Hop(
                trace_id=tid,
                vantage_id=f"atlas-{r.probe_id}",
                probe_cc=cc,
                started_at=started,
                dst_ip=dst,
                dst_port=None,
                proto=proto,
                ttl=ttl,
                campaign=campaign,
                run_id=run_id,
                hop_ip=s.ip,
                rtt_ms=s.rtt,
                reply_kind=s.kind,
                reply_ttl=s.reply_ttl,
                extra=extra,
            )
        )
    return AtlasConversion(
        TRACEROUTE,
        trace_id=tid,
        hops=tuple(hops),
        problems=tuple(problems),
        parser_hops=r.total_hops,
    )
