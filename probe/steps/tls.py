"""TLS step: handshake with SNI over the TCP stream, validated against the trusted CAs.

The certificate is parsed by :func:`cert_info` (pure).  When validation fails, the caller
repeats the handshake without validation (:func:`insecure_context`) to record the certificate
and still fetch the page, because a block page served by an interceptor is evidence.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import trio
from cryptography import x509

from probe import failures as F
from probe.records import TlsResult

ALPN = ["http/1.1"]


@dataclass(frozen=True, slots=True)
class CertInfo:
    issuer: str | None
    subject: str | None
    not_after: datetime | None
    sha256: str


def verifying_context(ca_bundle: Path | None) -> ssl.SSLContext:
    """Validating context: the system store, or only ``ca_bundle`` when given."""
    if ca_bundle is not None:
        ctx = ssl.create_default_context(cafile=str(ca_bundle))
    else:
        ctx = ssl.create_default_context()
    ctx.set_alpn_protocols(ALPN)
    return ctx


def insecure_context() -> ssl.SSLContext:
    """Context that accepts any certificate (used only after validation was recorded)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(ALPN)
    return ctx


def cert_info(der: bytes | None) -> CertInfo | None:
    """Pure: issuer, subject, expiry and hash of a DER certificate (None if unparseable)."""
    if not der:
        return None
    sha = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        return CertInfo(
            issuer=cert.issuer.rfc4514_string()[:512],
            subject=cert.subject.rfc4514_string()[:512],
            not_after=cert.not_valid_after_utc,
            sha256=sha,
        )
    except Exception:  # malformed certificate: keep the hash
        return CertInfo(None, None, None, sha)


def result_from(
    ssl_stream: trio.SSLStream | None, failure: str | None, ms: float | None, valid: bool | None
) -> TlsResult:
    version = None
    info = None
    if ssl_stream is not None:
        try:
            version = ssl_stream.version()
            info = cert_info(ssl_stream.getpeercert(binary_form=True))
        except (ssl.SSLError, ValueError, AttributeError, trio.BrokenResourceError):
            pass
    return TlsResult(
        failure=failure,
        version=version,
        cert_issuer=info.issuer if info else None,
        cert_subject=info.subject if info else None,
        cert_valid=valid,
        cert_not_after=info.not_after if info else None,
        cert_sha256=info.sha256 if info else None,
        ms=ms,
    )


async def handshake(
    stream: trio.abc.Stream, server_hostname: str, ctx: ssl.SSLContext, *, timeout: float
) -> tuple[trio.SSLStream | None, str | None, float]:
    """Run the handshake; return (stream or None, failure, ms). Closes ``stream`` on failure."""
    ssl_stream = trio.SSLStream(stream, ctx, server_hostname=server_hostname, https_compatible=True)
    t0 = time.perf_counter()
    try:
        with trio.fail_after(timeout):
            await ssl_stream.do_handshake()
    except Exception as exc:
        ms = (time.perf_counter() - t0) * 1000
        with trio.move_on_after(1) as cs:
            cs.shield = True
            await trio.aclose_forcefully(stream)
        return None, F.classify(exc), ms
    return ssl_stream, None, (time.perf_counter() - t0) * 1000


def is_cert_failure(failure: str | None) -> bool:
    return failure in (F.SSL_INVALID_HOSTNAME, F.SSL_UNKNOWN_AUTHORITY, F.SSL_INVALID_CERTIFICATE)
