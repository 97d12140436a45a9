"""The lab's two DNS servers: a "system" resolver that lies per source, and a truthful control.

:class:`LabDns` is sans-I/O: :meth:`LabDns.respond` turns a query (wire bytes) and the client's
source address into response bytes, or ``None`` for packets to ignore (garbage, responses).
:func:`serve_udp` is the trio loop around one UDP socket.

Both servers are authoritative for the world's zone: ``A`` records for every site, an empty
NOERROR answer for other types (no ``AAAA`` in the lab), NXDOMAIN for unknown names inside the
zone, REFUSED outside it.  The system resolver applies each site's per-country interference:
``nxdomain`` or ``bogus`` (the country's block-page server address).
"""

from __future__ import annotations

import errno
import logging

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trio

from probe.lab.world import Site, WorldSpec

log = logging.getLogger(__name__)

MAX_QUERY_BYTES = 4096  # larger datagrams are truncated by recvfrom and then fail to parse
UDP_PAYLOAD_LIMIT = 1232  # the DNS flag day's safe EDNS size; plain DNS: 512
TTL = 60


class LabDns:
    """Answers queries for one world; ``truthful=False`` applies the sites' DNS interference."""

    def __init__(self, spec: WorldSpec, *, truthful: bool) -> None:
        self.spec = spec
        self.truthful = truthful
        self.origin = dns.name.from_text(spec.zone)
        self._sites: dict[dns.name.Name, Site] = {
            dns.name.from_text(s.hostname): s for s in spec.sites
        }
        self._soa = dns.rrset.from_text(
            self.origin, TTL, "IN", "SOA",
            f"ns.{spec.zone}. hostmaster.{spec.zone}. 1 3600 600 86400 {TTL}",
        )  # fmt: skip

    def respond(self, wire: bytes, client_ip: str) -> bytes | None:
        """The response to one datagram from ``client_ip``, or None to stay silent."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:  # garbage of every kind: dnspython raises many exception types
            return None
        if query.flags & dns.flags.QR:
            return None  # a response: never answer those (no loops)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA | dns.flags.RA
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
        elif len(query.question) != 1:
            response.set_rcode(dns.rcode.FORMERR)
        else:
            self._answer(query.question[0], client_ip, response)
        return _to_wire(response, query)

    def _answer(
        self, question: dns.rrset.RRset, client_ip: str, response: dns.message.Message
    ) -> None:
        qname = question.name.canonicalize()
        if question.rdclass != dns.rdataclass.IN or not qname.is_subdomain(self.origin):
            response.flags &= ~dns.flags.AA
            response.set_rcode(dns.rcode.REFUSED)
            return
        site = self._sites.get(qname)
        if site is None:
            if qname != self.origin:
                response.set_rcode(dns.rcode.NXDOMAIN)
            response.authority.append(self._soa)
            return
        address = site.address
        if not self.truthful:
            cc = self.spec.client_cc(client_ip)
            kind = site.dns_for(cc)
            if kind == "nxdomain":
                response.set_rcode(dns.rcode.NXDOMAIN)
                response.authority.append(self._soa)
                return
            if kind == "bogus" and cc is not None:
                address = self.spec.blockpage_address(cc)
        if question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(dns.rrset.from_text(question.name, TTL, "IN", "A", address))
        else:
            response.authority.append(self._soa)  # NOERROR, no data (e.g. AAAA)


def _to_wire(response: dns.message.Message, query: dns.message.Message) -> bytes:
    limit = 512
    if query.edns >= 0:
        limit = max(512, min(query.payload, UDP_PAYLOAD_LIMIT))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.authority.clear()
        response.additional.clear()
        response.flags |= dns.flags.TC
        return response.to_wire(max_size=limit)


async def bind_udp(ip: str, preferred_port: int) -> trio.socket.SocketType:
    """A UDP socket on ``ip:preferred_port``, or on an ephemeral port if that one is busy.

    No SO_REUSEADDR: for UDP it would let two worlds share one port and steal each other's
    queries.
    """
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    try:
        try:
            await sock.bind((ip, preferred_port))
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            await sock.bind((ip, 0))
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_udp(
    sock: trio.socket.SocketType,
    server: LabDns,
    *,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Answer datagrams on ``sock`` until cancelled; owns (and closes) the socket."""
    with sock:
        task_status.started(sock.getsockname()[:2])
        while True:
            try:
                data, addr = await sock.recvfrom(MAX_QUERY_BYTES)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise
                continue  # e.g. an ICMP error reported on the socket
            try:
                reply = server.respond(data, addr[0])
            except Exception:  # a bug must not take the world down: log and go on
                log.exception("dns: failed to answer a query from %s", addr[0])
                continue
            if reply is not None:
                try:
                    await sock.sendto(reply, addr)
                except OSError:
                    log.debug("dns: could not answer %s", addr, exc_info=True)
