"""OONI's failure vocabulary, and the one place where exceptions become data.

Every step catches what the network throws at it and calls :func:`classify`; the result is a
string from :data:`FAILURES` (or ``"unknown_failure: <detail>"``).  Strings follow
ooni/spec ``df-007-errors`` so that res64 data can be compared with OONI's.
"""

from __future__ import annotations

import errno
import re
import ssl

import dns.exception
import dns.resolver
import httpcore
import httpx
import trio

GENERIC_TIMEOUT = "generic_timeout_error"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
EOF_ERROR = "eof_error"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_NO_ANSWER = "dns_no_answer"
DNS_REFUSED = "dns_refused_error"
DNS_MISBEHAVING = "dns_server_misbehaving"
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
HTTP_REQUEST_FAILED = "http_request_failed"
UNKNOWN = "unknown_failure"

FAILURES: frozenset[str] = frozenset(
    {
        GENERIC_TIMEOUT,
        CONNECTION_REFUSED,
        CONNECTION_RESET,
        EOF_ERROR,
        HOST_UNREACHABLE,
        NETWORK_UNREACHABLE,
        DNS_NXDOMAIN,
        DNS_NO_ANSWER,
        DNS_REFUSED,
        DNS_MISBEHAVING,
        SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY,
        SSL_INVALID_CERTIFICATE,
        SSL_FAILED_HANDSHAKE,
        HTTP_REQUEST_FAILED,
    }
)

# Detailed HTTP failures keep the OONI prefix and add a reason after ": ".
HTTP_TOO_MANY_REDIRECTS = f"{HTTP_REQUEST_FAILED}: too_many_redirects"
HTTP_REDIRECT_PRIVATE = f"{HTTP_REQUEST_FAILED}: redirect_to_private_address"
HTTP_REDIRECT_SCHEME = f"{HTTP_REQUEST_FAILED}: redirect_to_unsupported_scheme"
HTTP_HEADERS_TOO_LARGE = f"{HTTP_REQUEST_FAILED}: headers_too_large"
HTTP_PROTOCOL_ERROR = f"{HTTP_REQUEST_FAILED}: protocol_error"
HTTP_DECODING_ERROR = f"{HTTP_REQUEST_FAILED}: decoding_error"

_ERRNO = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_RESET,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.EHOSTDOWN: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: GENERIC_TIMEOUT,
    errno.EADDRNOTAVAIL: "unknown_failure: address_not_available",
}

# OpenSSL X509_V_ERR_* codes carried by ssl.SSLCertVerificationError.verify_code
_X509_HOSTNAME_MISMATCH = 62
_X509_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21, 27}
_X509_INVALID = {9, 10, 7, 8, 24, 26, 28}

_DETAIL_RE = re.compile(r"[^a-z0-9_.:-]+")


def unknown(detail: str) -> str:
    """``unknown_failure: <detail>`` with the detail squeezed to a short safe token string."""
    d = _DETAIL_RE.sub("_", detail.lower()).strip("_")[:80]
    return f"{UNKNOWN}: {d or 'error'}"


def _classify_ssl(exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = getattr(exc, "verify_code", None)
        if code == _X509_HOSTNAME_MISMATCH:
            return SSL_INVALID_HOSTNAME
        if code in _X509_UNKNOWN_AUTHORITY:
            return SSL_UNKNOWN_AUTHORITY
        if code in _X509_INVALID:
            return SSL_INVALID_CERTIFICATE
        msg = str(exc).lower()
        if "hostname" in msg or "ip address mismatch" in msg:
            return SSL_INVALID_HOSTNAME
        if "self-signed" in msg or "self signed" in msg or "unable to get local issuer" in msg:
            return SSL_UNKNOWN_AUTHORITY
        return SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return EOF_ERROR
    reason = (getattr(exc, "reason", None) or "").upper()
    if "RESET" in reason:
        return CONNECTION_RESET
    return SSL_FAILED_HANDSHAKE


def classify(exc: BaseException) -> str:
    """Map any exception raised by a measurement step to a failure string.

    Unknown exceptions become ``unknown_failure: <ExceptionName>`` rather than propagating:
    the caller records them, the run goes on.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    # Walk the explicit cause/context chain: wrappers (httpx, trio) hide the real error.
    chain: list[BaseException] = []
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        chain.append(cur)
        cur = cur.__cause__ or cur.__context__
    for e in chain:
        hit = _classify_one(e)
        if hit is not None:
            return hit
    return unknown(type(exc).__name__)


def _classify_one(e: BaseException) -> str | None:
    # order matters: specific before generic
    if isinstance(e, trio.TooSlowError | TimeoutError | dns.exception.Timeout):
        return GENERIC_TIMEOUT
    if isinstance(e, httpx.TimeoutException | httpcore.TimeoutException):
        return GENERIC_TIMEOUT
    if isinstance(e, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(e, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(e, dns.resolver.NoNameservers):
        return DNS_MISBEHAVING
    if isinstance(e, ssl.SSLError):
        return _classify_ssl(e)
    if isinstance(e, httpx.TooManyRedirects):
        return HTTP_TOO_MANY_REDIRECTS
    if isinstance(e, httpx.DecodingError):
        return HTTP_DECODING_ERROR
    if isinstance(e, OSError) and e.errno in _ERRNO:
        return _ERRNO[e.errno]
    if isinstance(e, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(e, ConnectionResetError | BrokenPipeError):
        return CONNECTION_RESET
    if isinstance(e, httpcore.RemoteProtocolError | httpx.RemoteProtocolError):
        msg = str(e).lower()
        if "without sending" in msg or "disconnected" in msg or "incomplete" in msg:
            return EOF_ERROR
        if "too large" in msg or "too long" in msg or "exceeds" in msg:
            return HTTP_HEADERS_TOO_LARGE
        return HTTP_PROTOCOL_ERROR
    if isinstance(e, httpx.LocalProtocolError | httpcore.LocalProtocolError):
        return HTTP_PROTOCOL_ERROR
    if isinstance(e, trio.BrokenResourceError):
        # trio wraps the OS error as __cause__; reached only when no cause is known
        return None if e.__cause__ is not None else EOF_ERROR
    if isinstance(e, trio.ClosedResourceError | EOFError):
        return EOF_ERROR
    if isinstance(e, dns.exception.DNSException):
        return DNS_MISBEHAVING
    return None


def is_failure_string(value: str | None) -> bool:
    """Whether ``value`` is null or a string of the vocabulary (used by tests and imports)."""
    if value is None:
        return True
    if value in FAILURES:
        return True
    head = value.split(":", 1)[0]
    return head in (UNKNOWN, HTTP_REQUEST_FAILED) and ": " in value


__all__ = ["FAILURES", "classify", "is_failure_string", "unknown"]
