"""Unit tests for probe.targets: URL normalisation, CSV parsing and the shipped target lists."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import TargetError
from probe.targets import (
    MAX_LINE_CHARS,
    MAX_REPORTED_ERRORS,
    Target,
    load_targets,
    normalise_url,
    parse_targets,
    summarise,
    targets_from_urls,
    targets_sha256,
)

REPO = Path(__file__).resolve().parents[2]
TARGETS_DIR = REPO / "targets"
CORPUS_LISTS = Path("/work/shared/corpus/citizenlab-test-lists")

HEADER = "url,category_code,operator_cc,notes\n"

# ------------------------------------------------------------------------------------------
# normalise_url
# ------------------------------------------------------------------------------------------

NORMALISED = [
    # bare host gets https:// and a / path
    ("example.com", "https://example.com/"),
    ("  example.com  ", "https://example.com/"),
    ("example.com/path?q=1", "https://example.com/path?q=1"),
    ("//example.com/p", "https://example.com/p"),
    # scheme and host lower-case, path case kept
    ("HTTP://Example.COM/Path", "http://example.com/Path"),
    ("hTTpS://WWW.EXAMPLE.ORG", "https://www.example.org/"),
    # default ports dropped, other ports kept
    ("http://example.com:80/", "http://example.com/"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:443/", "http://example.com:443/"),
    ("https://example.com:80/", "https://example.com:80/"),
    ("https://example.com:8443", "https://example.com:8443/"),
    ("localhost:8080", "https://localhost:8080/"),
    ("https://example.com:/", "https://example.com/"),
    # fragment dropped, query kept
    ("https://example.com/a#frag", "https://example.com/a"),
    ("https://example.com/a?x=1&y=2#frag", "https://example.com/a?x=1&y=2"),
    ("https://example.com?q", "https://example.com/?q"),
    ("https://example.com/?", "https://example.com/"),
    # IDN to punycode
    ("bücher.de", "https://xn--bcher-kva.de/"),
    ("https://BÜCHER.de/", "https://xn--bcher-kva.de/"),
    ("https://пример.рф/", "https://xn--e1afmkfd.xn--p1ai/"),
    ("https://xn--bcher-kva.de/", "https://xn--bcher-kva.de/"),
    # non-ASCII and spaces in path and query are percent-encoded
    ("https://example.com/Straße", "https://example.com/Stra%C3%9Fe"),
    ("https://example.com/a b?c d", "https://example.com/a%20b?c%20d"),
    ("https://example.com/%7Euser", "https://example.com/%7Euser"),
    # IP literals
    ("http://[::1]:8080/x", "http://[::1]:8080/x"),
    ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
    ("https://[2001:DB8::1]", "https://[2001:db8::1]/"),
    ("https://[2001:db8::1]:443/", "https://[2001:db8::1]/"),
    ("1.2.3.4", "https://1.2.3.4/"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/"),
    # a trailing dot (fully qualified name) is kept
    ("https://example.com./", "https://example.com./"),
]


@pytest.mark.parametrize(("raw", "expected"), NORMALISED)
def test_normalise_url(raw: str, expected: str) -> None:
    assert normalise_url(raw) == expected
    assert normalise_url(expected) == expected


REJECTED = [
    ("", "empty"),
    ("   ", "empty"),
    ("https://user:pass@example.com/", "user info"),
    ("https://user@example.com/", "user info"),
    ("https://exa mple.com/", "whitespace"),
    ("https://exa\tmple.com/", "whitespace"),
    ("https://example.com/a\nb", "control character"),
    ("ftp://example.com/", "unsupported scheme"),
    ("file:///etc/passwd", "unsupported scheme"),
    ("mailto:someone@example.com", "unsupported"),
    ("javascript:alert(1)", "unsupported"),
    ("https:///path", "no host"),
    ("https://", "no host"),
    ("https://example.com:0/", "out of range"),
    ("https://example.com:65536/", "out of range"),
    ("https://example.com:http/", "invalid port"),
    ("https://example.com:8O80/", "invalid port"),
    ("https://[::1/", "unterminated"),
    ("https://[::g]/", "invalid IPv6"),
    ("https://[fe80::1%25eth0]/", "zone"),
    ("https://[::1]x/", "junk after IPv6"),
    ("https://::1/", "brackets"),
    ("https://999.1.1.1/", "invalid IPv4"),
    ("https://1.2.3/", "invalid IPv4"),
    ("https://a..b/", "invalid host name"),
    ("https://exa*mple.com/", "invalid host name"),
    ("https://ex\\ample.com/", "invalid host name"),
    ("https://xn--zz.de/", "punycode"),
    ("https://" + "a" * 64 + ".com/", "length"),
    ("https://" + ".".join(["abcdefghij"] * 24) + "/", "length"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTED)
def test_normalise_url_rejects(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normalise_url(raw)


@given(st.text(max_size=80))
@settings(max_examples=400, deadline=None)
def test_normalise_url_only_raises_value_error_and_is_idempotent(raw: str) -> None:
    try:
        once = normalise_url(raw)
    except ValueError:
        return
    assert normalise_url(once) == once
    assert once.startswith(("http://", "https://"))
    assert "#" not in once


_host_label = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9\-]{0,10}", fullmatch=True)
_url_like = st.builds(
    lambda scheme, labels, port, path, query, frag: (
        f"{scheme}{'.'.join(labels)}{port}{path}{query}{frag}"
    ),
    st.sampled_from(["", "http://", "https://", "HTTPS://", "//"]),
    st.lists(
        st.one_of(_host_label, st.sampled_from(["bücher", "пример", "例え"])),
        min_size=1,
        max_size=4,
    ),
    st.sampled_from(["", ":80", ":443", ":8080", ":"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=20).map(
        lambda s: "/" + s.replace("?", "").replace("#", "")
    ),
    st.sampled_from(["", "?", "?a=1", "?a=b c&d=é"]),
    st.sampled_from(["", "#", "#frag"]),
)


@given(_url_like)
@settings(max_examples=400, deadline=None)
def test_normalise_url_idempotent_on_url_like_input(raw: str) -> None:
    try:
        once = normalise_url(raw)
    except ValueError:
        return
    assert normalise_url(once) == once
    assert once.isascii()
    assert " " not in once


# ------------------------------------------------------------------------------------------
# parse_targets / load_targets
# ------------------------------------------------------------------------------------------


def test_parse_basic_columns() -> None:
    text = HEADER + "github.com,host,us,code hosting\nhttps://example.org/,,,\n"
    targets = parse_targets(text, "t.csv")
    assert targets == [
        Target("https://github.com/", "github.com", "HOST", "US", "code hosting", 2),
        Target("https://example.org/", "example.org", None, None, None, 3),
    ]
    assert targets[0].scheme == "https"


def test_url_column_alone_and_other_order() -> None:
    assert [t.url for t in parse_targets("url\nexample.com\n")] == ["https://example.com/"]
    t = parse_targets("notes,operator_cc,url\nhi,de,http://example.de/\n")[0]
    assert (t.url, t.operator_cc, t.notes, t.category_code) == (
        "http://example.de/",
        "DE",
        "hi",
        None,
    )


def test_citizenlab_format_extra_columns_ignored() -> None:
    text = (
        "url,category_code,category_description,date_added,source,notes\n"
        "https://www.example.com/,NEWS,News Media,2017-01-01,citizenlab,\n"
        'http://example.net/,HUMR,Human Rights Issues,2014-04-15,citizenlab,"a, b"\n'
    )
    targets = parse_targets(text)
    assert [(t.url, t.category_code, t.operator_cc, t.notes) for t in targets] == [
        ("https://www.example.com/", "NEWS", None, None),
        ("http://example.net/", "HUMR", None, "a, b"),
    ]


@pytest.mark.skipif(not CORPUS_LISTS.is_dir(), reason="corpus not available")
def test_real_citizenlab_lists_load() -> None:
    # Read (never copy) the Citizen Lab lists: their format must be accepted as it is.
    paths = sorted(p for p in CORPUS_LISTS.glob("*.csv") if not p.name.startswith("00-"))
    assert paths
    for path in paths:
        targets = load_targets(path)
        assert targets, path
        assert all(t.category_code for t in targets), path
        assert all(t.operator_cc is None for t in targets), path


def test_duplicates_dropped_keeping_first() -> None:
    text = HEADER + (
        "https://example.com/,NEWS,US,first\n"
        "HTTPS://EXAMPLE.COM:443/#x,HOST,GB,second\n"
        "example.com,,,third\n"
        "https://example.com/other,,,\n"
    )
    targets = parse_targets(text)
    assert [(t.url, t.notes, t.line) for t in targets] == [
        ("https://example.com/", "first", 2),
        ("https://example.com/other", None, 5),
    ]


def test_blank_lines_skipped_and_line_numbers_kept() -> None:
    text = HEADER + "\n\nexample.com,,,\n,,,\n" + '"multi\nline",,,\n' + "example.org,,,\n"
    with pytest.raises(TargetError) as info:
        parse_targets(text, "f.csv")
    # the multi-line quoted URL starts on line 6 and holds a newline: an error for line 6
    assert "f.csv:6:" in str(info.value)
    good = HEADER + "\n\nexample.com,,,\n,,,\nexample.org,,,\n"
    assert [t.line for t in parse_targets(good)] == [4, 6]


def test_errors_name_file_and_line() -> None:
    text = HEADER + (
        "https://ok.example/,,,\n"
        "https://user:pw@bad.example/,,,\n"
        "ftp://bad.example/,,,\n"
        "https://ok2.example/,NEWS,USA,\n"
        "https://ok3.example/,NE WS,,\n"
        ",NEWS,US,no url\n"
    )
    with pytest.raises(TargetError) as info:
        parse_targets(text, "list.csv")
    lines = str(info.value).splitlines()
    assert lines[0] == "list.csv: 5 invalid rows:"
    assert lines[1].strip().startswith("list.csv:3: user info")
    assert "bad.example" in lines[1]
    assert lines[2].strip().startswith("list.csv:4: unsupported scheme")
    assert lines[3].strip().startswith("list.csv:5: operator_cc must be a 2-letter")
    assert lines[4].strip().startswith("list.csv:6: invalid category_code")
    assert lines[5].strip() == "list.csv:7: empty url"


def test_at_most_twenty_errors_listed() -> None:
    text = HEADER + "".join(f"ftp://h{i}.example/,,,\n" for i in range(50))
    with pytest.raises(TargetError) as info:
        parse_targets(text, "many.csv")
    lines = str(info.value).splitlines()
    assert lines[0] == f"many.csv: 50 invalid rows (showing the first {MAX_REPORTED_ERRORS}):"
    assert len(lines) == 1 + MAX_REPORTED_ERRORS
    assert lines[1].strip().startswith("many.csv:2:")
    assert lines[-1].strip().startswith(f"many.csv:{MAX_REPORTED_ERRORS + 1}:")


def test_missing_url_column(tmp_path: Path) -> None:
    path = tmp_path / "nourl.csv"
    path.write_text("link,category_code\nhttps://example.com/,NEWS\n")
    with pytest.raises(TargetError, match=r"nourl\.csv:1: header has no 'url' column"):
        load_targets(path)


def test_header_after_blank_lines() -> None:
    assert parse_targets("\n\n" + HEADER + "example.com,,,\n")[0].line == 4


def test_header_only_gives_no_targets() -> None:
    assert parse_targets(HEADER) == []


@pytest.mark.parametrize("content", [b"", b"\n\n  \r\n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(TargetError, match=r"empty\.csv: empty file"):
        load_targets(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match=r"nope\.csv: no such file"):
        load_targets(tmp_path / "nope.csv")
    with pytest.raises(TargetError, match="is a directory"):
        load_targets(tmp_path)


@pytest.mark.parametrize(
    "content",
    [
        b"url\nexample.com\x00\n",
        bytes(range(256)) * 4,
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"\x1f\x8b\x08\x00\x12\x34\x56\x78\x00\x03",
    ],
)
def test_binary_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "blob.csv"
    path.write_bytes(content)
    with pytest.raises(TargetError) as info:
        load_targets(path)
    message = str(info.value)
    assert message.startswith(f"{path}: binary file")
    assert "\n" not in message


def test_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(
        b"\xef\xbb\xbfurl,category_code,operator_cc,notes\r\n"
        b"https://b\xc3\xbccher.de/,CULTR,DE,B\xc3\xbccher\r\n"
        b"example.com,,,\r\n"
    )
    targets = load_targets(path)
    assert [(t.url, t.notes, t.line) for t in targets] == [
        ("https://xn--bcher-kva.de/", "Bücher", 2),
        ("https://example.com/", None, 3),
    ]


def test_latin1_fallback(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(
        HEADER.encode() + "https://example.fr/,NEWS,FR,journal café\n".encode("latin-1")
    )
    (target,) = load_targets(path)
    assert target.notes == "journal café"


def test_old_mac_line_endings() -> None:
    text = HEADER.replace("\n", "\r") + "example.com,,,\rexample.org,,,\r"
    assert [(t.hostname, t.line) for t in parse_targets(text)] == [
        ("example.com", 2),
        ("example.org", 3),
    ]


def test_long_line_is_an_error_for_that_line(tmp_path: Path) -> None:
    long_url = "https://example.com/" + "a" * (MAX_LINE_CHARS + 10)
    path = tmp_path / "long.csv"
    path.write_text(HEADER + "example.org,,,\n" + long_url + ",,,\n" + "example.net,,,\n")
    with pytest.raises(TargetError) as info:
        load_targets(path)
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: 1 invalid row:"
    assert lines[1].strip() == f"{path}:3: line longer than {MAX_LINE_CHARS} characters"
    # just under the limit is fine
    ok = "https://example.com/" + "a" * (MAX_LINE_CHARS - 40)
    path.write_text(HEADER + ok + ",,,\r\n")
    assert load_targets(path)[0].url == ok


def test_max_rows(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text(HEADER + "".join(f"h{i}.example,,,\n" for i in range(11)))
    assert len(load_targets(path, max_rows=11)) == 11
    with pytest.raises(TargetError, match="more than 10 targets"):
        load_targets(path, max_rows=10)


def test_one_million_rows(tmp_path: Path) -> None:
    path = tmp_path / "million.csv"
    with path.open("w") as f:
        f.write(HEADER)
        f.writelines(f"https://s{i}.example.com/p?i={i},NEWS,US,\n" for i in range(1_000_000))
    targets = load_targets(path)
    assert len(targets) == 1_000_000
    assert targets[-1] == Target(
        "https://s999999.example.com/p?i=999999", "s999999.example.com", "NEWS", "US", None,
        1_000_001,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------
# command-line URLs, summaries, hashes
# ------------------------------------------------------------------------------------------


def test_targets_from_urls() -> None:
    targets = targets_from_urls(["example.com", "HTTPS://EXAMPLE.COM/", "http://[::1]:8080/"])
    assert [(t.url, t.hostname, t.line) for t in targets] == [
        ("https://example.com/", "example.com", None),
        ("http://[::1]:8080/", "::1", None),
    ]
    with pytest.raises(TargetError) as info:
        targets_from_urls(["example.com", "ftp://x.example/", "https://a@b.example/"])
    lines = str(info.value).splitlines()
    assert lines[0] == "command line: 2 invalid URLs:"
    assert "ftp://x.example/" in lines[1]
    assert "user info" in lines[2]


def test_summarise() -> None:
    targets = parse_targets(
        HEADER + "a.example,NEWS,US,\nb.example,NEWS,DE,\nhttp://c.example,HOST,,\n"
    )
    assert summarise(targets) == {
        "total": 3,
        "by_category_code": {"NEWS": 2, "HOST": 1},
        "by_operator_cc": {"(none)": 1, "DE": 1, "US": 1},
        "by_scheme": {"https": 2, "http": 1},
    }


def test_targets_sha256_stable_and_sensitive() -> None:
    a = parse_targets(HEADER + "a.example,NEWS,US,\nb.example,,,\n")
    reformatted = parse_targets(
        "url,operator_cc,category_code\n\nHTTPS://A.EXAMPLE:443,us,news\nb.example/"
    )
    assert targets_sha256(a) == targets_sha256(reformatted)
    assert len(targets_sha256(a)) == 64
    assert targets_sha256(a) != targets_sha256(list(reversed(a)))
    changed = parse_targets(HEADER + "a.example,NEWS,GB,\nb.example,,,\n")
    assert targets_sha256(a) != targets_sha256(changed)


# ------------------------------------------------------------------------------------------
# the shipped lists
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "minimum"), [("global.csv", 150), ("technology-access.csv", 80)])
def test_shipped_lists(name: str, minimum: int) -> None:
    path = TARGETS_DIR / name
    targets = load_targets(path)
    assert len(targets) >= minimum
    for t in targets:
        assert t.category_code, t
        assert t.operator_cc and len(t.operator_cc) == 2, t
    # written in normal form and without duplicates: every row survives as written
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["url"] for r in rows] == [t.url for t in targets]
    assert list(rows[0]) == ["url", "category_code", "operator_cc", "notes"]


def test_shipped_lists_do_not_overlap() -> None:
    global_urls = {t.url for t in load_targets(TARGETS_DIR / "global.csv")}
    tech_urls = {t.url for t in load_targets(TARGETS_DIR / "technology-access.csv")}
    assert not global_urls & tech_urls


@pytest.mark.skipif(not CORPUS_LISTS.is_dir(), reason="corpus not available")
def test_shipped_lists_use_citizenlab_codes() -> None:
    legend = CORPUS_LISTS / "00-LEGEND-new_category_codes.csv"
    with legend.open(newline="", encoding="utf-8") as f:
        codes = {row["New Code"].strip() for row in csv.DictReader(f)}
    for name in ("global.csv", "technology-access.csv"):
        used = {t.category_code for t in load_targets(TARGETS_DIR / name)}
        assert used <= codes, used - codes
