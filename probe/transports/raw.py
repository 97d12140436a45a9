"""Raw sockets: the only module of res64-probe that opens them.

* :class:`RawTransport` sends IPv4 packets built by scapy (an ``IPPROTO_RAW`` socket, so the
  probe's own IP header goes out as built) and receives ICMP messages and TCP segments with
  SYN, RST or FIN set (one packet socket with a kernel filter).  Both are non-blocking trio
  sockets: nothing blocks the event loop, so no thread is needed.
* :func:`ttl_watch` records the IP TTL of the SYN-ACK, of a RST or FIN and of the first data
  segments of one TCP flow, for injection evidence (SPEC §5: compare the reply TTL with the
  SYN-ACK's).  A kernel (BPF) filter keeps only the flow's packets, truncated to their
  headers; the queue is read when the watch ends.  No task runs in the background, so the
  watch changes nothing in the exceptions or cancellation of the code it surrounds.
* :class:`SimulatedNetwork` is the fake: the same ``send``/``recv``/``source_for`` interface
  over an in-memory model of paths, for tests and demos without privileges.

Without ``CAP_NET_RAW`` nothing here raises at import; :func:`has_raw_privileges` says why
tracing is unavailable, and :func:`ttl_watch` yields a watcher with ``available=False``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import math
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import trio
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.packet import Packet, Raw

GRANT_HINT = (
    "tracing needs raw sockets: run as root, or grant the capability once with "
    "`sudo setcap cap_net_raw+ep $(readlink -f $(which python3))`; "
    "measurements go on without traces"
)
MAX_PACKET = 65535
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
WATCH_RCVBUF = 8 * 1024 * 1024
WATCH_SNAPLEN = 96  # IP + TCP headers with options
MAX_DATA_TTLS = 8
_TCP_SYN, _TCP_RST, _TCP_FIN, _TCP_ACK = 0x02, 0x04, 0x01, 0x10
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4


def has_raw_privileges() -> tuple[bool, str]:
    """``(True, "")`` when raw sockets can be opened, else ``(False, how to grant it)``."""
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    except PermissionError:
        return False, GRANT_HINT
    except OSError as exc:
        return False, f"raw sockets unavailable ({exc.strerror or exc}); {GRANT_HINT}"
    s.close()
    return True, ""


class PacketTransport(Protocol):
    """What :mod:`probe.tracing` needs from a network: send probes, receive replies."""

    async def send(self, packet: Packet) -> float:
        """Send one IPv4 packet; return the trio time at which it left."""
        ...

    async def recv(self) -> tuple[Packet, float]:
        """The next received packet (from IP up) and the trio time it arrived."""
        ...

    def source_for(self, dst_ip: str) -> str:
        """The local address that packets to ``dst_ip`` leave from."""
        ...


def route_source(dst_ip: str, bind: str | None = None) -> str:
    """The source address the kernel would use towards ``dst_ip`` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if bind:
            s.bind((bind, 0))
        s.connect((dst_ip, 9))
        return str(s.getsockname()[0])


def reply_filter() -> bytes:
    """Classic BPF for a packet socket: ICMP, and TCP with SYN, RST or FIN set."""
    insns = [
        (0x30, 0, 0, 9),  # ldb [9]           protocol
        (0x15, 4, 0, 1),  # jeq #ICMP         accept
        (0x15, 0, 4, 6),  # jeq #TCP          else drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf)  header length
        (0x50, 0, 0, 13),  # ldb [x+13]       TCP flags
        (0x45, 0, 1, _TCP_SYN | _TCP_RST | _TCP_FIN),  # jset  else drop
        (0x06, 0, 0, MAX_PACKET),  # accept
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *i) for i in insns)


class RawTransport:
    """Raw IPv4 send and receive (``async with RawTransport() as t``); needs CAP_NET_RAW.

    Sends through an ``IPPROTO_RAW`` socket; receives through one packet socket (all
    interfaces, incoming packets only) whose kernel filter keeps ICMP and TCP SYN/RST/FIN.
    """

    def __init__(self, source: str | None = None) -> None:
        self._source = source
        self._send: trio.socket.SocketType | None = None
        self._recv: trio.socket.SocketType | None = None
        self.sent = 0
        self.received = 0

    async def __aenter__(self) -> RawTransport:
        self._send = trio.socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        try:
            r = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
            r.setblocking(False)
            _attach_filter(r, reply_filter())
            with contextlib.suppress(OSError):
                r.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            with contextlib.suppress(OSError):  # anything queued before the filter
                while r.recv(MAX_PACKET, socket.MSG_DONTWAIT):
                    pass
            self._recv = trio.socket.from_stdlib_socket(r)
        except BaseException:
            self._send.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        for s in (self._send, self._recv):
            if s is not None:
                s.close()

    async def send(self, packet: Packet) -> float:
        assert self._send is not None
        at = trio.current_time()
        await self._send.sendto(bytes(packet), (packet[IP].dst, 0))
        self.sent += 1
        return at

    async def recv(self) -> tuple[Packet, float]:
        assert self._recv is not None
        while True:
            data, addr = await self._recv.recvfrom(MAX_PACKET)
            if addr[2] == PACKET_OUTGOING:
                continue
            self.received += 1
            return IP(data), trio.current_time()

    def source_for(self, dst_ip: str) -> str:
        return self._source or route_source(dst_ip)


# --------------------------------------------------------------------------------------------
# TTL watch (injection evidence)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Segment:
    """The header fields of one captured TCP segment."""

    src: str
    dst: str
    sport: int
    dport: int
    flags: int
    ttl: int
    payload_len: int


def parse_segment(data: bytes) -> Segment | None:
    """Pure: the IPv4 + TCP header fields of a (possibly truncated) raw datagram."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None
    ihl = (data[0] & 0x0F) * 4
    if data[9] != socket.IPPROTO_TCP or len(data) < ihl + 14:
        return None
    total = struct.unpack("!H", data[2:4])[0]
    sport, dport = struct.unpack("!HH", data[ihl : ihl + 4])
    doff = (data[ihl + 12] >> 4) * 4
    return Segment(
        src=socket.inet_ntoa(data[12:16]),
        dst=socket.inet_ntoa(data[16:20]),
        sport=sport,
        dport=dport,
        flags=data[ihl + 13],
        ttl=data[8],
        payload_len=max(0, total - ihl - doff),
    )


@dataclass
class TtlWatcher:
    """TTLs seen on one flow from ``dst_ip:dst_port``; ``None`` when not seen (or no rights)."""

    dst_ip: str
    dst_port: int
    local_port: int | None = None
    available: bool = False
    reason: str = ""
    synack_ttl: int | None = None
    rst_ttl: int | None = None
    fin_ttl: int | None = None
    data_ttls: list[int] = field(default_factory=list)
    _sock: socket.socket | None = field(default=None, repr=False)

    def bind(self, local_port: int) -> None:
        """Follow the flow of this local port (once connected); earlier packets are kept."""
        self.local_port = local_port

    def feed(self, seg: Segment) -> None:
        """Pure bookkeeping of one segment of the watched server address and port."""
        if seg.src != self.dst_ip or seg.sport != self.dst_port:
            return
        if self.local_port is None:
            if not (seg.flags & _TCP_SYN and seg.flags & _TCP_ACK):
                return
            self.local_port = seg.dport  # lock onto the first SYN-ACK's flow
        if seg.dport != self.local_port:
            return
        if seg.flags & _TCP_SYN and seg.flags & _TCP_ACK:
            if self.synack_ttl is None:
                self.synack_ttl = seg.ttl
        elif seg.flags & _TCP_RST:
            if self.rst_ttl is None:
                self.rst_ttl = seg.ttl
        elif seg.flags & _TCP_FIN and self.fin_ttl is None:
            self.fin_ttl = seg.ttl
        if seg.payload_len > 0 and len(self.data_ttls) < MAX_DATA_TTLS:
            self.data_ttls.append(seg.ttl)

    def poll(self) -> None:
        """Read every segment queued so far (never blocks)."""
        if self._sock is None:
            return
        while True:
            try:
                data = self._sock.recv(MAX_PACKET, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            seg = parse_segment(data)
            if seg is not None:
                self.feed(seg)

    @property
    def closing_ttl(self) -> int | None:
        """TTL of the RST, else of the FIN: the packet that ended the flow."""
        return self.rst_ttl if self.rst_ttl is not None else self.fin_ttl

    @property
    def inconsistent(self) -> bool:
        """A RST, FIN or data segment arrived with a TTL other than the SYN-ACK's."""
        if self.synack_ttl is None:
            return False
        others = [t for t in (self.rst_ttl, self.fin_ttl, *self.data_ttls) if t is not None]
        return any(t != self.synack_ttl for t in others)


def flow_filter(src_ip: str, sport: int, snaplen: int = WATCH_SNAPLEN) -> bytes:
    """Classic BPF: accept IPv4/TCP from ``src_ip:sport`` (truncated to ``snaplen``)."""
    ip = int(ipaddress.IPv4Address(src_ip))
    insns = [
        (0x20, 0, 0, 12),  # ld [12]          source address
        (0x15, 0, 4, ip),  # jeq #ip          else drop
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf) header length
        (0x48, 0, 0, 0),  # ldh [x+0]         TCP source port
        (0x15, 0, 1, sport),  # jeq #sport   else drop
        (0x06, 0, 0, snaplen),  # ret #snaplen
        (0x06, 0, 0, 0),  # ret #0
    ]
    return b"".join(struct.pack("HBBI", *i) for i in insns)


def _attach_filter(sock: socket.socket, program: bytes) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(program)
    fprog = struct.pack("HL", len(program) // 8, ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    return buf  # keep alive while attaching (the kernel copies it)


@contextlib.asynccontextmanager
async def ttl_watch(
    dst_ip: str, dst_port: int, *, local_port: int | None = None
) -> AsyncIterator[TtlWatcher]:
    """Watch the TTLs of one TCP flow from ``dst_ip:dst_port``.

    Open it before connecting; call ``w.bind(local_port)`` once connected (else the first
    SYN-ACK's flow is followed).  Read ``w.synack_ttl``, ``w.rst_ttl``, ``w.inconsistent`` after
    the block (or call ``w.poll()`` first).  Without raw-socket rights ``w.available`` is False
    and every TTL stays None.
    """
    w = TtlWatcher(dst_ip, dst_port, local_port=local_port)
    try:
        ipaddress.IPv4Address(dst_ip)
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        sock.setblocking(False)
    except ValueError:
        w.reason = "only IPv4 flows are watched"
        yield w
        return
    except OSError as exc:
        w.reason = GRANT_HINT if isinstance(exc, PermissionError) else str(exc)
        yield w
        return
    try:
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, opt, WATCH_RCVBUF)
                break
        _attach_filter(sock, flow_filter(dst_ip, dst_port))
        with contextlib.suppress(OSError):  # packets queued before the filter was attached
            while sock.recv(MAX_PACKET, socket.MSG_DONTWAIT):
                pass
        w._sock, w.available = sock, True
        yield w
        w.poll()
    finally:
        w._sock = None
        sock.close()


# --------------------------------------------------------------------------------------------
# The fake: an in-memory network
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimPath:
    """The path to one destination: router addresses (``None``: a hop that never answers)
    and what the destination does (``answer``: reply as a host does; ``silent``: nothing)."""

    hops: Sequence[str | None]
    dst_behaviour: str = "answer"  # answer | silent | rst
    initial_ttl: int = 64


class SimulatedNetwork:
    """A :class:`PacketTransport` over in-memory paths; replies arrive at once."""

    def __init__(
        self,
        paths: dict[str, SimPath],
        src_ip: str = "192.0.2.1",
        on_send: Callable[[Packet], None] | None = None,
    ) -> None:
        self.paths = paths
        self.src_ip = src_ip
        self.on_send = on_send
        self.sent = 0
        self._tx, self._rx = trio.open_memory_channel[tuple[Packet, float]](math.inf)

    def source_for(self, dst_ip: str) -> str:
        return self.src_ip

    async def send(self, packet: Packet) -> float:
        at = trio.current_time()
        self.sent += 1
        if self.on_send is not None:
            self.on_send(packet)
        pkt = IP(bytes(packet))  # as it would be on the wire (checksums, lengths)
        reply = self.reply_to(pkt)
        if reply is not None:
            self._tx.send_nowait((IP(bytes(reply)), at))
        await trio.lowlevel.checkpoint()
        return at

    async def recv(self) -> tuple[Packet, float]:
        return await self._rx.receive()

    def reply_to(self, pkt: Packet) -> Packet | None:
        """Pure: what the modelled network sends back for ``pkt``."""
        path = self.paths.get(pkt.dst)
        if path is None:
            return None
        ttl, hops = pkt.ttl, list(path.hops)
        if ttl <= len(hops):
            hop = hops[ttl - 1]
            if hop is None:
                return None
            quote = bytes(pkt)[: pkt.ihl * 4 + 8]
            return (
                IP(src=hop, dst=pkt.src, ttl=path.initial_ttl - (ttl - 1))
                / ICMP(type=11, code=0)
                / Raw(quote)
            )
        if path.dst_behaviour == "silent":
            return None
        back = IP(src=pkt.dst, dst=pkt.src, ttl=path.initial_ttl - len(hops))
        if pkt.haslayer(TCP):
            t = pkt[TCP]
            flags = "RA" if path.dst_behaviour == "rst" else "SA"
            return back / TCP(
                sport=t.dport, dport=t.sport, flags=flags, seq=4242, ack=(t.seq + 1) & 0xFFFFFFFF
            )
        if pkt.haslayer(ICMP):
            i = pkt[ICMP]
            return back / ICMP(type=0, id=i.id, seq=i.seq) / Raw(bytes(i.payload))
        if pkt.haslayer(UDP):
            quote = bytes(pkt)[: pkt.ihl * 4 + 8]
            return back / ICMP(type=3, code=3) / Raw(quote)
        return None


def is_root() -> bool:
    return os.geteuid() == 0


__all__ = [
    "GRANT_HINT",
    "PacketTransport",
    "RawTransport",
    "Segment",
    "SimPath",
    "SimulatedNetwork",
    "TtlWatcher",
    "flow_filter",
    "has_raw_privileges",
    "is_root",
    "parse_segment",
    "route_source",
    "ttl_watch",
]
