"""Bounded body decoding and page metadata (pure, no I/O).

Decompression bombs are the reason this exists: every decoder is fed raw bytes and asked for at
most the bytes still wanted, so a 1 KB → 1 GB gzip or brotli bomb costs at most the cap.
"""

from __future__ import annotations

import hashlib
import html
import re
import zlib

import brotli


class BodyDecodingError(Exception):
    """The body's content-encoding could not be decoded."""


class _Identity:
    def feed(self, data: bytes, limit: int) -> bytes:
        return data[:limit]

    @property
    def pending(self) -> bool:
        return False


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._wbits = wbits
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if limit <= 0:
            self._tail += data
            return b""
        buf = self._tail + data
        try:
            out = self._d.decompress(buf, limit)
        except zlib.error as exc:
            # "deflate" is sometimes sent raw (without the zlib header)
            if not self._started and self._wbits == zlib.MAX_WBITS:
                self._d = zlib.decompressobj(-zlib.MAX_WBITS)
                self._wbits = -zlib.MAX_WBITS
                return self.feed(data, limit)
            raise BodyDecodingError(str(exc)) from exc
        self._started = True
        self._tail = self._d.unconsumed_tail
        return out

    @property
    def pending(self) -> bool:
        return bool(self._tail)


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes, limit: int) -> bytes:
        if limit <= 0:
            return b""
        try:
            if data and not self._d.can_accept_more_data():
                # the previous call stopped at the limit: drain first, drop the rest
                return self._d.process(b"", output_buffer_limit=limit)[:limit]
            return self._d.process(data, output_buffer_limit=limit)[:limit]
        except brotli.error as exc:
            raise BodyDecodingError(str(exc)) from exc

    @property
    def pending(self) -> bool:
        return not self._d.can_accept_more_data()


def make_decoder(content_encoding: str | None) -> _Identity | _Zlib | _Brotli:
    """A decoder for the (last) content-coding; unknown codings are kept raw."""
    enc = (content_encoding or "").split(",")[-1].strip().lower()
    if enc in ("gzip", "x-gzip"):
        return _Zlib(16 + zlib.MAX_WBITS)
    if enc == "deflate":
        return _Zlib(zlib.MAX_WBITS)
    if enc == "br":
        return _Brotli()
    return _Identity()


class BodyAccumulator:
    """Counts, hashes and keeps a prefix of the decoded body, up to ``max_bytes``."""

    def __init__(self, content_encoding: str | None, max_bytes: int, prefix_bytes: int) -> None:
        self._dec = make_decoder(content_encoding)
        self.max_bytes = max_bytes
        self.prefix_bytes = prefix_bytes
        self.length = 0
        self.truncated = False
        self._sha = hashlib.sha256()
        self._prefix = bytearray()

    @property
    def full(self) -> bool:
        return self.length >= self.max_bytes

    def feed(self, raw: bytes) -> None:
        data = self._dec.feed(raw, self.max_bytes - self.length)
        self._take(data)
        # drain output the decoder still holds, within the cap
        while not self.full and self._dec.pending:
            more = self._dec.feed(b"", self.max_bytes - self.length)
            if not more:
                break
            self._take(more)
        if self.full and (raw or self._dec.pending):
            self.truncated = True

    def _take(self, data: bytes) -> None:
        if not data:
            return
        self.length += len(data)
        self._sha.update(data)
        room = self.prefix_bytes - len(self._prefix)
        if room > 0:
            self._prefix += data[:room]

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def prefix(self) -> bytes:
        return bytes(self._prefix)


_TITLE_RE = re.compile(rb"<title[^>]{0,200}>(.{0,4096}?)</title", re.IGNORECASE | re.DOTALL)
_CHARSET_RE = re.compile(rb"charset=[\"']?([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)
_CTRL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HDR_CTRL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_WS_RE = re.compile(r"\s+")


def extract_title(body: bytes, content_type: str | None = None, limit: int = 512) -> str | None:
    """The page ``<title>``, unescaped, whitespace-collapsed, control characters removed."""
    m = _TITLE_RE.search(body[:65536])
    if not m:
        return None
    raw = m.group(1)
    charset = "utf-8"
    for src in ((content_type or "").encode("latin-1", "replace"), body[:2048]):
        cm = _CHARSET_RE.search(src)
        if cm:
            charset = cm.group(1).decode("ascii", "replace")
            break
    try:
        text = raw.decode(charset, "replace")
    except LookupError:
        text = raw.decode("utf-8", "replace")
    text = _CTRL_RE.sub("", html.unescape(text))
    text = _WS_RE.sub(" ", text).strip()
    return text[:limit] or None


def clean_header_text(value: bytes, limit: int = 4096) -> str:
    """Header bytes as text (latin-1, as HTTP defines), control characters removed, bounded."""
    return _HDR_CTRL_RE.sub("", value[:limit].decode("latin-1"))
