"""Unit tests for probe.geo: overrides, MaxMind DB files, the embedded database."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import random
import struct
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.errors import GeoError
from probe.geo import (
    NO_INFO,
    GeoInfo,
    GeoResolver,
    Override,
    is_public,
    load_overrides,
    open_geo,
    parse_ip,
    parse_overrides,
    record_fields,
)

HAS_GEOIP2FAST = importlib.util.find_spec("geoip2fast") is not None
needs_geoip2fast = pytest.mark.skipif(not HAS_GEOIP2FAST, reason="geoip2fast not installed")


class FakeEmbedded:
    """An in-memory stand-in for the embedded database, counting lookups."""

    def __init__(self, table: dict[str, tuple[str | None, str | None]]) -> None:
        self.table = table
        self.calls: list[str] = []

    def lookup(self, ip: str) -> tuple[str | None, str | None]:
        self.calls.append(ip)
        return self.table.get(ip, (None, None))


def resolver_with(
    overrides_csv: str = "",
    embedded: dict[str, tuple[str | None, str | None]] | None = None,
    readers: list[Any] | None = None,
) -> tuple[GeoResolver, FakeEmbedded, list[int]]:
    fake = FakeEmbedded(embedded or {})
    loads: list[int] = []

    def loader() -> FakeEmbedded:
        loads.append(1)
        return fake

    overrides = parse_overrides(overrides_csv, "test.csv") if overrides_csv else []
    resolver = GeoResolver(overrides, readers or [], embedded_loader=loader)
    return resolver, fake, loads


# ------------------------------------------------------------------------------------------
# overrides
# ------------------------------------------------------------------------------------------

OVERRIDES = """\
prefix,cc,asn,as_name
# loopback test world
127.0.0.0/8,ZZ,,loopback
127.0.0.0/24,US,AS64500,United Vantage
127.0.0.2/32,DE,64501,German Vantage
10.0.0.0/8,FR,64502,
::1/128,JP,64503,v6 loopback
2001:db8::/32,GB,64504,Doc
2001:db8:1::/48,IR,64505,Doc Sub
8.8.8.0/24,SE,64506,Override Beats Database
"""


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("127.0.0.2", GeoInfo("DE", 64501, "German Vantage", "override")),
        ("127.0.0.1", GeoInfo("US", 64500, "United Vantage", "override")),
        ("127.0.0.255", GeoInfo("US", 64500, "United Vantage", "override")),
        ("127.0.1.1", GeoInfo("ZZ", None, "loopback", "override")),
        ("127.255.255.254", GeoInfo("ZZ", None, "loopback", "override")),
        ("10.1.2.3", GeoInfo("FR", 64502, None, "override")),
        ("::1", GeoInfo("JP", 64503, "v6 loopback", "override")),
        ("[::1]", GeoInfo("JP", 64503, "v6 loopback", "override")),
        ("2001:db8::5", GeoInfo("GB", 64504, "Doc", "override")),
        ("2001:db8:1:2::5", GeoInfo("IR", 64505, "Doc Sub", "override")),
        ("2001:DB8:1::", GeoInfo("IR", 64505, "Doc Sub", "override")),
        ("2001:db8:2::1", GeoInfo("GB", 64504, "Doc", "override")),
        ("::ffff:127.0.0.2", GeoInfo("DE", 64501, "German Vantage", "override")),
        ("192.168.1.1", NO_INFO),
        ("::2", NO_INFO),
    ],
)
def test_overrides_longest_prefix(ip: str, expected: GeoInfo) -> None:
    resolver, _fake, loads = resolver_with(OVERRIDES)
    assert resolver.lookup(ip) == expected
    assert loads == []  # private addresses never load the embedded database


def test_override_beats_databases_and_private_addresses_skip_them() -> None:
    resolver, fake, _loads = resolver_with(
        OVERRIDES, embedded={"8.8.8.8": ("US", "GOOGLE"), "8.8.4.4": ("US", "GOOGLE")}
    )
    assert resolver.lookup("8.8.8.8") == GeoInfo("SE", 64506, "Override Beats Database", "override")
    assert resolver.lookup("8.8.4.4") == GeoInfo("US", None, "GOOGLE", "embedded")
    assert resolver.lookup("192.168.0.1") == NO_INFO
    assert fake.calls == ["8.8.4.4"]


def test_embedded_loaded_lazily_once() -> None:
    resolver, fake, loads = resolver_with(embedded={"9.9.9.9": ("CH", "QUAD9")})
    assert loads == []
    assert not resolver.embedded_loaded
    for ip in ["9.9.9.9", "9.9.9.9", "1.2.3.4", "2a00::1"]:
        resolver.lookup(ip)
    assert loads == [1]
    assert resolver.embedded_loaded
    assert fake.calls == ["9.9.9.9", "1.2.3.4", "2a00::1"]  # the repeat came from the cache


def test_embedded_load_failure_gives_nulls_not_exceptions() -> None:
    def broken() -> FakeEmbedded:
        raise OSError("corrupt data file")

    resolver = GeoResolver([], [], embedded_loader=broken)
    assert resolver.lookup("9.9.9.9") == NO_INFO
    assert resolver.embedded_error == "OSError: corrupt data file"
    assert resolver.describe()["embedded"]["error"] == "OSError: corrupt data file"


def test_no_embedded() -> None:
    resolver = GeoResolver([], [], embedded=False, embedded_loader=pytest.fail)
    assert resolver.lookup("8.8.8.8") == NO_INFO


def test_override_file_without_header_and_with_bom(tmp_path: Path) -> None:
    path = tmp_path / "ov.csv"
    path.write_bytes(b"\xef\xbb\xbf127.0.0.5/32,br,AS65000,Caf\xc3\xa9\r\n\r\n192.0.2.0/24,,,\r\n")
    rows = load_overrides(path)
    assert rows == [
        Override(ipaddress.ip_network("127.0.0.5/32"), "BR", 65000, "Café", 1),
        Override(ipaddress.ip_network("192.0.2.0/24"), None, None, None, 3),
    ]
    resolver = open_geo(overrides=path, embedded=False)
    assert resolver.lookup("127.0.0.5") == GeoInfo("BR", 65000, "Café", "override")
    # an override with empty fields still wins: it hides the address from the databases
    assert resolver.lookup("192.0.2.7") == GeoInfo(None, None, None, "override")
    assert resolver.override_count == 2


def test_override_header_in_any_order() -> None:
    rows = parse_overrides("as_name,prefix,cc\nName,198.51.100.0/24,nl\n")
    assert rows == [Override(ipaddress.ip_network("198.51.100.0/24"), "NL", None, "Name", 2)]


def test_bad_override_rows_name_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "prefix,cc,asn,as_name\n"
        "127.0.0.0/8,US,1,ok\n"
        "10.0.0.1/8,US,,\n"
        "not-a-prefix,US,,\n"
        "192.0.2.0/24,USA,,\n"
        "192.0.2.0/25,US,ASX,\n"
        "127.0.0.0/8,DE,,\n"
        ",US,,\n"
        "2001:db8::/129,US,,\n"
    )
    with pytest.raises(GeoError) as info:
        load_overrides(path)
    lines = [line.strip() for line in str(info.value).splitlines()]
    assert lines[0] == f"{path}: 7 invalid override rows:"
    assert lines[1] == f"{path}:3: host bits set in prefix '10.0.0.1/8' (did you mean 10.0.0.0/8?)"
    assert lines[2] == f"{path}:4: invalid prefix 'not-a-prefix'"
    assert lines[3].startswith(f"{path}:5: cc must be a 2-letter")
    assert lines[4].startswith(f"{path}:6: invalid asn 'ASX'")
    assert lines[5] == f"{path}:7: duplicate prefix 127.0.0.0/8 (first on line 2)"
    assert lines[6] == f"{path}:8: empty prefix"
    assert lines[7] == f"{path}:9: invalid prefix '2001:db8::/129'"


def test_many_bad_override_rows_are_capped() -> None:
    text = "prefix,cc,asn,as_name\n" + "".join(f"bad{i},US,,\n" for i in range(30))
    with pytest.raises(GeoError) as info:
        parse_overrides(text, "x.csv")
    lines = str(info.value).splitlines()
    assert lines[0] == "x.csv: 30 invalid override rows (showing the first 20):"
    assert len(lines) == 21


def test_unreadable_override_files(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match=r"missing\.csv: no such GeoIP override file"):
        open_geo(overrides=tmp_path / "missing.csv", embedded=False)
    with pytest.raises(GeoError, match="is a directory"):
        load_overrides(tmp_path)
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"\x00\x01\x02")
    with pytest.raises(GeoError, match=r"blob\.csv: binary file"):
        load_overrides(blob)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(GeoError, match=r"empty\.csv: empty file"):
        load_overrides(empty)


def test_prefix_matching_agrees_with_brute_force() -> None:
    rnd = random.Random(64)
    overrides: list[Override] = []
    seen: set[Any] = set()
    # nested prefixes around a few anchors, so that longest-prefix matters
    anchors4 = [rnd.getrandbits(32) for _ in range(8)]
    anchors6 = [(0x2 << 124) | rnd.getrandbits(125) for _ in range(8)]
    while len(overrides) < 600:
        if rnd.random() < 0.5:
            plen = rnd.randint(0, 32)
            net: Any = ipaddress.IPv4Network(
                (rnd.choice(anchors4) >> (32 - plen) << (32 - plen), plen)
            )
        else:
            plen = rnd.randint(0, 128)
            net = ipaddress.IPv6Network(
                (rnd.choice(anchors6) >> (128 - plen) << (128 - plen), plen)
            )
        if net not in seen:
            seen.add(net)
            overrides.append(Override(net, "ZZ", len(overrides), None))
    resolver = GeoResolver(overrides, [], embedded=False)

    def brute(addr: Any) -> int | None:
        best = None
        for ov in overrides:
            if (
                addr.version == ov.network.version
                and addr in ov.network
                and (best is None or ov.network.prefixlen > best.network.prefixlen)
            ):
                best = ov
        return None if best is None else best.asn

    for _ in range(1500):
        if rnd.random() < 0.5:
            addr: Any = ipaddress.IPv4Address(
                rnd.choice(anchors4) ^ rnd.getrandbits(rnd.randint(0, 32))
            )
        else:
            addr = ipaddress.IPv6Address(
                rnd.choice(anchors6) ^ rnd.getrandbits(rnd.randint(0, 128))
            )
        assert resolver.lookup(str(addr)).asn == brute(addr), addr


# ------------------------------------------------------------------------------------------
# bad input never raises
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip",
    ["", " ", "bogus", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1", "0x7f000001",
     "::g", "[::1", "1.2.3.4/24", "x" * 10_000, "８.８.８.８"],
)  # fmt: skip
def test_bad_ip_strings_give_nulls(ip: str) -> None:
    resolver, fake, _loads = resolver_with(embedded={ip: ("US", "X")})
    assert resolver.lookup(ip) == NO_INFO
    assert fake.calls == []


@pytest.mark.parametrize("value", [None, 5, 3.5, b"8.8.8.8", ["8.8.8.8"], {"a": 1}])
def test_non_string_input_gives_nulls(value: Any) -> None:
    resolver, fake, _loads = resolver_with(embedded={"8.8.8.8": ("US", "X")})
    assert resolver.lookup(value) == NO_INFO
    assert fake.calls == []


def test_address_objects_accepted() -> None:
    resolver, _fake, _loads = resolver_with(OVERRIDES)
    assert resolver.lookup(ipaddress.ip_address("127.0.0.2")).cc == "DE"
    assert resolver.lookup(ipaddress.ip_address("2001:db8:1::9")).cc == "IR"


@given(st.one_of(st.text(max_size=60), st.ip_addresses().map(str)))
@settings(max_examples=300, deadline=None)
def test_lookup_never_raises(text: str) -> None:
    resolver = GeoResolver(parse_overrides(OVERRIDES), [], embedded=False)
    assert isinstance(resolver.lookup(text), GeoInfo)


@pytest.mark.parametrize(
    ("ip", "public"),
    [
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("::ffff:8.8.8.8", True),
        ("127.0.0.1", False),
        ("10.1.1.1", False),
        ("100.64.0.1", False),
        ("169.254.1.1", False),
        ("192.0.2.1", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("::8.8.8.8", False),  # IPv4-compatible (deprecated): reserved
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("2001:db8::1", False),
    ],
)
def test_is_public(ip: str, public: bool) -> None:
    addr = parse_ip(ip)
    assert addr is not None
    assert is_public(addr) is public


def test_parse_ip_forms() -> None:
    assert parse_ip("[2001:DB8::1]") == ipaddress.IPv6Address("2001:db8::1")
    assert parse_ip("fe80::1%eth0") == ipaddress.IPv6Address("fe80::1")
    assert parse_ip(" 192.0.2.1 ") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip("::ffff:192.0.2.1") == ipaddress.IPv4Address("192.0.2.1")
    assert parse_ip("192.0.2.1:80") is None


def test_concurrent_lookups_agree() -> None:
    resolver, _fake, loads = resolver_with(
        OVERRIDES, embedded={f"1.1.1.{i}": ("AU", "NET") for i in range(50)}
    )
    ips = [f"1.1.1.{i}" for i in range(50)] + ["127.0.0.2", "::1", "bogus"] * 10
    expected = [resolver.lookup(ip) for ip in ips]
    resolver.cache_clear()
    results: list[list[GeoInfo]] = []

    def worker() -> None:
        results.append([resolver.lookup(ip) for ip in ips])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 4
    assert loads == [1]


# ------------------------------------------------------------------------------------------
# the embedded database (geoip2fast): pure in-memory lookups
# ------------------------------------------------------------------------------------------


@needs_geoip2fast
def test_embedded_lookup_of_well_known_addresses() -> None:
    before = {k: os.environ.get(k) for k in ("PYTHONWARNINGS", "PYTHONIOENCODING")}
    resolver = open_geo()
    google = resolver.lookup("8.8.8.8")
    assert google.source == "embedded"
    assert google.cc == "US"
    assert google.asn is None  # geoip2fast has AS names, not numbers
    assert google.as_name and "GOOGLE" in google.as_name.upper()
    v6 = resolver.lookup("2001:4860:4860::8888")
    assert (v6.cc, v6.source) == ("US", "embedded")
    ripe = resolver.lookup("193.0.6.139")  # RIPE NCC, Amsterdam
    assert ripe.cc == "NL"
    # private, loopback and reserved addresses get nothing from the database
    for ip in ["127.0.0.1", "10.0.0.1", "::1", "::8.8.8.8", "fe80::1", "192.0.2.1"]:
        assert resolver.lookup(ip) == NO_INFO, ip
    # importing geoip2fast sets PYTHONWARNINGS=ignore in os.environ: it must not leak
    assert {k: os.environ.get(k) for k in before} == before
    described = resolver.describe()["embedded"]
    assert described["package"] == "geoip2fast"
    assert described["source_info"]


@needs_geoip2fast
def test_override_beats_real_embedded(tmp_path: Path) -> None:
    path = tmp_path / "ov.csv"
    path.write_text("prefix,cc,asn,as_name\n8.8.8.8/32,CH,64500,Mapped\n127.0.0.0/8,DE,,\n")
    resolver = open_geo(overrides=path)
    assert resolver.lookup("8.8.8.8") == GeoInfo("CH", 64500, "Mapped", "override")
    assert resolver.lookup("8.8.4.4").cc == "US"
    assert resolver.lookup("127.0.0.9") == GeoInfo("DE", None, None, "override")


# ------------------------------------------------------------------------------------------
# MaxMind DB files: a minimal writer of the format (the maxminddb package only reads)
# ------------------------------------------------------------------------------------------


class _U16(int):
    pass


class _U32(int):
    pass


class _U64(int):
    pass


def _control(type_: int, size: int) -> bytes:
    if size < 29:
        first, extra = size, b""
    elif size < 29 + 256:
        first, extra = 29, bytes([size - 29])
    elif size < 285 + 65536:
        first, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        first, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_ <= 7:
        return bytes([(type_ << 5) | first]) + extra
    return bytes([first, type_ - 7]) + extra


def _encode(value: Any) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, float):
        return _control(3, 8) + struct.pack(">d", value)
    if isinstance(value, int):
        type_ = 5 if isinstance(value, _U16) else 9 if isinstance(value, _U64) else 6
        raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
        return _control(type_, len(raw)) + raw
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(_encode(k) + _encode(v) for k, v in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(v) for v in value)
    raise TypeError(value)


def write_mmdb(path: Path, records: dict[str, Any], database_type: str = "Test") -> None:
    """Write an IPv6 MaxMind DB (record size 24) mapping non-overlapping networks to records.

    IPv4 networks live at ``::a.b.c.d/(96+len)``, where readers look for them.
    """
    data = bytearray()
    nodes: list[list[tuple[str, int] | None]] = [[None, None]]
    for text, record in records.items():
        net = ipaddress.ip_network(text)
        value, plen = int(net.network_address), net.prefixlen
        if net.version == 4:
            plen += 96
        offset = len(data)
        data += _encode(record)
        node = 0
        for depth in range(plen):
            bit = (value >> (127 - depth)) & 1
            if depth == plen - 1:
                nodes[node][bit] = ("data", offset)
                break
            child = nodes[node][bit]
            if child is None:
                nodes.append([None, None])
                nodes[node][bit] = ("node", len(nodes) - 1)
                node = len(nodes) - 1
            else:
                assert child[0] == "node", "overlapping networks are not supported"
                node = child[1]
    count = len(nodes)

    def record_value(rec: tuple[str, int] | None) -> int:
        if rec is None:
            return count
        kind, n = rec
        return n if kind == "node" else count + 16 + n

    tree = b"".join(
        record_value(left).to_bytes(3, "big") + record_value(right).to_bytes(3, "big")
        for left, right in nodes
    )
    metadata = {
        "node_count": _U32(count),
        "record_size": _U16(24),
        "ip_version": _U16(6),
        "database_type": database_type,
        "languages": ["en"],
        "binary_format_major_version": _U16(2),
        "binary_format_minor_version": _U16(0),
        "build_epoch": _U64(1_700_000_000),
        "description": {"en": "res64-probe test database"},
    }
    path.write_bytes(
        tree + bytes(16) + bytes(data) + b"\xab\xcd\xefMaxMind.com" + _encode(metadata)
    )


MAXMIND_SHAPE = {
    "5.0.0.0/24": {
        "country": {"iso_code": "JP", "names": {"en": "Japan"}},
        "registered_country": {"iso_code": "JP"},
        "autonomous_system_number": _U32(64510),
        "autonomous_system_organization": "Example Japan",
    },
    "8.8.8.0/24": {"country": {"iso_code": "CA"}},
    "2a00:1450::/32": {"registered_country": {"iso_code": "IE"}},
}
FLAT_SHAPE = {
    "31.0.0.0/24": {"country_code": "br", "asn": "AS64520", "as_name": "Exemplo"},
    "9.9.9.0/24": {"country": "Switzerland", "country_code": "CH", "asn": _U32(19281)},
    "8.8.8.0/24": {"autonomous_system_number": _U32(15169), "autonomous_system_organization": "G"},
}


@pytest.fixture
def mmdb_files(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "maxmind.mmdb", tmp_path / "flat.mmdb"
    write_mmdb(first, MAXMIND_SHAPE, "GeoLite2-Country-Test")
    write_mmdb(second, FLAT_SHAPE, "ipinfo-lite-test")
    return first, second


def test_mmdb_writer_round_trips(mmdb_files: tuple[Path, Path]) -> None:
    import maxminddb

    with maxminddb.open_database(str(mmdb_files[0])) as reader:
        assert reader.metadata().database_type == "GeoLite2-Country-Test"
        assert reader.get("5.0.0.9") == {
            "country": {"iso_code": "JP", "names": {"en": "Japan"}},
            "registered_country": {"iso_code": "JP"},
            "autonomous_system_number": 64510,
            "autonomous_system_organization": "Example Japan",
        }
        assert reader.get("5.0.1.1") is None


def test_mmdb_lookups_and_shapes(mmdb_files: tuple[Path, Path]) -> None:
    resolver = open_geo(mmdb_files[0], embedded=False)
    assert resolver.lookup("5.0.0.200") == GeoInfo("JP", 64510, "Example Japan", "mmdb")
    assert resolver.lookup("2a00:1450:4001::1") == GeoInfo("IE", None, None, "mmdb")
    assert resolver.lookup("192.0.2.1") == NO_INFO
    assert resolver.lookup("4.255.255.1") == NO_INFO
    flat = open_geo(mmdb_files[1], embedded=False)
    assert flat.lookup("31.0.0.1") == GeoInfo("BR", 64520, "Exemplo", "mmdb")
    assert flat.lookup("9.9.9.9") == GeoInfo("CH", 19281, None, "mmdb")
    described = resolver.describe()["mmdb"]
    assert described == [
        {
            "path": str(mmdb_files[0]),
            "database_type": "GeoLite2-Country-Test",
            "build_epoch": 1_700_000_000,
        }
    ]
    resolver.close()
    assert resolver.lookup("5.0.0.200") == NO_INFO


def test_mmdb_precedence_and_merge(mmdb_files: tuple[Path, Path], tmp_path: Path) -> None:
    fake = FakeEmbedded(
        {"8.8.8.8": ("US", "GOOGLE"), "9.9.9.9": ("CH", "QUAD9"), "1.0.0.1": ("AU", "CF")}
    )
    overrides = parse_overrides("prefix,cc\n5.0.0.7/32,KR\n")
    import maxminddb

    readers = [maxminddb.open_database(str(p)) for p in mmdb_files]
    resolver = GeoResolver(overrides, readers, embedded_loader=lambda: fake)
    try:
        # override > mmdb
        assert resolver.lookup("5.0.0.7") == GeoInfo("KR", None, None, "override")
        # country from the first file, AS data from the second
        assert resolver.lookup("8.8.8.8") == GeoInfo("CA", 15169, "G", "mmdb")
        # both fields found in the mmdb files: the embedded database is not asked
        assert resolver.lookup("9.9.9.9") == GeoInfo("CH", 19281, None, "mmdb")
        # unknown to the files: the embedded database answers
        assert resolver.lookup("1.0.0.1") == GeoInfo("AU", None, "CF", "embedded")
        assert fake.calls == ["1.0.0.1"]
    finally:
        resolver.close()


def test_mmdb_country_only_takes_as_name_from_embedded(mmdb_files: tuple[Path, Path]) -> None:
    fake = FakeEmbedded({"8.8.8.8": ("US", "GOOGLE")})
    import maxminddb

    resolver = GeoResolver(
        [], [maxminddb.open_database(str(mmdb_files[0]))], embedded_loader=lambda: fake
    )
    assert resolver.lookup("8.8.8.8") == GeoInfo("CA", None, "GOOGLE", "mmdb")
    resolver.close()


def test_unreadable_mmdb(tmp_path: Path) -> None:
    with pytest.raises(GeoError, match=r"nope\.mmdb: no such GeoIP database file"):
        open_geo(tmp_path / "nope.mmdb", embedded=False)
    junk = tmp_path / "junk.mmdb"
    junk.write_bytes(b"this is not a database" * 10)
    with pytest.raises(GeoError) as info:
        open_geo(junk, embedded=False)
    assert str(info.value).startswith(f"{junk}: not a valid MaxMind DB")
    assert "\n" not in str(info.value)
    good, empty = tmp_path / "good.mmdb", tmp_path / "empty.mmdb"
    write_mmdb(good, FLAT_SHAPE)
    empty.write_bytes(b"")
    with pytest.raises(GeoError, match=r"empty\.mmdb: not a valid MaxMind DB"):
        open_geo([good, empty], embedded=False)
    with pytest.raises(GeoError, match="is a directory"):
        open_geo(tmp_path, embedded=False)


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"country": {"iso_code": "DE"}}, ("DE", None, None)),
        ({"registered_country": {"iso_code": "FR"}}, ("FR", None, None)),
        ({"country": "United States", "country_code": "US"}, ("US", None, None)),
        ({"country": "gb"}, ("GB", None, None)),
        ({"asn": "AS13335", "as_name": "CLOUDFLARENET"}, (None, 13335, "CLOUDFLARENET")),
        ({"autonomous_system_number": 3320}, (None, 3320, None)),
        ({"country_code": "Germany", "asn": "ASX", "as_name": " "}, (None, None, None)),
        ({"asn": 2**40}, (None, None, None)),
        ({"asn": True}, (None, None, None)),
        (None, (None, None, None)),
        ([1, 2], (None, None, None)),
    ],
)
def test_record_fields(record: Any, expected: tuple[Any, ...]) -> None:
    assert record_fields(record) == expected
