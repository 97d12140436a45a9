"""Traceroute planning, reply matching, the trace state machine and localisation (no root).

Replies are built in memory with scapy; whole traces run over the in-memory
:class:`~probe.transports.raw.SimulatedNetwork` with trio's fake clock.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import trio
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Raw

from probe.config import Vantage
from probe.geo import open_geo
from probe.records import HOP_FIELDS, Measurement
from probe.steps import trace as T
from probe.tracing import make_specs, run_trace, trace_for_measurement, trace_many
from probe.transports.raw import (
    SimPath,
    SimulatedNetwork,
    TtlWatcher,
    flow_filter,
    has_raw_privileges,
    parse_segment,
)

SRC, DST = "192.0.2.1", "198.51.100.7"


def spec(proto: str = "tcp", **kw: object) -> T.TraceSpec:
    return T.TraceSpec(DST, SRC, proto=proto, flow_id=40001, **kw)  # type: ignore[arg-type]


def wire(pkt: object) -> IP:
    return IP(bytes(pkt))  # type: ignore[call-overload]


def time_exceeded(probe: IP, router: str, ttl: int = 63) -> IP:
    quoted = bytes(probe)[:28]
    return wire(IP(src=router, dst=SRC, ttl=ttl) / ICMP(type=11, code=0) / Raw(quoted))


# -- planning -----------------------------------------------------------------------------


@pytest.mark.parametrize("proto", T.PROTOS)
def test_probes_keep_one_flow_and_number_each_probe(proto: str) -> None:
    s = spec(proto)
    probes = [wire(T.build_probe(s, ttl, a)) for ttl in range(1, 9) for a in range(2)]
    assert [p.ttl for p in probes[::2]] == list(range(1, 9))
    assert len({p.id for p in probes}) == len(probes)
    flow = {(p.src, p.dst, p.proto) for p in probes}
    assert flow == {(SRC, DST, {"tcp": 6, "icmp": 1, "udp": 17}[proto])}
    if proto == "tcp":
        assert {(p[TCP].sport, p[TCP].dport, str(p[TCP].flags)) for p in probes} == {
            (40001, 443, "S")
        }
        assert len({p[TCP].seq for p in probes}) == len(probes)
    elif proto == "icmp":
        # Paris ICMP: identifier and checksum constant, sequence varies
        assert len({(p[ICMP].id, p[ICMP].chksum) for p in probes}) == 1
        assert len({p[ICMP].seq for p in probes}) == len(probes)
    else:
        assert len({(p[UDP].sport, p[UDP].dport, p[UDP].chksum) for p in probes}) == 1


def test_spec_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        spec("sctp")
    with pytest.raises(ValueError):
        spec(first_ttl=5, max_ttl=4)


# -- matching -----------------------------------------------------------------------------


@pytest.mark.parametrize("proto", T.PROTOS)
def test_index_pairs_time_exceeded_with_the_exact_probe(proto: str) -> None:
    s = spec(proto)
    idx = T.ProbeIndex()
    for ttl in range(1, 6):
        for a in range(2):
            idx.add("k", ttl, a, T.build_probe(s, ttl, a))
    probe = wire(T.build_probe(s, 3, 1))
    ref = idx.match(time_exceeded(probe, "10.0.0.3"))
    assert ref is not None and (ref.key, ref.ttl, ref.attempt) == ("k", 3, 1)
    assert T.classify_reply(time_exceeded(probe, "10.0.0.3"), s) == ("time_exceeded", False)


def test_index_pairs_synack_and_rst_by_acknowledged_sequence() -> None:
    s = spec()
    idx = T.ProbeIndex()
    for ttl in range(1, 6):
        idx.add(7, ttl, 0, T.build_probe(s, ttl))
    seq4 = T.build_probe(s, 4)[TCP].seq
    for flags, kind in (("SA", "synack"), ("RA", "rst")):
        reply = wire(IP(src=DST, dst=SRC) / TCP(sport=443, dport=40001, flags=flags, ack=seq4 + 1))
        ref = idx.match(reply)
        assert ref is not None and ref.ttl == 4
        assert T.classify_reply(reply, s) == (kind, True)


def test_index_ignores_strays() -> None:
    s = spec()
    idx = T.ProbeIndex()
    idx.add(0, 1, 0, T.build_probe(s, 1))
    seq = T.build_probe(s, 1)[TCP].seq
    strays = [
        IP(src=DST, dst=SRC) / TCP(sport=443, dport=40002, flags="SA", ack=seq + 1),  # port
        IP(src="198.51.100.8", dst=SRC) / TCP(sport=443, dport=40001, flags="SA", ack=seq + 1),
        IP(src=DST, dst=SRC) / TCP(sport=443, dport=40001, flags="SA", ack=seq + 17),  # number
        IP(src=DST, dst=SRC) / TCP(sport=443, dport=40001, flags="R"),  # RST without ACK
        IP(src=DST, dst=SRC) / UDP(sport=53, dport=40001),
    ]
    for pkt in strays:
        assert idx.match(wire(pkt)) is None
    other = T.build_probe(T.TraceSpec(DST, SRC, flow_id=40001, ip_id_base=9), 1)
    assert idx.match(time_exceeded(wire(other), "10.0.0.1")) is None  # other IP id


def test_echo_reply_and_port_unreachable_reach_the_destination() -> None:
    s_icmp, s_udp = spec("icmp"), spec("udp")
    p = wire(T.build_probe(s_icmp, 4))
    echo = wire(IP(src=DST, dst=SRC) / ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq))
    idx = T.ProbeIndex()
    idx.add(1, 4, 0, p)
    assert idx.match(echo) is not None
    assert T.classify_reply(echo, s_icmp) == ("echo_reply", True)
    u = wire(T.build_probe(s_udp, 4))
    unreach = wire(IP(src=DST, dst=SRC) / ICMP(type=3, code=3) / Raw(bytes(u)[:28]))
    assert T.classify_reply(unreach, s_udp) == ("unreachable", True)


# -- the state machine --------------------------------------------------------------------


def reply(ttl: int, kind: str = "time_exceeded", reached: bool = False) -> T.Reply:
    return T.Reply(ttl, 0, kind, f"10.0.0.{ttl}", 64 - ttl, 1.0, reached)


def test_state_sends_all_ttls_to_the_gap_limit_at_once_then_slides() -> None:
    st = T.TraceState(spec(gaplimit=3, wait=1.0))
    sent = []
    while (w := st.want(0.0)) is not None:
        st.on_sent(*w, 0.0)
        sent.append(w)
    assert sent == [(1, 0), (2, 0), (3, 0)]
    st.on_reply(reply(2))
    assert st.want(0.0) == (4, 0)  # the window slides past the highest answer
    assert st.want(1.0) == (1, 1)  # the silent TTL 1 is tried again after `wait`


def test_state_stops_at_the_destination_and_drops_later_answers() -> None:
    st = T.TraceState(spec(gaplimit=5))
    for ttl in range(1, 6):
        st.on_sent(ttl, 0, 0.0)
    st.on_reply(reply(4, "synack", reached=True))
    st.on_reply(reply(5, "synack", reached=True))
    for ttl in (1, 2, 3):
        st.on_reply(reply(ttl))
    assert st.done(0.0) and st.dest_ttl == 4 and sorted(st.replies) == [1, 2, 3, 4]
    rows = st.hops(started_at=datetime.now(UTC), vantage_id="v", probe_cc="AA")
    assert [(h.ttl, h.reply_kind) for h in rows][-1] == (4, "synack")
    assert set(rows[0].as_row()) == set(HOP_FIELDS)


def test_state_gives_up_after_gaplimit_silent_hops() -> None:
    st = T.TraceState(spec(gaplimit=2, tries=2, wait=1.0))
    now = 0.0
    while not st.done(now):
        w = st.want(now)
        if w is None:
            now += 1.0
            continue
        st.on_sent(*w, now)
        if w[0] == 1 and w[1] == 0:
            st.on_reply(reply(1))
    assert st.packets == 1 + 2 * 2 and st.last_ttl() == 3 and not st.reached


# -- whole traces over the simulated network ------------------------------------------------

PATHS = {
    "198.51.100.1": SimPath(["10.0.0.1", None, "10.0.2.1"]),
    "198.51.100.2": SimPath(["10.0.0.1", "10.0.1.1"], dst_behaviour="silent"),
    "198.51.100.3": SimPath(["10.0.0.1"], dst_behaviour="rst"),
}


@pytest.mark.parametrize("proto", T.PROTOS)
async def test_trace_many_over_simulated_paths(proto: str, autojump_clock: object) -> None:
    net = SimulatedNetwork(PATHS)
    specs = make_specs([(d, 443) for d in PATHS], proto=proto, source_for=net.source_for)
    t0 = trio.current_time()
    states = await trace_many(specs, net, pps=10)
    elapsed = trio.current_time() - t0
    got = {
        st.spec.dst_ip: [(r.ttl, r.src, r.reached) for _, r in sorted(st.replies.items())]
        for st in states
    }
    assert got["198.51.100.1"] == [
        (1, "10.0.0.1", False), (3, "10.0.2.1", False), (4, "198.51.100.1", True)
    ]  # fmt: skip
    assert got["198.51.100.2"] == [(1, "10.0.0.1", False), (2, "10.0.1.1", False)]
    assert got["198.51.100.3"][-1] == (2, "198.51.100.3", True)
    packets = sum(st.packets for st in states)
    assert packets == net.sent
    assert elapsed >= (packets - 1 - 4) / 10  # the budget held (fake clock)
    star = states[0].hops(started_at=datetime.now(UTC), vantage_id=None, probe_cc=None)
    assert [(h.ttl, h.hop_ip, h.reply_kind) for h in star][1] == (2, None, "none")


async def test_run_trace_writes_the_hops_table(tmp_path: Path, autojump_clock: object) -> None:
    csv = tmp_path / "o.csv"
    csv.write_text("prefix,cc,asn,as_name\n10.0.0.0/24,AA,64500,A\n198.51.100.0/24,CC,64502,C\n")
    geo = open_geo(overrides=csv, embedded=False)
    net = SimulatedNetwork(PATHS)
    summary = await run_trace(
        list(PATHS), out=tmp_path / "out", vantage=Vantage("v-1", probe_cc="AA"), geo=geo,
        campaign="t", transport=net, pps=50,
    )  # fmt: skip
    assert summary.traces == 3 and summary.reached == 2 and summary.packets_sent == net.sent
    tbl = ds.dataset(tmp_path / "out" / "hops", partitioning="hive").to_table().to_pandas()
    assert len(tbl) == summary.hops
    first = tbl[(tbl.dst_ip == "198.51.100.1") & (tbl.ttl == 1)].iloc[0]
    assert (first.hop_ip, first.hop_cc, first.hop_asn) == ("10.0.0.1", "AA", 64500)
    assert (tmp_path / "out" / "runs" / f"{summary.run_id}.json").exists()


async def test_run_trace_loopback_only_refuses_other_addresses(tmp_path: Path) -> None:
    summary = await run_trace(
        ["198.51.100.1"], out=tmp_path, vantage=Vantage("v"), geo=open_geo(embedded=False),
        loopback_only=True, transport=SimulatedNetwork(PATHS),
    )  # fmt: skip
    assert summary.refused == ["198.51.100.1"] and summary.traces == 0


async def test_trace_for_measurement(autojump_clock: object) -> None:
    m = Measurement(
        measurement_id="m1", schema_version=1, software_version="x", campaign="c", run_id="r",
        started_at=datetime.now(UTC), url="https://a.example/", server_ip="198.51.100.1",
        server_port=443, probe_cc="AA",
    )  # fmt: skip
    hops = await trace_for_measurement(m, transport=SimulatedNetwork(PATHS))
    assert [h.ttl for h in hops] == [1, 2, 3, 4] and {h.measurement_id for h in hops} == {"m1"}


# -- localisation ---------------------------------------------------------------------------

TE = "time_exceeded"


def test_hops_away() -> None:
    assert T.hops_away(64) == 1 and T.hops_away(60) == 5 and T.hops_away(250) == 6
    assert T.hops_away(None) is None and T.hops_away(0) is None


def test_injector_in_a_router_is_placed_before_its_ttl_check() -> None:
    ctl = [T.Obs(1, TE, "10.1.0.1", 64), T.Obs(2, TE, "10.11.0.2", 63)]
    test = [T.Obs(1, TE, "10.1.0.1", 64), T.Obs(2, "rst", DST, 64)]
    loc = T.localise(test, ctl)
    assert (loc.kind, loc.hop_ttl, loc.hop_ip, loc.at_endpoint) == ("rst", 1, "10.1.0.1", False)
    assert loc.rule_id == "loc.injected_before_ttl_check"
    assert loc.with_geo(lambda ip: type("G", (), {"cc": "IR", "asn": 1})()).locus("IR") == "local"


def test_injector_on_the_link_is_placed_at_the_ttl() -> None:
    ctl = [T.Obs(t, TE, f"10.0.{t}.1", 65 - t) for t in range(1, 4)] + [T.Obs(4, "data", DST, 61)]
    test = [T.Obs(1, TE, "10.0.1.1", 64), T.Obs(2, "data", DST, 63)]  # block page, 2 hops away
    loc = T.localise(test, ctl)
    assert (loc.kind, loc.hop_ttl, loc.hop_ip, loc.endpoint_ttl) == ("data", 2, "10.0.2.1", 4)
    assert loc.with_geo(lambda ip: type("G", (), {"cc": "TT", "asn": 2})()).locus("AA") == "transit"


def test_server_reset_is_at_the_endpoint() -> None:
    ctl = [T.Obs(t, TE, f"10.0.{t}.1", 65 - t) for t in range(1, 4)] + [T.Obs(4, "data", DST, 61)]
    test = ctl[:3] + [T.Obs(4, "rst", DST, 61)]
    loc = T.localise(test, ctl)
    assert loc.at_endpoint and loc.locus("AA") == "server" and loc.hop_ip == DST


def test_silence_starts_after_the_last_responding_hop() -> None:
    ctl = [T.Obs(t, TE, f"10.0.{t}.1", 65 - t) for t in range(1, 4)] + [T.Obs(4, "data", DST, 61)]
    test = ctl[:2] + [T.Obs(3, "none"), T.Obs(4, "none")]
    loc = T.localise(test, ctl)
    assert (loc.kind, loc.hop_ttl, loc.hop_ip) == ("silence", 2, "10.0.2.1")
    same = T.localise(ctl, ctl)
    assert not same.found and same.rule_id == "loc.no_difference"
    assert T.localise(test, ctl[:3]).rule_id == "loc.no_control"


def test_blackhole_and_connect_reset_from_plain_traces() -> None:
    trace = [T.Obs(1, TE, "10.0.1.1", 64), T.Obs(2, TE, "10.0.2.1", 63), T.Obs(3, "none")]
    bh = T.locate_blackhole(trace)
    assert (bh.rule_id, bh.hop_ip, bh.hop_ttl) == ("loc.blackhole_last_hop", "10.0.2.1", 2)
    assert not T.locate_blackhole([*trace[:2], T.Obs(3, "synack", DST, 62)]).found
    injected = T.locate_connect_reset([*trace[:2], T.Obs(3, "rst", DST, 64)])
    assert (injected.at_endpoint, injected.hop_ttl, injected.hop_ip) == (False, 1, "10.0.1.1")
    real = T.locate_connect_reset([*trace[:2], T.Obs(3, "rst", DST, 62)])
    assert real.at_endpoint and real.locus("AA") == "server"


def test_trigger_payloads_carry_the_name() -> None:
    hello = T.client_hello("blocked.example")
    assert hello[0] == 0x16 and b"blocked.example" in hello
    assert b"Host: blocked.example\r\n" in T.http_request("blocked.example")


# -- TTL watch (pure parts) -------------------------------------------------------------------


def test_ttl_watcher_records_synack_and_injected_reset() -> None:
    w = TtlWatcher(DST, 443)

    def seg(flags: str, ttl: int, dport: int = 40001, payload: bytes = b"") -> None:
        pkt = IP(src=DST, dst=SRC, ttl=ttl) / TCP(sport=443, dport=dport, flags=flags) / payload
        s = parse_segment(bytes(pkt))
        assert s is not None
        w.feed(s)

    seg("SA", 60, dport=40009)  # another flow: not ours once bound
    w.bind(40001)
    seg("SA", 60)
    seg("PA", 60, payload=b"hello")
    assert (w.synack_ttl, w.data_ttls, w.inconsistent) == (60, [60], False)
    seg("R", 64)
    assert w.rst_ttl == 64 and w.inconsistent and w.closing_ttl == 64


def test_parse_segment_and_filter() -> None:
    assert parse_segment(b"\x45" + b"\x00" * 10) is None
    assert parse_segment(bytes(IP(src=DST, dst=SRC) / UDP())) is None
    prog = flow_filter(DST, 443)
    assert len(prog) == 7 * 8 and struct.unpack("HBBI", prog[8:16])[3] == 0xC6336407


def test_privilege_check_explains_itself() -> None:
    ok, why = has_raw_privileges()
    assert ok or "setcap cap_net_raw+ep" in why
