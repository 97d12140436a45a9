"""Traceroute and block localisation, sans I/O.

Three pure pieces, driven by :mod:`probe.tracing` (which owns the clock and the sockets):

* **probe planning** — :func:`build_probe` makes the TTL-limited probe of a
  :class:`TraceSpec` (TCP SYN, ICMP echo or UDP).  Every probe of a trace keeps the same flow
  identifier (addresses, protocol, ports; ICMP id and checksum), Paris-traceroute style, so
  per-flow load balancers keep the whole trace on one path.  The probe number lives where load
  balancers do not look: the IP id, the TCP sequence number, the ICMP sequence number (with a
  payload word that keeps the ICMP checksum constant).
* **reply matching** — :class:`ProbeIndex` pairs replies with probes using scapy's own
  ``hashret()`` (bucket) and ``answers()`` (pairing), then the probe number quoted in the
  reply to pick the exact probe; :func:`classify_reply` names the reply kind.
* **the trace state machine** — :class:`TraceState` decides which probe a trace wants next:
  every TTL up to ``gaplimit`` beyond the last responding hop is in flight at once, each TTL
  gets at most ``tries`` probes, and the trace stops at the destination or after ``gaplimit``
  silent hops (scamper's rule).  :meth:`TraceState.hops` gives the ``hops`` table rows.

Localisation (:func:`localise`, in the spirit of CenTrace) compares what a triggering exchange
met at each TTL with what the same exchange with a control name met at the same TTL;
:func:`locate_blackhole` and :func:`locate_connect_reset` read a plain trace.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPerror, TCPerror
from scapy.packet import Packet, Raw

from probe.records import Hop

PROTOS: tuple[str, ...] = ("tcp", "icmp", "udp")
REPLY_KINDS: tuple[str, ...] = (
    "time_exceeded",
    "synack",
    "rst",
    "unreachable",
    "echo_reply",
    "none",
)
SEQ_STEP = 16  # TCP sequence numbers of two probes differ by more than answers()' slack (2)
MAX_PROBES_PER_TTL = 4
_EPS = 1e-6  # clock comparisons: a deadline reached is a deadline passed


@dataclass(frozen=True, slots=True)
class TraceSpec:
    """One traceroute: where to, how, and the flow identifier that all its probes share."""

    dst_ip: str
    src_ip: str
    proto: str = "tcp"
    dst_port: int = 443
    flow_id: int = 33434  # TCP/UDP source port, ICMP identifier
    ip_id_base: int = 0x1000
    seq_base: int = 0x10000000
    first_ttl: int = 1
    max_ttl: int = 30
    tries: int = 2
    wait: float = 1.0  # seconds before a probe counts as unanswered
    gaplimit: int = 5
    trace_id: str = ""
    measurement_id: str | None = None

    def __post_init__(self) -> None:
        if self.proto not in PROTOS:
            raise ValueError(f"proto must be one of {PROTOS}, got {self.proto!r}")
        if not 1 <= self.first_ttl <= self.max_ttl <= 255:
            raise ValueError("need 1 <= first_ttl <= max_ttl <= 255")
        if not 1 <= self.tries <= MAX_PROBES_PER_TTL:
            raise ValueError(f"tries must be 1..{MAX_PROBES_PER_TTL}")


def probe_number(ttl: int, attempt: int) -> int:
    return ttl * MAX_PROBES_PER_TTL + attempt


def build_probe(spec: TraceSpec, ttl: int, attempt: int = 0) -> Packet:
    """The probe for ``ttl`` (``attempt`` 0, 1, ...): same flow, different probe number."""
    n = probe_number(ttl, attempt)
    ip = IP(src=spec.src_ip, dst=spec.dst_ip, ttl=ttl, id=(spec.ip_id_base + n) & 0xFFFF)
    if spec.proto == "tcp":
        seq = (spec.seq_base + n * SEQ_STEP) & 0xFFFFFFFF
        l4: Packet = TCP(sport=spec.flow_id, dport=spec.dst_port, flags="S", seq=seq, window=64240)
        return ip / l4
    if spec.proto == "icmp":
        seq = (spec.seq_base + n) & 0xFFFF
        # Paris ICMP: seq + pad == 0xFFFF (ones' complement) keeps the checksum constant.
        pad = (0xFFFF - seq).to_bytes(2, "big")
        return ip / ICMP(type=8, id=spec.flow_id & 0xFFFF, seq=seq) / Raw(pad)
    # UDP: constant ports and payload, so the checksum is constant; the IP id numbers probes.
    return ip / UDP(sport=spec.flow_id, dport=spec.dst_port) / Raw(b"\x00" * 12)


@dataclass(frozen=True, slots=True)
class ProbeRef:
    """What the index knows about a probe it was given."""

    key: Any  # the caller's trace key
    ttl: int
    attempt: int
    packet: Packet


def _quoted_number_matches(reply: Packet, probe: Packet) -> bool:
    """The probe number quoted or acknowledged in ``reply`` is ``probe``'s."""
    if reply.haslayer(IPerror):
        q = reply[IPerror]
        if q.id != probe[IP].id:
            return False
        if q.haslayer(TCPerror) and probe.haslayer(TCP):
            return q[TCPerror].seq == probe[TCP].seq
        return True
    if reply.haslayer(TCP) and probe.haslayer(TCP):
        t = reply[TCP]
        if t.flags.A:
            return (t.ack - 1) & 0xFFFFFFFF == probe[TCP].seq
        return False  # a RST without ACK cannot say which probe it answers
    return True  # ICMP echo: answers() already compared id and seq


class ProbeIndex:
    """Probes in flight, found again from their replies (scapy ``hashret``/``answers``)."""

    def __init__(self) -> None:
        self._buckets: dict[bytes, list[ProbeRef]] = {}

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())

    def add(self, key: Any, ttl: int, attempt: int, packet: Packet) -> None:
        ref = ProbeRef(key, ttl, attempt, packet)
        self._buckets.setdefault(bytes(packet.hashret()), []).append(ref)

    def discard(self, key: Any) -> None:
        """Forget every probe of trace ``key`` (a finished trace)."""
        for h in list(self._buckets):
            kept = [r for r in self._buckets[h] if r.key != key]
            if kept:
                self._buckets[h] = kept
            else:
                del self._buckets[h]

    def match(self, reply: Packet) -> ProbeRef | None:
        """The probe ``reply`` answers, or None (a stray packet)."""
        try:
            bucket = self._buckets.get(bytes(reply.hashret()))
        except Exception:  # a malformed packet scapy cannot hash
            return None
        if not bucket:
            return None
        for ref in bucket:
            try:
                if reply.answers(ref.packet) and _quoted_number_matches(reply, ref.packet):
                    return ref
            except Exception:
                continue
        return None


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply matched to one probe."""

    ttl: int
    attempt: int
    kind: str
    src: str
    reply_ttl: int
    rtt_ms: float
    reached: bool  # the reply comes from the destination (or claims to)
    icmp_code: int | None = None
    tcp_flags: str | None = None


def classify_reply(reply: Packet, spec: TraceSpec) -> tuple[str, bool]:
    """``(reply_kind, reached_destination)`` of a reply to one of ``spec``'s probes."""
    src = reply[IP].src
    if reply.haslayer(ICMP):
        icmp = reply[ICMP]
        if icmp.type == 11:
            return "time_exceeded", False
        if icmp.type == 3:
            return "unreachable", src == spec.dst_ip
        if icmp.type == 0:
            return "echo_reply", src == spec.dst_ip
    if reply.haslayer(TCP):
        t = reply[TCP]
        if t.flags.R:
            return "rst", True
        if t.flags.S and t.flags.A:
            return "synack", True
    return "none", False


def make_reply(ref: ProbeRef, reply: Packet, spec: TraceSpec, sent_at: float, at: float) -> Reply:
    kind, reached = classify_reply(reply, spec)
    ip = reply[IP]
    return Reply(
        ttl=ref.ttl,
        attempt=ref.attempt,
        kind=kind,
        src=ip.src,
        reply_ttl=int(ip.ttl),
        rtt_ms=max(0.0, (at - sent_at) * 1000.0),
        reached=reached,
        icmp_code=int(reply[ICMP].code) if reply.haslayer(ICMP) else None,
        tcp_flags=str(reply[TCP].flags) if reply.haslayer(TCP) else None,
    )


@dataclass
class TraceState:
    """Which probes one trace wants, and what it learnt (no clock: ``now`` is passed in)."""

    spec: TraceSpec
    sent: dict[int, list[float]] = field(default_factory=dict)  # ttl -> send times
    replies: dict[int, Reply] = field(default_factory=dict)  # ttl -> first reply
    dest_ttl: int | None = None
    packets: int = 0

    # -- state ----------------------------------------------------------------------------

    @property
    def highest_reply(self) -> int:
        return max(self.replies, default=self.spec.first_ttl - 1)

    @property
    def upper(self) -> int:
        """The highest TTL the trace may probe now."""
        if self.dest_ttl is not None:
            return self.dest_ttl
        return min(self.spec.max_ttl, self.highest_reply + self.spec.gaplimit)

    def _exhausted(self, ttl: int, now: float) -> bool:
        times = self.sent.get(ttl, ())
        return len(times) >= self.spec.tries and now + _EPS >= times[-1] + self.spec.wait

    def want(self, now: float) -> tuple[int, int] | None:
        """The ``(ttl, attempt)`` of the next probe to send, lowest TTL first, or None."""
        for ttl in range(self.spec.first_ttl, self.upper + 1):
            if ttl in self.replies:
                continue
            times = self.sent.get(ttl)
            if not times:
                return ttl, 0
            if len(times) < self.spec.tries and now + _EPS >= times[-1] + self.spec.wait:
                return ttl, len(times)
        return None

    def next_deadline(self, now: float) -> float | None:
        """When the next probe in flight times out (a retry or the end may follow)."""
        best: float | None = None
        for ttl in range(self.spec.first_ttl, self.upper + 1):
            if ttl in self.replies:
                continue
            times = self.sent.get(ttl)
            t = times[-1] + self.spec.wait if times else None
            if t is not None and t > now + _EPS:
                best = t if best is None else min(best, t)
        return best

    def done(self, now: float) -> bool:
        if self.want(now) is not None:
            return False
        for ttl in range(self.spec.first_ttl, self.upper + 1):
            if ttl not in self.replies and not self._exhausted(ttl, now):
                return False
        return True

    # -- events ---------------------------------------------------------------------------

    def on_sent(self, ttl: int, attempt: int, at: float) -> None:
        self.sent.setdefault(ttl, []).append(at)
        self.packets += 1

    def sent_time(self, ttl: int, attempt: int) -> float | None:
        times = self.sent.get(ttl, [])
        return times[attempt] if attempt < len(times) else None

    def on_reply(self, reply: Reply) -> None:
        if reply.ttl in self.replies:
            return  # keep the first reply of a TTL
        if self.dest_ttl is not None and reply.ttl > self.dest_ttl:
            return  # a probe sent beyond the destination
        self.replies[reply.ttl] = reply
        if reply.reached and (self.dest_ttl is None or reply.ttl < self.dest_ttl):
            self.dest_ttl = reply.ttl
            for ttl in [t for t in self.replies if t > reply.ttl]:
                del self.replies[ttl]

    # -- results --------------------------------------------------------------------------

    @property
    def reached(self) -> bool:
        return self.dest_ttl is not None

    def last_ttl(self) -> int:
        if self.dest_ttl is not None:
            return self.dest_ttl
        probed = [t for t in self.sent if t <= self.upper]
        return max(probed, default=self.spec.first_ttl - 1)

    def hops(
        self,
        *,
        started_at: datetime,
        vantage_id: str | None,
        probe_cc: str | None,
        geo: Callable[[str], Any] | None = None,
        campaign: str = "",
        run_id: str = "",
    ) -> list[Hop]:
        """One :class:`Hop` per TTL from the first to the destination (or the last probed)."""
        s = self.spec
        rows = []
        for ttl in range(s.first_ttl, self.last_ttl() + 1):
            r = self.replies.get(ttl)
            info = geo(r.src) if (geo is not None and r is not None) else None
            rows.append(
                Hop(
                    trace_id=s.trace_id,
                    vantage_id=vantage_id,
                    probe_cc=probe_cc,
                    started_at=started_at,
                    dst_ip=s.dst_ip,
                    dst_port=s.dst_port if s.proto != "icmp" else None,
                    proto=s.proto,
                    ttl=ttl,
                    measurement_id=s.measurement_id,
                    campaign=campaign,
                    run_id=run_id,
                    hop_ip=r.src if r else None,
                    rtt_ms=round(r.rtt_ms, 3) if r else None,
                    reply_kind=r.kind if r else "none",
                    reply_ttl=r.reply_ttl if r else None,
                    hop_cc=getattr(info, "cc", None),
                    hop_asn=getattr(info, "asn", None),
                    extra={"attempt": r.attempt, "tries": len(self.sent.get(ttl, []))}
                    if r
                    else {"tries": len(self.sent.get(ttl, []))},
                )
            )
        return rows


# --------------------------------------------------------------------------------------------
# Localisation
# --------------------------------------------------------------------------------------------

INITIAL_TTLS = (32, 64, 128, 255)
BLOCK_KINDS = ("rst", "fin", "data")  # an answer where the control met a router or the server


def hops_away(reply_ttl: int | None) -> int | None:
    """How many hops away a packet was sent, from its arriving TTL (initial TTL guessed)."""
    if reply_ttl is None or not 0 < reply_ttl <= 255:
        return None
    initial = next(i for i in INITIAL_TTLS if i >= reply_ttl)
    return initial - reply_ttl + 1


@dataclass(frozen=True, slots=True)
class Obs:
    """What one TTL-limited exchange met: a router (``time_exceeded``), an answer or nothing.

    ``kind``: ``time_exceeded`` | ``synack`` | ``rst`` | ``fin`` | ``data`` | ``unreachable``
    | ``echo_reply`` | ``none``.  ``ip`` is the replying address (for time_exceeded: the hop).
    """

    ttl: int
    kind: str
    ip: str | None = None
    reply_ttl: int | None = None
    rtt_ms: float | None = None


def client_hello(name: str) -> bytes:
    """The bytes of a TLS ClientHello with SNI ``name`` (made in memory, nothing is sent)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def http_request(name: str, path: str = "/") -> bytes:
    """A plain HTTP/1.1 GET with ``Host: name``."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: Mozilla/5.0\r\n"
        "Accept: */*\r\nConnection: close\r\n\r\n"
    ).encode("ascii")


def obs_hops(
    obs: Iterable[Obs], *, trace_id: str, proto: str, dst_ip: str, dst_port: int, **common: Any
) -> list[Hop]:
    """``hops`` rows of a trigger exchange (``proto`` ``tls``/``http``; kinds may be
    ``data``/``fin`` besides the trace kinds)."""
    return [
        Hop(
            trace_id=trace_id,
            dst_ip=dst_ip,
            dst_port=dst_port,
            proto=proto,
            ttl=o.ttl,
            hop_ip=o.ip,
            rtt_ms=None if o.rtt_ms is None else round(o.rtt_ms, 3),
            reply_kind=o.kind,
            reply_ttl=o.reply_ttl,
            **common,
        )
        for o in obs
    ]


@dataclass(frozen=True, slots=True)
class Localisation:
    """Where a block begins: the hop (TTL position, address) or the endpoint."""

    rule_id: str
    kind: str  # rst | fin | data | silence | none
    at_endpoint: bool = False
    trigger_ttl: int | None = None  # probe TTL at which the block was first seen
    hop_ttl: int | None = None  # position of the blocking hop
    hop_ip: str | None = None
    endpoint_ttl: int | None = None
    hop_cc: str | None = None
    hop_asn: int | None = None

    @property
    def found(self) -> bool:
        return self.kind != "none"

    def locus(self, probe_cc: str | None) -> str:
        """SPEC §5 locus: ``server`` at the endpoint, ``local`` inside the vantage's country,
        ``transit`` in another country, ``unknown`` when the hop has no country."""
        if not self.found:
            return "unknown"
        if self.at_endpoint:
            return "server"
        if self.hop_cc is None or probe_cc in (None, "ZZ"):
            return "unknown"
        return "local" if self.hop_cc == probe_cc else "transit"

    def with_geo(self, geo: Callable[[str], Any] | None) -> Localisation:
        if geo is None or self.hop_ip is None:
            return self
        info = geo(self.hop_ip)
        return replace(self, hop_cc=getattr(info, "cc", None), hop_asn=getattr(info, "asn", None))


def _by_ttl(obs: Iterable[Obs]) -> dict[int, Obs]:
    """First informative observation per TTL (an answer beats silence)."""
    out: dict[int, Obs] = {}
    for o in sorted(obs, key=lambda o: o.ttl):
        cur = out.get(o.ttl)
        if cur is None or (cur.kind == "none" and o.kind != "none"):
            out[o.ttl] = o
    return out


def localise(test: Sequence[Obs], control: Sequence[Obs]) -> Localisation:
    """Find where the test exchange's fate departs from the control's (CenTrace).

    ``control`` is the same exchange with an innocuous name, sent to the same server at the
    same TTLs.  The endpoint is the lowest TTL at which the control got an answer.  An answer
    to the test (RST, FIN, data) at a TTL where the control met a router is injected by a
    device at that position, or by the previous router after its own TTL check: the arriving
    TTL of the injected packet decides between the two.  Silence that starts at a TTL where the
    control still met a router, and lasts, starts after the test's last responding hop.
    """
    t, c = _by_ttl(test), _by_ttl(control)
    answers = [o.ttl for o in c.values() if o.kind not in ("time_exceeded", "none")]
    endpoint = min(answers) if answers else None
    ttls = sorted(set(t) | set(c))
    for ttl in ttls:
        o = t.get(ttl)
        if o is None or o.kind not in BLOCK_KINDS:
            continue
        co = c.get(ttl)
        if endpoint is None and (co is None or co.kind != "time_exceeded"):
            break  # nothing shows that this TTL stops short of the server
        if endpoint is not None and ttl >= endpoint and co is not None and co.kind == o.kind:
            continue  # the server answers both names alike at this TTL
        dist = hops_away(o.reply_ttl)
        hop_ttl = ttl - 1 if dist is not None and dist == ttl - 1 and ttl > 1 else ttl
        at_end = endpoint is not None and hop_ttl >= endpoint
        return Localisation(
            rule_id="loc.injected_" + ("before_ttl_check" if hop_ttl < ttl else "at_ttl"),
            kind=o.kind,
            at_endpoint=at_end,
            trigger_ttl=ttl,
            hop_ttl=hop_ttl,
            hop_ip=_hop_ip(hop_ttl, c, t, endpoint or 256),
            endpoint_ttl=endpoint,
        )
    if endpoint is None:
        return Localisation("loc.no_control", "none")
    # silence: the first TTL from which the test never hears anything again
    start = None
    for ttl in sorted(ttls, reverse=True):
        o = t.get(ttl)
        if o is not None and o.kind != "none":
            break
        if ttl in t:
            start = ttl
    if start is None or start > endpoint:
        return Localisation("loc.no_difference", "none", endpoint_ttl=endpoint)
    co = c.get(start)
    if co is None or co.kind == "none":
        return Localisation("loc.control_silent_too", "none", endpoint_ttl=endpoint)
    at_end = start >= endpoint
    hop_ttl = endpoint if at_end else start - 1
    return Localisation(
        rule_id="loc.silence_at_endpoint" if at_end else "loc.silence_after_last_hop",
        kind="silence",
        at_endpoint=at_end,
        trigger_ttl=start,
        hop_ttl=hop_ttl if hop_ttl >= 1 else None,
        hop_ip=_hop_ip(hop_ttl, t, c, endpoint) if hop_ttl >= 1 else None,
        endpoint_ttl=endpoint,
    )


def _hop_ip(ttl: int, first: dict[int, Obs], second: dict[int, Obs], endpoint: int) -> str | None:
    if ttl >= endpoint:
        for d in (second, first):
            o = d.get(endpoint)
            if o is not None and o.ip:
                return o.ip
        return None
    for d in (first, second):
        o = d.get(ttl)
        if o is not None and o.kind == "time_exceeded" and o.ip:
            return o.ip
    return None


def obs_from_hops(hops: Iterable[Hop]) -> list[Obs]:
    """Observations of a stored trace (``hops`` rows), for :func:`localise`."""
    return [Obs(h.ttl, h.reply_kind, h.hop_ip, h.reply_ttl, h.rtt_ms) for h in hops]


def locate_blackhole(obs: Sequence[Obs]) -> Localisation:
    """A trace that never reached its destination ends after its last responding hop.

    Only meaningful when controls reach the destination (the caller checks that).
    """
    by = _by_ttl(obs)
    if any(o.kind not in ("time_exceeded", "none") for o in by.values()):
        return Localisation("loc.destination_reached", "none")
    last = [o for o in by.values() if o.kind == "time_exceeded"]
    if not last:
        return Localisation("loc.no_responding_hop", "none")
    hop = max(last, key=lambda o: o.ttl)
    return Localisation(
        "loc.blackhole_last_hop", "silence", trigger_ttl=hop.ttl + 1, hop_ttl=hop.ttl, hop_ip=hop.ip
    )


def locate_connect_reset(obs: Sequence[Obs]) -> Localisation:
    """A TCP SYN trace answered by a RST: injected before the server when the RST's own TTL
    says it was sent fewer hops away than the TTL that drew it."""
    by = _by_ttl(obs)
    rst = [o for o in by.values() if o.kind == "rst"]
    if not rst:
        return Localisation("loc.no_reset", "none")
    o = min(rst, key=lambda o: o.ttl)
    dist = hops_away(o.reply_ttl)
    if dist is None or dist >= o.ttl:
        return Localisation(
            "loc.reset_from_endpoint", "rst", True, o.ttl, o.ttl, o.ip, endpoint_ttl=o.ttl
        )
    te = by.get(dist)
    ip = te.ip if te is not None and te.kind == "time_exceeded" else None
    return Localisation("loc.reset_injected", "rst", False, o.ttl, dist, ip)


__all__ = [
    "PROTOS",
    "REPLY_KINDS",
    "Localisation",
    "Obs",
    "ProbeIndex",
    "ProbeRef",
    "Reply",
    "TraceSpec",
    "TraceState",
    "build_probe",
    "classify_reply",
    "client_hello",
    "hops_away",
    "http_request",
    "localise",
    "locate_blackhole",
    "locate_connect_reset",
    "make_reply",
    "obs_from_hops",
    "obs_hops",
    "probe_number",
]
