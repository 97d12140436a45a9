"""TCP step: connect to the resolved addresses in resolver order, first success wins.

Every attempt is recorded (:class:`TcpAttempt`); the established stream is handed on to the
TLS/HTTP steps so that they measure the same address.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence

import trio

from probe import failures as F
from probe.records import TcpAttempt, TcpResult

MAX_ADDRESSES = 4
LOOPBACK_ONLY_FAILURE = F.unknown("non_loopback_destination_refused")


def family_of(ip: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET


async def open_connection(
    ip: str, port: int, *, source: str | None, timeout: float
) -> trio.SocketStream:
    """Connect one TCP socket (bound to ``source`` when given). Raises on failure."""
    fam = family_of(ip)
    sock = trio.socket.socket(fam, socket.SOCK_STREAM)
    try:
        if source:
            await sock.bind((source, 0))
        with trio.fail_after(timeout):
            await sock.connect((ip, port))
    except BaseException:
        sock.close()
        raise
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return trio.SocketStream(sock)


def usable(ip: str, source: str | None, loopback_only: bool) -> str | None:
    """Why ``ip`` must not be tried (a failure string), or None."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return F.unknown("bad_address")
    if loopback_only and not addr.is_loopback:
        return LOOPBACK_ONLY_FAILURE
    if source is not None and ipaddress.ip_address(source).version != addr.version:
        return F.unknown("address_family_mismatch")
    return None


async def connect_first(
    addresses: Sequence[str],
    port: int,
    *,
    source: str | None,
    timeout: float,
    loopback_only: bool = False,
) -> tuple[TcpResult, trio.SocketStream | None]:
    """Try ``addresses`` in order (at most :data:`MAX_ADDRESSES`); return the first stream."""
    attempts: list[TcpAttempt] = []
    for ip in list(addresses)[:MAX_ADDRESSES]:
        why = usable(ip, source, loopback_only)
        if why is not None:
            attempts.append(TcpAttempt(ip=ip, port=port, failure=why, ms=None))
            continue
        t0 = time.perf_counter()
        try:
            stream = await open_connection(ip, port, source=source, timeout=timeout)
        except Exception as exc:
            ms = (time.perf_counter() - t0) * 1000
            attempts.append(TcpAttempt(ip=ip, port=port, failure=F.classify(exc), ms=ms))
            continue
        ms = (time.perf_counter() - t0) * 1000
        attempts.append(TcpAttempt(ip=ip, port=port, failure=None, ms=ms))
        return TcpResult(ip, port, None, ms, tuple(attempts)), stream
    if not attempts:
        return TcpResult(None, port, F.unknown("no_address"), None, ()), None
    # measured address: the first one tried (its failure is the step's failure)
    first = next((a for a in attempts if a.ms is not None), attempts[0])
    return TcpResult(first.ip, port, first.failure, first.ms, tuple(attempts)), None
