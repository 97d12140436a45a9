"""Bounded body decoding: bombs cost at most the cap; titles are extracted safely."""

from __future__ import annotations

import gzip
import hashlib
import zlib

import brotli
import pytest
from hypothesis import given
from hypothesis import strategies as st

from probe.steps.body import BodyAccumulator, BodyDecodingError, clean_header_text, extract_title

CAP = 256 * 1024


def _feed_in_chunks(acc: BodyAccumulator, data: bytes, size: int = 16384) -> None:
    for i in range(0, len(data), size):
        acc.feed(data[i : i + size])
        if acc.full:
            break


def _gzip_bomb(decoded: int) -> bytes:
    co = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    chunk = b"\0" * (1 << 20)
    parts = [co.compress(chunk) for _ in range(decoded >> 20)]
    return b"".join(parts) + co.flush()


def test_gzip_bomb_1gb_is_capped():
    bomb = _gzip_bomb(1 << 30)  # ~1 MB on the wire, 1 GiB decoded
    assert len(bomb) < 2 << 20
    acc = BodyAccumulator("gzip", CAP, 1024)
    _feed_in_chunks(acc, bomb)
    assert acc.length == CAP
    assert acc.truncated
    assert acc.prefix == b"\0" * 1024


def test_brotli_bomb_is_capped():
    bomb = brotli.compress(b"\0" * (64 << 20), quality=5)  # tiny on the wire
    acc = BodyAccumulator("br", CAP, 100)
    _feed_in_chunks(acc, bomb)
    assert acc.length == CAP
    assert acc.truncated


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw", "br", None, "x-unknown"])
def test_round_trip_small_bodies(encoding):
    body = b"<html><title>Hi</title>" + bytes(range(256)) * 40
    if encoding == "gzip":
        wire = gzip.compress(body)
    elif encoding == "deflate":
        wire = zlib.compress(body)
    elif encoding == "deflate-raw":
        c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        wire = c.compress(body) + c.flush()
        encoding = "deflate"
    elif encoding == "br":
        wire = brotli.compress(body)
    else:
        wire = body
    acc = BodyAccumulator(encoding, CAP, 64)
    _feed_in_chunks(acc, wire, 100)
    assert acc.length == len(body)
    assert not acc.truncated
    assert acc.sha256 == hashlib.sha256(body).hexdigest()
    assert acc.prefix == body[:64]


def test_corrupt_gzip_raises_decoding_error():
    acc = BodyAccumulator("gzip", CAP, 64)
    with pytest.raises(BodyDecodingError):
        acc.feed(b"this is not gzip at all" * 10)


@pytest.mark.parametrize(
    ("body", "title"),
    [
        (b"<html><head><title>Access denied | x</title>", "Access denied | x"),
        (b"<TITLE lang=en>\n  A  \t B </TITLE>", "A B"),
        (b"<title>&lt;script&gt;</title>", "<script>"),
        (b"<title>a\x00b\x07c</title>", "abc"),
        (b"<title>\xff\xfe bad utf8</title>", "\ufffd\ufffd bad utf8"),
        (b"<meta charset=windows-1251><title>\xc4\xee\xf1\xf2\xf3\xef</title>", "Доступ"),
        (b"<html>no title</html>", None),
        (b"<title></title>", None),
    ],
)
def test_extract_title(body, title):
    assert extract_title(body) == title


@given(st.binary(max_size=5000))
def test_extract_title_never_raises(data):
    t = extract_title(data)
    assert t is None or (isinstance(t, str) and len(t) <= 512)


def test_header_text_is_bounded_and_clean():
    assert clean_header_text(b"a\x00b\r\nc" + b"x" * 10000) == "abc" + "x" * 4090
