"""Exceptions → OONI failure strings: the one place they become data."""

from __future__ import annotations

import errno
import ssl

import dns.exception
import dns.resolver
import httpcore
import httpx
import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from probe import failures as F


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as e:
            raise outer from e
    except BaseException as e:
        return e


def _cert_error(code: int, msg: str) -> ssl.SSLCertVerificationError:
    e = ssl.SSLCertVerificationError(1, msg)
    e.verify_code = code
    e.verify_message = msg
    return e


CASES = [
    (trio.TooSlowError(), "generic_timeout_error"),
    (TimeoutError(), "generic_timeout_error"),
    (httpx.ReadTimeout("x"), "generic_timeout_error"),
    (dns.exception.Timeout(), "generic_timeout_error"),
    (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection_refused"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), "connection_reset"),
    (OSError(errno.EHOSTUNREACH, "x"), "host_unreachable"),
    (OSError(errno.ENETUNREACH, "x"), "network_unreachable"),
    (dns.resolver.NXDOMAIN(), "dns_nxdomain_error"),
    (_cert_error(62, "Hostname mismatch"), "ssl_invalid_hostname"),
    (_cert_error(19, "self-signed certificate in certificate chain"), "ssl_unknown_authority"),
    (_cert_error(20, "unable to get local issuer certificate"), "ssl_unknown_authority"),
    (_cert_error(10, "certificate has expired"), "ssl_invalid_certificate"),
    (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), "ssl_failed_handshake"),
    (ssl.SSLEOFError(8, "EOF occurred in violation of protocol"), "eof_error"),
    (httpx.TooManyRedirects("x"), "http_request_failed: too_many_redirects"),
    (httpcore.RemoteProtocolError("Server disconnected without sending a response."), "eof_error"),
    (httpcore.RemoteProtocolError("illegal header line"), "http_request_failed: protocol_error"),
    (trio.BrokenResourceError(), "eof_error"),
]


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_classify(exc, expected):
    assert F.classify(exc) == expected


def test_wrapped_errors_are_unwrapped_through_the_cause_chain():
    # what httpx raises for a reset during read: ReadError from httpcore from trio from OS
    inner = _chained(trio.BrokenResourceError(), ConnectionResetError(errno.ECONNRESET, "r"))
    outer = _chained(httpx.ReadError("x"), _chained(httpcore.ReadError("x"), inner))
    assert F.classify(outer) == "connection_reset"
    ssl_wrapped = _chained(trio.BrokenResourceError(), _cert_error(62, "mismatch"))
    assert F.classify(ssl_wrapped) == "ssl_invalid_hostname"


def test_unknown_exceptions_become_unknown_failure():
    assert F.classify(ValueError("boom")) == "unknown_failure: valueerror"


@given(st.text(max_size=300))
def test_unknown_detail_is_short_and_safe(detail):
    s = F.unknown(detail)
    assert s.startswith("unknown_failure: ")
    assert len(s) <= len("unknown_failure: ") + 80
    assert F.is_failure_string(s)
    assert all(c.isalnum() or c in "_.:- " for c in s)


@given(st.sampled_from([type(e) for e, _ in CASES if type(e) is not ssl.SSLCertVerificationError]))
def test_every_classification_is_in_the_vocabulary(exc_type):
    try:
        e = exc_type()
    except TypeError:
        e = exc_type("x")
    assert F.is_failure_string(F.classify(e))
