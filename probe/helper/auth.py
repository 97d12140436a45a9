"""Bearer tokens and per-token rate limits of the control helper (pure: no I/O, no clock).

Token file format (``--token-file``)::

    # one token per line; blank lines and comments are ignored
    3q2+7w...long random string...   # a trailing comment after whitespace is allowed too

A token is 20-512 printable ASCII characters without spaces (``generate_token`` makes a
43-character one).  Tokens are compared with :func:`hmac.compare_digest` on their SHA-256
digests, against every configured token, so that neither the length nor the position of a
match shows in the timing.  Logs and rate limits identify a client by :func:`token_id`, a short
hash of its token: the helper never logs client addresses.

Rate limits are token buckets counted in URLs: a bucket holds at most ``per_minute`` URLs and
refills at ``per_minute / 60`` URLs per second.  Time is passed in by the caller (``now``,
seconds on any monotonic clock), which keeps this module testable without sleeping.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from probe.errors import ConfigError

MIN_TOKEN_CHARS = 20
MAX_TOKEN_CHARS = 512
MAX_TOKENS = 10_000
_TOKEN_RE = re.compile(r"[\x21-\x7e]+")


def generate_token() -> str:
    """A new random token (256 bits, URL-safe base64) for a token file."""
    return secrets.token_urlsafe(32)


def token_id(token: str) -> str:
    """Short, non-reversible identity of a token for logs and rate limits (``t-`` + 10 hex)."""
    return "t-" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()[:10]


def parse_tokens(text: str, source: str = "<tokens>") -> tuple[str, ...]:
    """Tokens of a token file's text; :class:`ConfigError` naming the line of a bad one.

    The error message never contains the token itself.
    """
    out: list[str] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        body = _strip_comment(stripped).strip()
        if not _TOKEN_RE.fullmatch(body):
            raise ConfigError(f"{source}:{n}: a token is one word of printable ASCII characters")
        if not MIN_TOKEN_CHARS <= len(body) <= MAX_TOKEN_CHARS:
            raise ConfigError(
                f"{source}:{n}: token length must be {MIN_TOKEN_CHARS}-{MAX_TOKEN_CHARS} "
                "characters (make one with a random generator, e.g. `openssl rand -base64 32`)"
            )
        if body not in seen:
            seen.add(body)
            out.append(body)
        if len(out) > MAX_TOKENS:
            raise ConfigError(f"{source}: more than {MAX_TOKENS} tokens")
    if not out:
        raise ConfigError(f"{source}: no token (one token per line; '#' starts a comment)")
    return tuple(out)


def _strip_comment(line: str) -> str:
    """Drop a comment that follows whitespace (``TOKEN  # alice``); '#' inside a token stays."""
    m = re.search(r"\s#", line)
    return line[: m.start()] if m else line


class TokenSet:
    """The accepted tokens; :meth:`check` maps an ``Authorization`` header to a token id."""

    __slots__ = ("_digests",)

    def __init__(self, tokens: Iterable[str]) -> None:
        self._digests: tuple[tuple[bytes, str], ...] = tuple(
            (hashlib.sha256(t.encode()).digest(), token_id(t)) for t in tokens
        )
        if not self._digests:
            raise ConfigError("the helper needs at least one token")

    def __len__(self) -> int:
        return len(self._digests)

    def __repr__(self) -> str:  # never show tokens
        return f"TokenSet({len(self._digests)} tokens)"

    def check(self, authorization: bytes | str | None) -> str | None:
        """The token id for a valid ``Bearer`` header, else ``None``.

        Compares against every token (no early exit) in constant time per token.
        """
        given = bearer_token(authorization)
        if given is None:
            return None
        digest = hashlib.sha256(given.encode("utf-8", "replace")).digest()
        found: str | None = None
        for known, tid in self._digests:
            if hmac.compare_digest(digest, known) and found is None:
                found = tid
        return found


def bearer_token(authorization: bytes | str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header value (``None`` if malformed)."""
    if authorization is None:
        return None
    if isinstance(authorization, bytes):
        try:
            authorization = authorization.decode("ascii")
        except UnicodeDecodeError:
            return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or len(value) > MAX_TOKEN_CHARS:
        return None
    return value


# --------------------------------------------------------------------------------------------
# Rate limits


@dataclass(slots=True)
class TokenBucket:
    """A token bucket of ``capacity`` units refilled at ``rate`` units per second."""

    capacity: float
    rate: float
    level: float
    updated: float

    @classmethod
    def full(cls, capacity: float, rate: float, now: float) -> TokenBucket:
        return cls(capacity, rate, capacity, now)

    def refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def take(self, n: float, now: float) -> float:
        """Take ``n`` units: 0.0 when granted, else seconds until ``n`` would be available.

        A request larger than the capacity can never be granted: ``inf``.
        """
        self.refill(now)
        if n > self.capacity:
            return float("inf")
        if n <= self.level:
            self.level -= n
            return 0.0
        if self.rate <= 0:
            return float("inf")
        return (n - self.level) / self.rate


class RateLimiter:
    """One :class:`TokenBucket` per token id: at most ``per_minute`` URLs a minute each."""

    __slots__ = ("_buckets", "per_minute")

    def __init__(self, per_minute: int) -> None:
        if per_minute < 1:
            raise ConfigError(f"rate limit must be at least 1 URL per minute (got {per_minute})")
        self.per_minute = per_minute
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, tid: str, n: int, now: float) -> float:
        """Charge ``n`` URLs to ``tid``: 0.0 when allowed, else seconds to wait (``inf``:
        never, the request is larger than the per-minute budget)."""
        bucket = self._buckets.get(tid)
        if bucket is None:
            # Token ids come from a fixed TokenSet, so this dict stays bounded.
            bucket = self._buckets[tid] = TokenBucket.full(
                self.per_minute, self.per_minute / 60.0, now
            )
        return bucket.take(n, now)

    def refund(self, tid: str, n: int) -> None:
        """Give back ``n`` URLs that were charged but not measured (refused targets)."""
        bucket = self._buckets.get(tid)
        if bucket is not None:
            bucket.level = min(bucket.capacity, bucket.level + n)


__all__ = [
    "RateLimiter",
    "TokenBucket",
    "TokenSet",
    "bearer_token",
    "generate_token",
    "parse_tokens",
    "token_id",
]
