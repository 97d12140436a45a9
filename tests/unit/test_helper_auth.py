"""Tokens and rate limits of the control helper (pure, no clock, no network)."""

from __future__ import annotations

import math

import pytest

from probe.errors import ConfigError
from probe.helper.auth import (
    RateLimiter,
    TokenBucket,
    TokenSet,
    bearer_token,
    generate_token,
    parse_tokens,
    token_id,
)

A = "alpha-token-0123456789abcdef"
B = "bravo-token-0123456789abcdef"


def test_token_file_comments_blank_lines_and_duplicates():
    text = f"# helper tokens\n\n  {A}   # alice\n{B}\n{A}\n   # indented comment\n"
    assert parse_tokens(text) == (A, B)


def test_hash_inside_a_token_is_kept():
    tok = "abc#def0123456789abcdefgh"
    assert parse_tokens(tok + "\n") == (tok,)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no token"),
        ("# only a comment\n", "no token"),
        ("short\n", "length"),
        ("two words-0123456789abcdefgh\n", "one word"),
        ("tökén-0123456789abcdefghijkl\n", "printable ASCII"),
        ("x" * 600 + "\n", "length"),
    ],
)
def test_bad_token_files_name_the_line_but_never_the_token(text, fragment):
    with pytest.raises(ConfigError) as ei:
        parse_tokens(text, "tokens.txt")
    msg = str(ei.value)
    assert fragment in msg and msg.startswith("tokens.txt")
    for word in text.split():
        if len(word) >= 12:
            assert word not in msg


def test_generated_tokens_are_accepted_and_distinct():
    a, b = generate_token(), generate_token()
    assert a != b and parse_tokens(f"{a}\n{b}\n") == (a, b)


def test_token_id_is_short_stable_and_not_the_token():
    assert token_id(A) == token_id(A) != token_id(B)
    assert token_id(A).startswith("t-") and len(token_id(A)) == 12
    assert A[:8] not in token_id(A)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {A}", A),
        (f"bearer   {A}  ", A),
        (f"Bearer {A}".encode(), A),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {A}", None),
        (b"Bearer \xff\xfe", None),
        ("Bearer " + "x" * 1000, None),
    ],
)
def test_bearer_header_parsing(header, expected):
    assert bearer_token(header) == expected


def test_token_set_accepts_only_configured_tokens():
    ts = TokenSet([A, B])
    assert ts.check(f"Bearer {A}") == token_id(A)
    assert ts.check(f"Bearer {B}".encode()) == token_id(B)
    assert ts.check(f"Bearer {A}x") is None
    assert ts.check(f"Bearer {A[:-1]}") is None
    assert ts.check(None) is None
    assert A not in repr(ts) and len(ts) == 2


def test_token_set_needs_a_token():
    with pytest.raises(ConfigError):
        TokenSet([])


def test_bucket_grants_the_burst_then_refills_linearly():
    b = TokenBucket.full(capacity=60, rate=1.0, now=100.0)
    assert b.take(60, 100.0) == 0.0
    assert b.take(1, 100.0) == pytest.approx(1.0)
    assert b.take(10, 105.0) == pytest.approx(5.0)  # 5 refilled, 10 wanted
    assert b.take(5, 105.0) == 0.0
    assert b.take(61, 1e9) == math.inf  # larger than the bucket: never
    assert b.level == pytest.approx(60.0)  # refilled up to capacity, not beyond


def test_clock_going_backwards_does_not_mint_units():
    b = TokenBucket.full(10, 1.0, now=50.0)
    assert b.take(10, 50.0) == 0.0
    assert b.take(1, 40.0) > 0
    assert b.take(1, 50.0) > 0
    assert b.take(1, 51.0) == 0.0


def test_rate_limiter_is_per_token_and_refundable():
    rl = RateLimiter(per_minute=6)  # 0.1 URL/s
    assert rl.take("t-a", 6, 0.0) == 0.0
    assert rl.take("t-a", 1, 0.0) == pytest.approx(10.0)
    assert rl.take("t-b", 6, 0.0) == 0.0  # another token has its own bucket
    rl.refund("t-a", 2)
    assert rl.take("t-a", 2, 0.0) == 0.0
    assert rl.take("t-a", 7, 0.0) == math.inf
    rl.refund("t-unknown", 3)  # no bucket yet: nothing to refund, no error


def test_rate_limiter_rejects_nonsense():
    with pytest.raises(ConfigError):
        RateLimiter(0)
