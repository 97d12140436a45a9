"""Traceroutes and block localisation: the I/O around :mod:`probe.steps.trace`.

* :func:`trace_many` runs many traces at once within a packets-per-second budget: the next
  probe sent is always the lowest TTL wanted by any trace, so the budget goes to the near
  hops of every trace first, and a trace whose destination has answered stops asking.
* :func:`run_trace` is ``res64 trace``: resolve names, trace, write the ``hops`` table.
* :func:`trace_for_measurement` and :func:`localise_measurement` are what the runner calls
  after a measurement (``--trace failed|all``); without raw-socket rights they return nothing
  and the measurement goes on.
* :func:`localise_exchange` repeats a triggering exchange (TLS ClientHello or HTTP request
  over an established connection) with increasing TTL, for the tested name and for a control
  name in the same position, and hands the observations to :func:`probe.steps.trace.localise`.

The transport is injected (:class:`probe.transports.raw.PacketTransport`): the real raw one,
or the in-memory :class:`~probe.transports.raw.SimulatedNetwork`.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import random
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio
from scapy.layers.inet import ICMP, IP, IPerror, TCPerror

from probe.config import Vantage, is_loopback
from probe.errors import PrivilegeError
from probe.geo import GeoResolver
from probe.ids import new_id, new_run_id
from probe.records import Hop, Measurement
from probe.steps import trace as T
from probe.transports.raw import (
    PacketTransport,
    RawTransport,
    has_raw_privileges,
    ttl_watch,
)

DEFAULT_PPS = 200
DEFAULT_CONTROL_NAME = "www.example.com"
CONTENT_STEPS = ("tls", "http")


# --------------------------------------------------------------------------------------------
# Many traces within a packet budget
# --------------------------------------------------------------------------------------------


async def trace_many(
    specs: Sequence[T.TraceSpec],
    transport: PacketTransport,
    *,
    pps: int = DEFAULT_PPS,
    burst: int = 4,
) -> list[T.TraceState]:
    """Run every trace of ``specs`` concurrently; at most ``pps`` probes per second overall."""
    if pps < 1:
        raise ValueError("pps must be >= 1")
    states = [T.TraceState(s) for s in specs]
    index = T.ProbeIndex()
    active = set(range(len(states)))
    wake = trio.Event()
    interval = 1.0 / pps

    async def receive() -> None:
        while True:
            pkt, at = await transport.recv()
            ref = index.match(pkt)
            if ref is None:
                continue
            st = states[ref.key]
            sent_at = st.sent_time(ref.ttl, ref.attempt)
            if sent_at is None:
                continue
            st.on_reply(T.make_reply(ref, pkt, st.spec, sent_at, at))
            wake.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        next_slot = trio.current_time()
        while active:
            wake = trio.Event()
            now = trio.current_time()
            best: tuple[int, int, int] | None = None
            for i in list(active):
                st = states[i]
                w = st.want(now)
                if w is None:
                    if st.done(now):
                        active.discard(i)
                    continue
                if best is None or (w[0], i) < (best[0], best[2]):
                    best = (w[0], w[1], i)
            if best is None:
                deadlines = [d for i in active if (d := states[i].next_deadline(now)) is not None]
                if not active:
                    break
                with trio.move_on_at(min(deadlines, default=now + 0.05)):
                    await wake.wait()
                continue
            if next_slot > now:
                await trio.sleep_until(next_slot)
                continue  # replies may have arrived meanwhile: choose again
            ttl, attempt, i = best
            st = states[i]
            pkt = T.build_probe(st.spec, ttl, attempt)
            index.add(i, ttl, attempt, pkt)
            st.on_sent(ttl, attempt, trio.current_time())  # before a reply can be read
            await transport.send(pkt)
            next_slot = max(next_slot + interval, now - burst * interval)
        nursery.cancel_scope.cancel()
    return states


def make_specs(
    targets: Sequence[tuple[str, int]],
    *,
    proto: str,
    source_for: Callable[[str], str],
    rng: random.Random | None = None,
    measurement_id: str | None = None,
    **opts: Any,
) -> list[T.TraceSpec]:
    """One :class:`TraceSpec` per ``(dst_ip, dst_port)`` with distinct random flow ids."""
    rng = rng or random.Random()
    flows = rng.sample(range(33434, 65000), len(targets))
    return [
        T.TraceSpec(
            dst_ip=ip,
            src_ip=source_for(ip),
            proto=proto,
            dst_port=port,
            flow_id=flow,
            ip_id_base=rng.randrange(0x10000),
            seq_base=rng.randrange(0x100000000),
            trace_id=new_id(),
            measurement_id=measurement_id,
            **opts,
        )
        for (ip, port), flow in zip(targets, flows, strict=True)
    ]


# --------------------------------------------------------------------------------------------
# res64 trace
# --------------------------------------------------------------------------------------------


@dataclass
class TraceSummary:
    """What ``res64 trace`` did."""

    run_id: str
    traces: int = 0
    reached: int = 0
    hops: int = 0
    packets_sent: int = 0
    elapsed_s: float = 0.0
    files: list[str] = field(default_factory=list)
    unresolved: dict[str, str] = field(default_factory=dict)  # name -> failure
    refused: list[str] = field(default_factory=list)  # loopback-only mode
    trace_ids: dict[str, str] = field(default_factory=dict)  # dst_ip -> trace_id


async def _resolve(
    dsts: Sequence[str], resolver: str | None, summary: TraceSummary, source: str | None
) -> list[str]:
    from probe.steps import dns as dns_step

    ips: list[str] = []
    spec = dns_step.ResolverSpec.parse(resolver) if resolver else dns_step.system_resolver()
    for d in dsts:
        try:
            ipaddress.ip_address(d)
            ips.append(d)
            continue
        except ValueError:
            pass
        if spec is None:
            summary.unresolved[d] = "unknown_failure: no_resolver_configured"
            continue
        res = await dns_step.lookup(d, spec, timeout=5.0, source=source)
        v4 = [a for a in res.answers if ipaddress.ip_address(a).version == 4]
        if v4:
            ips.append(v4[0])
        else:
            summary.unresolved[d] = res.failure or "dns_no_answer"
    return list(dict.fromkeys(ips))


async def run_trace(
    dsts: list[str],
    *,
    out: Path,
    port: int = 443,
    proto: str = "tcp",
    pps: int = DEFAULT_PPS,
    vantage: Vantage,
    geo: GeoResolver,
    campaign: str = "adhoc",
    resolver: str | None = None,
    loopback_only: bool = False,
    max_ttl: int = 30,
    wait: float = 1.0,
    tries: int = 2,
    transport: PacketTransport | None = None,
    run_id: str | None = None,
) -> TraceSummary:
    """``res64 trace``: trace every destination (IPv4), write the ``hops`` table under ``out``.

    Raises :class:`~probe.errors.PrivilegeError` without raw-socket rights (unless a
    ``transport`` is given).
    """
    from probe.store import DatasetWriter, Manifest

    if transport is None:
        ok, why = has_raw_privileges()
        if not ok:
            raise PrivilegeError(why)
    started = datetime.now(UTC)
    summary = TraceSummary(run_id=run_id or new_run_id(started))
    ips = await _resolve(dsts, resolver, summary, vantage.source_address)
    if loopback_only:
        summary.refused = [ip for ip in ips if not is_loopback(ip)]
        ips = [ip for ip in ips if is_loopback(ip)]
    t0 = trio.current_time()
    hops: list[Hop] = []
    async with contextlib.AsyncExitStack() as stack:
        tr = transport or await stack.enter_async_context(RawTransport(vantage.source_address))
        specs = make_specs(
            [(ip, port) for ip in ips],
            proto=proto,
            source_for=tr.source_for,
            max_ttl=max_ttl,
            wait=wait,
            tries=tries,
        )
        states = await trace_many(specs, tr, pps=pps)
    for st in states:
        summary.trace_ids[st.spec.dst_ip] = st.spec.trace_id
        summary.reached += st.reached
        summary.packets_sent += st.packets
        hops += st.hops(
            started_at=started,
            vantage_id=vantage.vantage_id,
            probe_cc=vantage.probe_cc,
            geo=geo.lookup,
            campaign=campaign,
            run_id=summary.run_id,
        )
    summary.traces, summary.hops = len(states), len(hops)
    summary.elapsed_s = trio.current_time() - t0
    listed = "\n".join(sorted(dsts)).encode()
    manifest = Manifest(
        run_id=summary.run_id,
        campaign=campaign,
        started_at=started.isoformat(),
        config={"command": "trace", "port": port, "proto": proto, "pps": pps,
                "max_ttl": max_ttl, "wait": wait, "tries": tries,
                "probe_cc": vantage.probe_cc, "geo": geo.describe()},
        targets={"sha256": hashlib.sha256(listed).hexdigest(), "count": len(dsts)},
    )  # fmt: skip
    writer = DatasetWriter(out, "hops", campaign, summary.run_id, manifest)
    if hops:
        rows = [h.as_row() for h in hops]
        entries = await trio.to_thread.run_sync(writer.write_rows, rows)
        summary.files = [e.path for e in entries]
    manifest.status = "complete"
    manifest.finished_at = datetime.now(UTC).isoformat()
    manifest.counts = {
        "traces": summary.traces,
        "reached": summary.reached,
        "hops": summary.hops,
        "packets_sent": summary.packets_sent,
        "unresolved": len(summary.unresolved),
        "refused": len(summary.refused),
    }
    await trio.to_thread.run_sync(manifest.save, out)
    return summary


# --------------------------------------------------------------------------------------------
# After a measurement
# --------------------------------------------------------------------------------------------


def _measured_address(m: Measurement) -> tuple[str, int] | None:
    ip = m.server_ip or next(
        (a for a in m.dns_answers if ipaddress.ip_address(a).version == 4), None
    )
    if ip is None or ipaddress.ip_address(ip).version != 4:
        return None
    scheme = urlsplit(m.url).scheme
    return ip, m.server_port or (80 if scheme == "http" else 443)


async def trace_for_measurement(
    m: Measurement,
    *,
    geo: GeoResolver | None = None,
    vantage: Vantage | None = None,
    proto: str = "tcp",
    pps: int = DEFAULT_PPS,
    transport: PacketTransport | None = None,
    loopback_only: bool = False,
    max_ttl: int = 30,
    wait: float = 1.0,
) -> list[Hop]:
    """Trace the address ``m`` measured; ``[]`` without rights or without an IPv4 address."""
    dst = _measured_address(m)
    if dst is None or (loopback_only and not is_loopback(dst[0])):
        return []
    if transport is None and not has_raw_privileges()[0]:
        return []
    started = datetime.now(UTC)
    async with contextlib.AsyncExitStack() as stack:
        src = vantage.source_address if vantage else None
        tr = transport or await stack.enter_async_context(RawTransport(src))
        specs = make_specs(
            [dst],
            proto=proto,
            source_for=tr.source_for,
            measurement_id=m.measurement_id,
            max_ttl=max_ttl,
            wait=wait,
        )
        (state,) = await trace_many(specs, tr, pps=pps)
    return state.hops(
        started_at=started,
        vantage_id=m.vantage_id,
        probe_cc=m.probe_cc,
        geo=geo.lookup if geo else None,
        campaign=m.campaign,
        run_id=m.run_id,
    )


class _TimeExceeded:
    """Routes ICMP time-exceeded messages quoting our TCP flows to the probe waiting on them."""

    def __init__(self, transport: PacketTransport, dst_ip: str) -> None:
        self.transport = transport
        self.dst_ip = dst_ip
        self.waiting: dict[int, tuple[trio.Event, list[T.Obs]]] = {}

    def expect(self, local_port: int, ttl: int) -> tuple[trio.Event, list[T.Obs]]:
        slot: tuple[trio.Event, list[T.Obs]] = (trio.Event(), [])
        self.waiting[local_port] = slot
        return slot

    async def run(self, sent_at: dict[int, float]) -> None:
        while True:
            pkt, at = await self.transport.recv()
            if not (pkt.haslayer(ICMP) and pkt[ICMP].type == 11 and pkt.haslayer(TCPerror)):
                continue
            q = pkt[IPerror]
            if q.dst != self.dst_ip:
                continue
            slot = self.waiting.pop(int(pkt[TCPerror].sport), None)
            if slot is None:
                continue
            port = int(pkt[TCPerror].sport)
            rtt = (at - sent_at[port]) * 1000 if port in sent_at else None
            slot[1].append(T.Obs(0, "time_exceeded", pkt[IP].src, int(pkt[IP].ttl), rtt))
            slot[0].set()


class _ConnectFailed(Exception):
    pass


async def _trigger_once(
    dst_ip: str,
    port: int,
    payload: bytes,
    ttl: int,
    te: _TimeExceeded,
    sent_at: dict[int, float],
    *,
    wait: float,
    source: str | None,
    connect_timeout: float,
) -> T.Obs:
    """One connection: handshake at full TTL, then ``payload`` sent with IP TTL ``ttl``."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if source:
            await sock.bind((source, 0))
        try:
            with trio.fail_after(connect_timeout):
                await sock.connect((dst_ip, port))
        except (OSError, trio.TooSlowError) as exc:
            raise _ConnectFailed(str(exc)) from exc
        lport = int(sock.getsockname()[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        event, got = te.expect(lport, ttl)
        outcome: list[str] = []
        async with ttl_watch(dst_ip, port, local_port=lport) as w:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
            t0 = trio.current_time()
            sent_at[lport] = t0
            await sock.send(payload)

            async def read(cancel: trio.CancelScope) -> None:
                try:
                    data = await sock.recv(4096)
                    outcome.append("data" if data else "fin")
                except OSError:
                    outcome.append("rst")
                cancel.cancel()

            async def on_te(cancel: trio.CancelScope) -> None:
                await event.wait()
                # an injector before this hop has answered by now; allow a short grace
                await trio.sleep(min(wait, max(0.05, 2 * (trio.current_time() - t0))))
                cancel.cancel()

            with trio.move_on_after(wait):
                async with trio.open_nursery() as n:
                    n.start_soon(read, n.cancel_scope)
                    n.start_soon(on_te, n.cancel_scope)
            rtt = (trio.current_time() - t0) * 1000
        te.waiting.pop(lport, None)
        if outcome:
            kind = outcome[0]
            rttl = {"rst": w.rst_ttl, "fin": w.fin_ttl}.get(kind)
            if kind == "data":
                rttl = w.data_ttls[0] if w.data_ttls else None
            return T.Obs(ttl, kind, dst_ip, rttl, rtt)
        if got:
            o = got[0]
            return T.Obs(ttl, "time_exceeded", o.ip, o.reply_ttl, o.rtt_ms)
        return T.Obs(ttl, "none")
    finally:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 64)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


async def localise_exchange(
    dst_ip: str,
    port: int,
    *,
    name: str,
    control_name: str = DEFAULT_CONTROL_NAME,
    kind: str = "tls",
    transport: PacketTransport | None = None,
    max_ttl: int = 30,
    tries: int = 2,
    wait: float = 1.0,
    pause: float = 0.2,
    gaplimit: int = 5,
    source: str | None = None,
    connect_timeout: float = 5.0,
) -> tuple[list[T.Obs], list[T.Obs], T.Localisation]:
    """Send the triggering exchange (``kind`` ``tls``: ClientHello; ``http``: GET) for ``name``
    and for ``control_name`` with TTL 1, 2, ... until the control reaches the server or the
    test meets an answer; at most ``tries`` connections per name and TTL, ``pause`` seconds
    apart.  Returns the test and control observations and where the block begins."""
    make = T.client_hello if kind == "tls" else T.http_request
    payloads = {"control": make(control_name), "test": make(name)}
    obs: dict[str, list[T.Obs]] = {"control": [], "test": []}
    async with contextlib.AsyncExitStack() as stack:
        tr = transport or await stack.enter_async_context(RawTransport(source))
        te = _TimeExceeded(tr, dst_ip)
        sent_at: dict[int, float] = {}
        async with trio.open_nursery() as nursery:
            nursery.start_soon(te.run, sent_at)
            try:
                silent = 0
                for ttl in range(1, max_ttl + 1):
                    for which in ("control", "test"):
                        for _ in range(tries):
                            o = await _trigger_once(
                                dst_ip, port, payloads[which], ttl, te, sent_at,
                                wait=wait, source=source, connect_timeout=connect_timeout,
                            )  # fmt: skip
                            await trio.sleep(pause)
                            if o.kind != "none":
                                break
                        obs[which].append(o)
                    c, t = obs["control"][-1], obs["test"][-1]
                    if c.kind not in ("time_exceeded", "none") or t.kind in T.BLOCK_KINDS:
                        break
                    silent = silent + 1 if c.kind == "none" and t.kind == "none" else 0
                    if silent >= gaplimit:
                        break
            except _ConnectFailed:
                nursery.cancel_scope.cancel()
                return obs["test"], obs["control"], T.Localisation("loc.connect_failed", "none")
            nursery.cancel_scope.cancel()
    return obs["test"], obs["control"], T.localise(obs["test"], obs["control"])


async def localise_measurement(
    m: Measurement,
    *,
    geo: GeoResolver | None = None,
    vantage: Vantage | None = None,
    control_name: str = DEFAULT_CONTROL_NAME,
    transport: PacketTransport | None = None,
    loopback_only: bool = False,
    **opts: Any,
) -> tuple[list[Hop], T.Localisation]:
    """Localise the block a failed measurement met; ``hops`` rows to store and the result.

    Connect-level failures: a TCP trace (the last responding hop, or the injected RST's
    origin).  TLS/HTTP failures: :func:`localise_exchange` (rows with ``proto`` ``tls`` or
    ``http``; the control name's rows have the trace id suffixed ``~control``).  Call it for
    denied (or at least failed) targets only; ``([], none)`` without rights.
    """
    none = T.Localisation("loc.not_applicable", "none")
    dst = _measured_address(m)
    if dst is None or m.failure_step is None or (loopback_only and not is_loopback(dst[0])):
        return [], none
    if transport is None and not has_raw_privileges()[0]:
        return [], T.Localisation("loc.no_privileges", "none")
    lookup = geo.lookup if geo else None
    if m.failure_step == "tcp":
        hops = await trace_for_measurement(
            m, geo=geo, vantage=vantage, transport=transport, loopback_only=loopback_only
        )
        obs = T.obs_from_hops(hops)
        if m.tcp_failure == "connection_reset":
            loc = T.locate_connect_reset(obs)
        else:
            loc = T.locate_blackhole(obs)
        return hops, loc.with_geo(lookup)
    if m.failure_step not in CONTENT_STEPS or not m.hostname:
        return [], none
    kind = "http" if urlsplit(m.url).scheme == "http" else "tls"
    source = vantage.source_address if vantage else None
    test, control, loc = await localise_exchange(
        dst[0], dst[1], name=m.hostname, control_name=control_name, kind=kind,
        transport=transport, source=source, **opts,
    )  # fmt: skip
    trace_id = new_id()
    common: dict[str, Any] = {
        "vantage_id": m.vantage_id,
        "probe_cc": m.probe_cc,
        "started_at": datetime.now(UTC),
        "measurement_id": m.measurement_id,
        "campaign": m.campaign,
        "run_id": m.run_id,
    }
    hops = T.obs_hops(
        test, trace_id=trace_id, proto=kind, dst_ip=dst[0], dst_port=dst[1], **common
    ) + T.obs_hops(
        control, trace_id=trace_id + "~control", proto=kind, dst_ip=dst[0], dst_port=dst[1],
        **common,
    )  # fmt: skip
    if lookup is not None:
        hops = [_with_geo(h, lookup) for h in hops]
    return hops, loc.with_geo(lookup)


def _with_geo(h: Hop, lookup: Callable[[str], Any]) -> Hop:
    if h.hop_ip is None:
        return h
    from dataclasses import replace

    info = lookup(h.hop_ip)
    return replace(h, hop_cc=info.cc, hop_asn=info.asn)


__all__ = [
    "DEFAULT_CONTROL_NAME",
    "DEFAULT_PPS",
    "TraceSummary",
    "has_raw_privileges",
    "localise_exchange",
    "localise_measurement",
    "make_specs",
    "run_trace",
    "trace_for_measurement",
    "trace_many",
    "ttl_watch",
]
