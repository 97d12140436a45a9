"""OONI failure strings → the SPEC §3 failure vocabulary (pure: no I/O).

OONI probes and test helpers of different ages spell failures differently: the test helper's
own names (``dns_name_error``), free-text messages of old probes and of Windows, and strings of
the vocabulary itself.  :func:`normalise_failure` maps each to what res64 would have recorded and
says what it changed, so the caller can keep that in ``import_note``.
"""

from __future__ import annotations

from probe import failures as F

__all__ = ["NOT_CONNECTED", "normalise_failure"]

_CERT_FAILURES = frozenset(
    {F.SSL_INVALID_HOSTNAME, F.SSL_UNKNOWN_AUTHORITY, F.SSL_INVALID_CERTIFICATE}
)

# OONI did not connect to an address the system resolver gave (it skips bogons): recorded as an
# unknown_failure, never a blocking signal
NOT_CONNECTED = F.unknown("not_connected_by_ooni")

# OONI failure strings outside SPEC §3, mapped to what res64 would have recorded.  Strings of the
# vocabulary pass unchanged; anything else becomes ``unknown_failure: <original>``.
_FAILURE_MAP: dict[str, str] = {
    # test-helper (control) vocabulary
    "dns_name_error": F.DNS_NXDOMAIN,
    "connection_refused_error": F.CONNECTION_REFUSED,
    "connection_reset_error": F.CONNECTION_RESET,
    "connection_aborted": F.CONNECTION_RESET,
    "timed_out": F.GENERIC_TIMEOUT,
    "dns_temporary_failure": F.DNS_MISBEHAVING,
    "dns_server_failure": F.DNS_MISBEHAVING,
    "dns_refused": F.DNS_REFUSED,
    "eof": F.EOF_ERROR,
    "android_dns_cache_no_data": F.DNS_NO_ANSWER,
    # HTTP failures: the probe's "http_request_failed: <reason>" form
    "http_invalid_redirect_url": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_invalid_redirect_location_host": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_unexpected_redirect_url": f"{F.HTTP_REQUEST_FAILED}: invalid_redirect_url",
    "http_unexpected_status_code": f"{F.HTTP_REQUEST_FAILED}: unexpected_status_code",
}
# substrings of free-text failures (old probes, Windows messages) → vocabulary
_FAILURE_SUBSTRINGS: tuple[tuple[str, str], ...] = (
    ("stopped after too many redirects", F.HTTP_TOO_MANY_REDIRECTS),
    ("certificate verify failed", F.SSL_INVALID_CERTIFICATE),
    ("certificate has expired", F.SSL_INVALID_CERTIFICATE),
    ("x509: certificate is valid for", F.SSL_INVALID_HOSTNAME),
    ("x509: certificate signed by unknown authority", F.SSL_UNKNOWN_AUTHORITY),
    ("network is unreachable", F.NETWORK_UNREACHABLE),
    ("no route to host", F.HOST_UNREACHABLE),
    ("actively refused", F.CONNECTION_REFUSED),
    ("connection refused", F.CONNECTION_REFUSED),
    ("forcibly closed by the remote host", F.CONNECTION_RESET),
    ("connection reset by peer", F.CONNECTION_RESET),
    ("i/o timeout", F.GENERIC_TIMEOUT),
    ("operation timed out", F.GENERIC_TIMEOUT),
    ("no such host", F.DNS_NXDOMAIN),
    ("server misbehaving", F.DNS_MISBEHAVING),
)


def normalise_failure(value: object) -> tuple[str | None, str | None]:
    """``(failure, note)``: an OONI failure value in the SPEC §3 vocabulary.

    ``note`` says what was changed (``None`` when the value passed unchanged).
    """
    if value is None or value is False or value == "":
        return None, None
    if not isinstance(value, str):
        return F.unknown(str(type(value).__name__)), f"non-string failure {value!r:.40}"
    v = value.strip()
    if v in F.FAILURES:
        return v, None
    mapped = _FAILURE_MAP.get(v)
    if mapped is not None:
        return mapped, f"failure {v!r} read as {mapped!r}"
    low = v.lower()
    for needle, to in _FAILURE_SUBSTRINGS:
        if needle in low:
            return to, f"failure {v[:60]!r} read as {to!r}"
    if low.startswith("ssl_error") or low.startswith("tls"):
        return F.SSL_FAILED_HANDSHAKE, f"failure {v[:60]!r} read as {F.SSL_FAILED_HANDSHAKE!r}"
    if F.is_failure_string(v):
        return v, None
    detail = v[len(F.UNKNOWN) :].lstrip(" :") if v.startswith(F.UNKNOWN) else v
    out = F.unknown(detail)
    return out, f"failure {v[:60]!r} kept as {out!r}"
