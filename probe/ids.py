"""Identifiers: time-sortable random ids for measurements, runs and vantages."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _b32(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        out.append(_ALPHABET[n & 31])
        n >>= 5
    return "".join(reversed(out))


def new_id() -> str:
    """26-character ULID-like id: 48-bit milliseconds + 80 random bits."""
    return _b32(int(time.time() * 1000), 10) + _b32(secrets.randbits(80), 16)


def new_run_id(now: datetime | None = None) -> str:
    """``20261128T094500Z-3f9k2a``: readable start time plus randomness."""
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%SZ") + "-" + _b32(secrets.randbits(30), 6)


def new_vantage_id() -> str:
    return "v-" + _b32(secrets.randbits(60), 12)
