"""Block-page, geoblock and challenge fingerprints: versioned data, pure matching.

The signatures live in a data file (``analysis/data/fingerprints.json``), not in code, so that
they can be reviewed, versioned and improved without touching the matcher, and so that old
datasets can be re-analysed when they improve (SPEC §4). Each signature says *what kind* of
page it recognises:

``geoblock``
    the site or its CDN refuses the visitor because of where the visitor is (Cloudflare 1009,
    CloudFront geo restriction, HTTP 451, "not available in your country", sanctions notices);
``censorship``
    a national, ISP or filtering-product block page (or a known block-page DNS answer);
    ``country`` names the blocking state when the page itself identifies it;
``challenge``
    a bot-check interstitial (Cloudflare "Just a moment...", Imperva, Akamai Bot Manager):
    never a denial on its own.

``needs_controls`` marks signatures that are not proof by themselves (the phrase can appear on
ordinary pages, or the page is not geo-specific): they count only when controls in other
countries received the page *without* the match.

Matching is pure and bounded.  Inputs are truncated (body 256 KiB, header values 8 KiB, 256
headers) and folded once (lower case, non-breaking spaces as spaces); ``contains`` signatures
are substring tests on the folded text.  Every regular expression is checked at load time to be
linear by construction (bounded repetitions of single characters only, no back-references or
look-arounds, a bounded backtracking product); it runs only when one of its anchor literals
(derived from the pattern) occurs, and then only in windows around the first 256 occurrences.
A 32 KiB body costs a few milliseconds and a hostile one cannot make matching slow.  Matching
works on the raw HTML (tags are not stripped, entities other than ``&nbsp;`` are not decoded),
so a phrase split by markup is not found.  Nothing here raises on odd input.
"""

from __future__ import annotations

import codecs
import html
import ipaddress
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from analysis._regex import MAX_ANCHOR_HITS as MAX_ANCHOR_HITS
from analysis._regex import _regex_problem, _TextMatcher
from probe.errors import ConfigError

__all__ = [
    "FINGERPRINTS_VERSION",
    "Fingerprint",
    "FingerprintSet",
    "Match",
    "extract_title",
    "load_fingerprints",
    "parse_blocked_by",
]

FINGERPRINTS_VERSION = 1
"""Version of the packaged data file; bump it whenever a signature is added, changed or removed."""

KINDS = frozenset({"geoblock", "censorship", "challenge"})
LOCATIONS = frozenset({"status", "header", "title", "body", "dns"})
MATCH_TYPES = frozenset({"contains", "prefix", "regex", "equals", "cidr"})
_ALLOWED: dict[str, frozenset[str]] = {
    "status": frozenset({"equals", "prefix", "regex"}),
    "header": frozenset({"contains", "prefix", "regex", "equals"}),
    "title": frozenset({"contains", "prefix", "regex", "equals"}),
    "body": frozenset({"contains", "prefix", "regex", "equals"}),
    "dns": frozenset({"contains", "prefix", "regex", "equals", "cidr"}),
}

MAX_BODY_CHARS = 256 << 10  # only the first 256 KiB are matched (stored prefixes: 32 KiB)
MAX_HEADER_VALUE = 8192
MAX_HEADERS = 256
MAX_HEADERS_JSON = 1 << 20
MAX_TITLE = 1024
TITLE_SCAN = 64_000  # the title is looked for in the first 64k characters
MAX_DNS_ANSWERS = 256
_CHARSET_SNIFF = 4096

_MAX_PATTERN = 1000  # longest allowed signature pattern (regexes: see analysis._regex)

_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")
_CC_RE = re.compile(r"[A-Z]{2}")
_STATUS_RE = re.compile(r"[1-5][0-9]{2}")
_TITLE_OPEN_RE = re.compile(r"<title\b[^>]{0,256}>", re.IGNORECASE)
_TITLE_CLOSE_RE = re.compile(r"</title", re.IGNORECASE)
_CHARSET_RE = re.compile(rb"charset\s{0,8}=\s{0,8}[\"']?([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)
_CTRL_TABLE = {c: " " for c in range(32)} | {0x7F: " "}


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """One signature: where to look, how to match, what it means and where it comes from."""

    id: str
    kind: str  # 'geoblock' | 'censorship' | 'challenge'
    location: str  # 'status' | 'header' | 'title' | 'body' | 'dns'
    match: str  # 'contains' | 'prefix' | 'regex' | 'equals' | 'cidr'
    pattern: str
    header: str | None = None
    country: str | None = None
    needs_controls: bool = False
    case_sensitive: bool = False
    source: str = ""


@dataclass(frozen=True, slots=True)
class Match:
    """One signature found in one response (or DNS answer set)."""

    fingerprint_id: str
    kind: str
    location: str
    country: str | None  # blocking country of a national block page (from the signature)
    extracted_cc: str | None  # a country code the page itself names (Cloudflare 1009)
    detail: str | None  # e.g. the blocked-by URL of a 451, the matched DNS answer
    needs_controls: bool


# --------------------------------------------------------------------------------------------
# Input normalisation (never raises)


def _as_text(value: object, limit: int) -> str | None:
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value[:limit]).decode("latin-1")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _normalise_headers(headers: object) -> list[tuple[str, str]]:
    """(lower-case name, value) pairs from pairs, a mapping, or the stored JSON string."""
    if headers is None:
        return []
    if isinstance(headers, (bytes, bytearray)):
        headers = bytes(headers[:MAX_HEADERS_JSON]).decode("utf-8", "replace")
    if isinstance(headers, str):
        if len(headers) > MAX_HEADERS_JSON:
            return []
        try:
            headers = json.loads(headers)
        except (ValueError, RecursionError):
            return []
    if isinstance(headers, Mapping):
        items: Iterable[Any] = itertools.islice(headers.items(), MAX_HEADERS)
    elif isinstance(headers, (list, tuple)):
        items = headers[:MAX_HEADERS]
    else:
        return []
    out: list[tuple[str, str]] = []
    for item in items:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            continue
        name = _as_text(item[0], 256)
        if not name:
            continue
        raw_values = item[1] if isinstance(item[1], (list, tuple)) else (item[1],)
        for raw in raw_values[:MAX_HEADERS]:
            value = _as_text(raw, MAX_HEADER_VALUE)
            if value is not None:
                out.append((name.strip().lower(), value))
        if len(out) >= MAX_HEADERS:
            break
    return out[:MAX_HEADERS]


def _text_codec(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    return info.name


def _declared_charset(raw: bytes, content_type: str | None) -> str | None:
    for src in ((content_type or "")[:512].encode("latin-1", "replace"), raw[:_CHARSET_SNIFF]):
        m = _CHARSET_RE.search(src)
        if m:
            return _text_codec(m.group(1).decode("ascii", "replace"))
    return None


def _decode_body(body: object, content_type: str | None) -> str:
    """The body as text.

    Valid UTF-8 (a multi-byte character cut at the end of a stored prefix is tolerated) is
    decoded as UTF-8 whatever the page declares; otherwise the declared charset (Content-Type
    header or ``<meta charset>``) is used if Python knows it, else UTF-8 with replacement.
    """
    if isinstance(body, str):
        return body[:MAX_BODY_CHARS]
    if not isinstance(body, (bytes, bytearray, memoryview)):
        return ""
    raw = bytes(body[:MAX_BODY_CHARS])
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(raw, final=False)
    except UnicodeDecodeError:
        pass
    charset = _declared_charset(raw, content_type)
    if charset and charset != "utf-8":
        try:
            return raw.decode(charset, "replace")
        except Exception:  # exotic codecs may raise anything; fall back to utf-8
            pass
    return raw.decode("utf-8", "replace")


def _clean_title(text: str) -> str | None:
    text = html.unescape(text[: MAX_TITLE * 4]).translate(_CTRL_TABLE)
    text = " ".join(text.split())[:MAX_TITLE]
    return text or None


def _title_from_text(text: str) -> str | None:
    opened = _TITLE_OPEN_RE.search(text)
    if opened is None:
        return None
    start = opened.end()
    window = text[start : start + MAX_TITLE * 4]
    closed = _TITLE_CLOSE_RE.search(window)
    if closed is not None:
        window = window[: closed.start()]
    else:
        lt = window.find("<")
        if lt >= 0:
            window = window[:lt]
    return _clean_title(window)


def extract_title(body: bytes | str, limit: int = TITLE_SCAN) -> str | None:
    """The page ``<title>`` from the first *limit* characters (unescaped, whitespace collapsed).

    Bounded and linear: one bounded search for the opening tag, one literal search for the
    closing tag; a missing closing tag ends the title at the next ``<``.
    """
    if isinstance(body, str):
        text = body[:limit]
    elif isinstance(body, (bytes, bytearray, memoryview)):
        text = _decode_body(bytes(body[:limit]), None)
    else:
        return None
    return _title_from_text(text)


def parse_blocked_by(link_header: str | None) -> str | None:
    """The target of the first ``rel="blocked-by"`` link in a ``Link`` header (RFC 7725/8288).

    Tolerates several comma-separated links, unquoted and multi-valued ``rel`` parameters and
    any case; returns None when there is none.  Input is bounded to 8 KiB.
    """
    if not isinstance(link_header, str):
        return None
    s = link_header[:MAX_HEADER_VALUE]
    pos = 0
    while True:
        lt = s.find("<", pos)
        if lt < 0:
            return None
        gt = s.find(">", lt + 1)
        if gt < 0:
            return None
        url = s[lt + 1 : gt].strip()
        params, pos = _link_params(s, gt + 1)
        for name, value in params:
            if name == "rel" and "blocked-by" in value.lower().split() and url:
                return url[:2048]


def _link_params(s: str, i: int) -> tuple[list[tuple[str, str]], int]:
    """Parse ``; name=value`` parameters from *i* up to the next top-level comma."""
    params: list[tuple[str, str]] = []
    current: list[str] = []
    in_quotes = False
    n = len(s)
    while i < n:
        c = s[i]
        if in_quotes:
            if c == '"':
                in_quotes = False
            else:
                current.append(c)
        elif c == '"':
            in_quotes = True
        elif c in ";,":
            _add_param(params, "".join(current))
            current = []
            if c == ",":
                return params, i + 1
        else:
            current.append(c)
        i += 1
    _add_param(params, "".join(current))
    return params, n


def _add_param(params: list[tuple[str, str]], text: str) -> None:
    name, eq, value = text.partition("=")
    if eq:
        params.append((name.strip().lower(), value.strip()))


# --------------------------------------------------------------------------------------------
# Matching


def _extracted_cc(m: re.Match[str] | None) -> str | None:
    if m is None or "cc" not in m.re.groupindex:
        return None
    value = m.group("cc")
    if value and len(value) == 2 and value.isascii() and value.isalpha():
        return value.upper()
    return None


class FingerprintSet:
    """A validated, precompiled set of signatures.

    Build it with :func:`load_fingerprints` (from a data file) or directly from
    :class:`Fingerprint` objects; invalid signatures raise :class:`~probe.errors.ConfigError`
    naming *source* and the entry id.
    """

    def __init__(
        self,
        fingerprints: Sequence[Fingerprint],
        version: int = FINGERPRINTS_VERSION,
        *,
        source: str = "<memory>",
    ) -> None:
        self.version = version
        self.source = source
        self.fingerprints: tuple[Fingerprint, ...] = tuple(fingerprints)
        self._status = _TextMatcher()
        self._title = _TextMatcher()
        self._body = _TextMatcher()
        self._dns = _TextMatcher()
        self._headers: dict[str, _TextMatcher] = {}
        self._cidrs: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        seen: set[str] = set()
        for index, fp in enumerate(self.fingerprints):
            problem = _validate(fp)
            if problem is None and fp.id in seen:
                problem = "duplicate id"
            if problem is not None:
                raise ConfigError(f"{source}: entry {fp.id or f'#{index}'}: {problem}")
            seen.add(fp.id)
            if fp.match == "cidr":
                self._cidrs.append((index, ipaddress.ip_network(fp.pattern)))
            elif fp.location == "header":
                name = (fp.header or "").lower()
                self._headers.setdefault(name, _TextMatcher()).add(index, fp)
            else:
                matcher = {
                    "status": self._status,
                    "title": self._title,
                    "body": self._body,
                    "dns": self._dns,
                }[fp.location]
                matcher.add(index, fp)

    def __len__(self) -> int:
        return len(self.fingerprints)

    def __repr__(self) -> str:
        return f"FingerprintSet(version={self.version}, n={len(self)}, source={self.source!r})"

    def counts(self) -> dict[str, int]:
        """Number of signatures per kind."""
        out = dict.fromkeys(sorted(KINDS), 0)
        for fp in self.fingerprints:
            out[fp.kind] += 1
        return out

    def match_response(
        self,
        status: int | None,
        headers: Sequence[tuple[str, str]] | str | None,
        title: str | None,
        body: bytes | str | None,
    ) -> list[Match]:
        """Every signature matching one HTTP response, in data-file order.

        *headers* are ``(name, value)`` pairs or the JSON string stored in ``http_headers``;
        *title* is the stored title (extracted from *body* when None); *body* is the stored
        body prefix (bytes: UTF-8 when valid, else the declared charset, else UTF-8 with
        replacement characters).
        """
        found: dict[int, re.Match[str] | None] = {}
        pairs = _normalise_headers(headers)
        if isinstance(status, int) and not isinstance(status, bool):
            self._status.scan(str(status), found)
        elif isinstance(status, str) and status.strip().isdigit():
            self._status.scan(status.strip()[:3], found)
        content_type = next((v for n, v in pairs if n == "content-type"), None)
        text = _decode_body(body, content_type)
        if isinstance(title, bytes):
            title = title[: MAX_TITLE * 4].decode("utf-8", "replace")
        title_text = (
            _clean_title(title) if isinstance(title, str) else _title_from_text(text[:TITLE_SCAN])
        )
        if title_text:
            self._title.scan(title_text, found)
        self._body.scan(text, found)
        for name, value in pairs:
            matcher = self._headers.get(name)
            if matcher is not None:
                matcher.scan(value, found)
        if not found:
            return []
        blocked_by = next(
            (u for u in (parse_blocked_by(v) for n, v in pairs if n == "link") if u), None
        )
        out = []
        for index in sorted(found):
            fp = self.fingerprints[index]
            detail = None
            if fp.location == "status" or (fp.location == "header" and fp.header == "link"):
                detail = blocked_by
            out.append(_make_match(fp, _extracted_cc(found[index]), detail))
        return out

    def match_dns(self, answers: Iterable[str] | None) -> list[Match]:
        """Every signature matching a DNS answer list (IP strings; names are matched as text)."""
        if answers is None:
            return []
        if isinstance(answers, (str, bytes)):
            answers = (answers,)
        hits: dict[int, str] = {}
        try:
            iterator = iter(answers)
        except TypeError:
            return []
        for raw in itertools.islice(iterator, MAX_DNS_ANSWERS):
            answer = _as_text(raw, 512)
            if not answer:
                continue
            answer = answer.strip()
            try:
                ip = ipaddress.ip_address(answer.split("%", 1)[0])
            except ValueError:
                ip = None
            if ip is not None:
                for index, net in self._cidrs:
                    if index not in hits and ip.version == net.version and ip in net:
                        hits[index] = answer
                text = ip.compressed
            else:
                text = answer.rstrip(".")
            found: dict[int, re.Match[str] | None] = {}
            self._dns.scan(text, found)
            for index in found:
                hits.setdefault(index, answer)
        return [_make_match(self.fingerprints[i], None, hits[i]) for i in sorted(hits)]

    def check_page(
        self,
        html: bytes,
        status: int | None = None,
        headers: Sequence[tuple[str, str]] | str | None = None,
    ) -> list[Match]:
        """Match a saved page (``res64 fingerprints check FILE.html``); the title is extracted."""
        return self.match_response(status, headers, None, html)


def _make_match(fp: Fingerprint, extracted_cc: str | None, detail: str | None) -> Match:
    return Match(
        fingerprint_id=fp.id,
        kind=fp.kind,
        location=fp.location,
        country=fp.country,
        extracted_cc=extracted_cc,
        detail=detail,
        needs_controls=fp.needs_controls,
    )


# --------------------------------------------------------------------------------------------
# Validation and loading


def _validate(fp: Fingerprint) -> str | None:
    """Why *fp* is invalid, or None."""
    if not isinstance(fp.id, str) or not _ID_RE.fullmatch(fp.id):
        return "id must be 1-80 characters of a-z 0-9 . _ - (starting with a letter or digit)"
    if fp.kind not in KINDS:
        return f"unknown kind {fp.kind!r} (expected one of {sorted(KINDS)})"
    if fp.location not in LOCATIONS:
        return f"unknown location {fp.location!r} (expected one of {sorted(LOCATIONS)})"
    if fp.match not in MATCH_TYPES:
        return f"unknown match {fp.match!r} (expected one of {sorted(MATCH_TYPES)})"
    if fp.match not in _ALLOWED[fp.location]:
        return f"match {fp.match!r} is not allowed for location {fp.location!r}"
    if not isinstance(fp.pattern, str) or not fp.pattern or len(fp.pattern) > _MAX_PATTERN:
        return "pattern must be a non-empty string of at most 1000 characters"
    if fp.location == "header":
        if not isinstance(fp.header, str) or not fp.header or fp.header != fp.header.lower():
            return "a header signature needs a lower-case header name"
    elif fp.header is not None:
        return "header is only allowed with location 'header'"
    if fp.country is not None and (
        not isinstance(fp.country, str) or not _CC_RE.fullmatch(fp.country)
    ):
        return f"country must be an upper-case ISO 3166-1 alpha-2 code, not {fp.country!r}"
    if not isinstance(fp.needs_controls, bool) or not isinstance(fp.case_sensitive, bool):
        return "needs_controls and case_sensitive must be booleans"
    if not isinstance(fp.source, str) or not fp.source.strip():
        return "source must say where the signature comes from"
    if fp.match in ("contains", "prefix") and len(fp.pattern.strip()) < 3:
        return "contains/prefix patterns must have at least 3 characters"
    if fp.location == "status" and fp.match == "equals" and not _STATUS_RE.fullmatch(fp.pattern):
        return f"status pattern must be a 3-digit HTTP status, not {fp.pattern!r}"
    if fp.match == "cidr":
        try:
            ipaddress.ip_network(fp.pattern)
        except ValueError as exc:
            return f"bad cidr: {exc}"
    if fp.match == "regex":
        try:
            rx = re.compile(fp.pattern, re.DOTALL | (0 if fp.case_sensitive else re.IGNORECASE))
        except re.error as exc:
            return f"bad regex: {exc}"
        problem = _regex_problem(fp.pattern)
        if problem:
            return f"unsafe regex: {problem}"
        if rx.search("") is not None:
            return "regex matches the empty string"
        if set(rx.groupindex) - {"cc"}:
            return "the only named group allowed is 'cc'"
    return None


_FIELD_NAMES = tuple(f.name for f in fields(Fingerprint))
_REQUIRED = ("id", "kind", "location", "match", "pattern", "source")


def _fingerprint_from_json(entry: object, index: int, label: str) -> Fingerprint:
    if not isinstance(entry, dict):
        raise ConfigError(f"{label}: entry #{index}: must be a JSON object")
    ident = entry.get("id") if isinstance(entry.get("id"), str) else f"#{index}"
    unknown = sorted(set(entry) - set(_FIELD_NAMES))
    if unknown:
        raise ConfigError(f"{label}: entry {ident}: unknown field(s) {', '.join(unknown)}")
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise ConfigError(f"{label}: entry {ident}: missing field(s) {', '.join(missing)}")
    for key in ("id", "kind", "location", "match", "pattern", "source"):
        if not isinstance(entry[key], str):
            raise ConfigError(f"{label}: entry {ident}: {key} must be a string")
    for key in ("header", "country"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ConfigError(f"{label}: entry {ident}: {key} must be a string or null")
    for key in ("needs_controls", "case_sensitive"):
        if key in entry and not isinstance(entry[key], bool):
            raise ConfigError(f"{label}: entry {ident}: {key} must be true or false")
    return Fingerprint(**entry)


def parse_fingerprints(text: str, label: str = "<string>") -> FingerprintSet:
    """Parse and validate a fingerprint document (the JSON format of the data file)."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{label}: invalid JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("fingerprints"), list):
        raise ConfigError(f"{label}: expected an object with a 'fingerprints' list")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{label}: 'version' must be a positive integer")
    fps = [_fingerprint_from_json(e, i, label) for i, e in enumerate(doc["fingerprints"])]
    return FingerprintSet(fps, version, source=label)


def load_fingerprints(path: str | Path | None = None) -> FingerprintSet:
    """Load and validate a fingerprint file (default: the packaged data file)."""
    if path is None:
        label = "analysis/data/fingerprints.json"
        ref = resources.files(__package__ or "analysis") / "data" / "fingerprints.json"
        try:
            text = ref.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{label}: cannot read the packaged fingerprints: {exc}") from exc
    else:
        label = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{label}: cannot read: {exc}") from exc
    return parse_fingerprints(text, label)
