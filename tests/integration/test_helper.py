"""The control helper on loopback: TLS from a lab CA, tokens, limits, refusals, streaming.

The helper and its client talk over 127.0.0.1 (port 0); the sites it measures are the demo
world's.  A helper "killed" mid-stream is a cancelled server scope while the client reads.
"""

from __future__ import annotations

import dataclasses
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import trio

from probe.config import Limits, MeasureConfig, Timeouts, Vantage
from probe.errors import ConfigError
from probe.geo import open_geo
from probe.helper import (
    HelperConfig,
    decode_row,
    fetch_controls,
    load_tokens,
    rows_to_measurements,
    serve_helper,
    systemd_unit,
)
from probe.helper import client as C
from probe.helper.server import (
    encode_value,
    parse_measure_request,
    record_line,
    refusal_reason,
)
from probe.lab import LabPKI, demo_world, run_world
from probe.measure import Context, measure_target
from probe.records import Measurement
from probe.schema import MEASUREMENTS
from probe.steps.dns import ResolverSpec
from probe.steps.http import is_private
from probe.targets import Target, load_targets

TOKEN = "test-token-0123456789abcdefghij"
OTHER = "other-token-0123456789abcdefghi"
TIMEOUTS = Timeouts(dns=2.0, tcp=2.0, tls=3.0, http=5.0, target=15.0)


# --------------------------------------------------------------------------------------------
# fixtures and helpers


@dataclasses.dataclass
class Tls:
    server: ssl.SSLContext
    ca_bundle: Path


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    pki = LabPKI("res64 helper test")
    return Tls(
        server=pki.server_context(["127.0.0.1", "localhost"]),
        ca_bundle=pki.write_ca(tmp_path / "helper-ca.pem"),
    )


@pytest.fixture
async def world(tmp_path: Path):
    async with run_world(demo_world(), tmp_path / "world") as w:
        yield w


def _vantage(world, name: str, *, control: bool) -> Vantage:
    v = world.spec.vantage(name)
    prefix = "helper-" if control else "direct-"
    return Vantage(prefix + v.name, v.cc, v.asn, v.as_name, v.source_ip, is_control=control)


def _measure_cfg(world=None, vantage: Vantage | None = None, **kw) -> MeasureConfig:
    return MeasureConfig(
        out="-",
        vantage=vantage or Vantage("helper-test", "DE", 64503, "Lab DE", is_control=True),
        resolver=world.resolver_arg() if world else "127.0.0.1:9",
        control_resolver=world.control_resolver_arg() if world else None,
        ca_bundle=world.ca_bundle if world else None,
        timeouts=kw.pop("timeouts", TIMEOUTS),
        limits=Limits(max_body_bytes=256 * 1024, max_raw_bytes=512 * 1024),
        loopback_only=True,
        **kw,
    )


def _helper_cfg(tls: Tls, measure: MeasureConfig, world=None, **kw) -> HelperConfig:
    geo = open_geo(None, world.overrides_csv if world else None, embedded=False)
    return HelperConfig(
        measure=measure,
        tokens=(TOKEN, OTHER),
        host="127.0.0.1",
        port=0,
        ssl_context=tls.server,
        geo=geo,
        **kw,
    )


@asynccontextmanager
async def running_helper(cfg: HelperConfig) -> AsyncIterator[tuple[str, trio.CancelScope]]:
    """Serve ``cfg`` on 127.0.0.1:0; yield its base URL and the scope that kills it."""
    scope = trio.CancelScope()

    async def run(task_status=trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            await serve_helper(cfg, task_status=task_status)

    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(run)
        yield f"https://{host}:{port}", scope
        scope.cancel()


async def _collect(url: str, urls: list[str], tls: Tls, token: str = TOKEN, **kw):
    rows = []
    async with fetch_controls(
        url, token, urls, ca_bundle=tls.ca_bundle, timeout=kw.pop("timeout", 20.0), **kw
    ) as fetch:
        async for row in fetch:
            rows.append(row)
    return rows, fetch.outcome


def _https(tls: Tls) -> httpx.AsyncClient:
    return httpx.AsyncClient(verify=ssl.create_default_context(cafile=tls.ca_bundle), timeout=10)


async def _free_port() -> int:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --------------------------------------------------------------------------------------------
# the service


async def test_health_needs_no_token_and_keeps_the_connection(tls):
    async with running_helper(_helper_cfg(tls, _measure_cfg())) as (url, _), _https(tls) as http:
        first = await http.get(url + "/v1/health")
        second = await http.get(url + "/v1/health?probe=1")
    assert first.status_code == second.status_code == 200
    body = first.json()
    assert body["service"] == "res64-helper" and body["country"] == "DE" and body["asn"] == 64503
    assert body["version"] and body["schema_version"] >= 1


async def test_missing_or_wrong_token_is_401(tls):
    async with running_helper(_helper_cfg(tls, _measure_cfg())) as (url, _):
        async with _https(tls) as http:
            bare = await http.post(url + "/v1/measure", json={"urls": ["http://127.0.0.1:9/"]})
            basic = await http.post(
                url + "/v1/measure",
                json={"urls": ["http://127.0.0.1:9/"]},
                headers={"Authorization": f"Basic {TOKEN}"},
            )
        rows, outcome = await _collect(url, ["http://127.0.0.1:9/", "http://127.0.0.2:9/"], tls,
                                       token=TOKEN + "x")  # fmt: skip
    assert bare.status_code == basic.status_code == 401
    assert bare.headers["www-authenticate"].startswith("Bearer")
    assert bare.json()["error"] == "unauthorized"
    assert rows == []
    assert outcome.error == C.UNAUTHORIZED and outcome.status == 401
    assert outcome.missing == 2 and not outcome.complete
    assert "controls missing: 2" in outcome.describe()


async def test_too_many_urls_is_413_and_the_client_batches(tls):
    urls = [f"http://127.0.0.1:9/{i}" for i in range(5)]
    cfg = _helper_cfg(tls, _measure_cfg(), max_urls=3, allow_private=True)
    async with running_helper(cfg) as (url, _):
        rows, outcome = await _collect(url, urls, tls, batch_size=10)
        assert outcome.error == C.TOO_MANY_URLS and outcome.status == 413
        assert "at most 3" in (outcome.message or "") and outcome.missing == 5 and rows == []
        # the same URLs in batches the helper accepts
        rows, outcome = await _collect(url, urls, tls, batch_size=3)
        async with _https(tls) as http:
            big = await http.post(
                url + "/v1/measure",
                content=b'{"urls": ["' + b"a" * (300 * 1024) + b'"]}',
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
    assert outcome.complete and outcome.received == 5
    assert {r["url"] for r in rows} == set(urls)
    assert all(r["failure"] == "connection_refused" for r in rows)
    assert big.status_code == 413 and big.json()["error"] == "body_too_large"


async def test_rate_limit_is_429_per_token(tls):
    cfg = _helper_cfg(tls, _measure_cfg(), rate_per_minute=3, allow_private=True)
    urls = [f"http://127.0.0.1:9/{i}" for i in range(3)]
    async with running_helper(cfg) as (url, _):
        _, first = await _collect(url, urls, tls)
        _, second = await _collect(url, ["http://127.0.0.1:9/again"], tls)
        _, other = await _collect(url, ["http://127.0.0.1:9/other"], tls, token=OTHER)
        _, huge = await _collect(url, [f"http://127.0.0.1:9/h{i}" for i in range(4)], tls,
                                 token=OTHER)  # fmt: skip
    assert first.complete and first.received == 3
    assert second.error == C.RATE_LIMITED and second.status == 429
    assert second.retry_after is not None and 0 < second.retry_after <= 60
    assert other.complete  # another token has its own budget
    assert huge.error == C.RATE_LIMITED and huge.retry_after is None  # can never fit


async def test_bad_requests_are_answered_with_json_errors(tls):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with running_helper(_helper_cfg(tls, _measure_cfg())) as (url, _), _https(tls) as http:
        not_json = await http.post(url + "/v1/measure", content=b"{nope", headers=auth)
        not_list = await http.post(url + "/v1/measure", json={"urls": "x"}, headers=auth)
        empty = await http.post(url + "/v1/measure", json={"urls": []}, headers=auth)
        bad_url = await http.post(url + "/v1/measure", json={"urls": ["ftp://x/"]}, headers=auth)
        get = await http.get(url + "/v1/measure", headers=auth)
        nowhere = await http.get(url + "/admin")
        huge = await http.get(url + "/v1/health", headers={"X-Big": "a" * 40_000})
    statuses = [r.status_code for r in (not_json, not_list, empty, bad_url, get, nowhere, huge)]
    assert statuses == [400, 400, 400, 400, 405, 404, 431]
    assert [r.json()["error"] for r in (not_json, empty, bad_url)] == [
        "bad_json", "no_urls", "bad_urls",
    ]  # fmt: skip


async def test_private_targets_are_refused_without_allow_private(tls, world):
    v = _vantage(world, "de-1", control=True)
    cfg = _helper_cfg(tls, _measure_cfg(world, v), world)
    urls = [
        world.url_for("open-news"),  # a name the helper's resolver maps to 127.20.0.1
        "http://127.0.0.1:9/",
        "http://10.1.2.3/",  # refused before any packet: no DNS, no connect
        "http://[::1]:9/",
        "http://169.254.169.254/latest/meta-data/",
    ]
    async with running_helper(cfg) as (url, _):
        rows, outcome = await _collect(url, urls, tls)
    assert rows == []
    assert outcome.error is None, outcome.message  # the stream itself completed
    assert outcome.missing == len(urls)
    assert len(outcome.refused) == len(urls)
    assert set(outcome.refused.values()) == {"private_target"}


def test_refusal_reason_is_pure_and_checks_every_answer():
    t = Target("https://example.org/", "example.org", None, None, None, None)
    assert refusal_reason(t, ["93.184.215.14"], is_private) is None
    assert refusal_reason(t, ["93.184.215.14", "192.168.1.1"], is_private) == "private_target"
    assert refusal_reason(t, ["::ffff:10.0.0.1"], is_private) == "private_target"
    assert refusal_reason(t, [], is_private) is None  # no answer: the measurement says why
    local = Target("http://db.localhost/", "db.localhost", None, None, None, None)
    assert refusal_reason(local, [], is_private) == "private_target"


async def test_helper_killed_mid_stream_leaves_the_rest_missing(tls, world):
    # From CU, exchange-rates swallows the TLS handshake: it cannot finish before the kill.
    v = _vantage(world, "cu-1", control=True)
    slow = dataclasses.replace(TIMEOUTS, tls=60.0, target=120.0)
    cfg = _helper_cfg(tls, _measure_cfg(world, v, timeouts=slow), world, allow_private=True)
    fast = [world.url_for("open-news"), world.url_for("cloud-docs")]
    hanging = world.url_for("exchange-rates")
    got = []
    async with running_helper(cfg) as (url, kill):
        with trio.fail_after(60):  # a hang here is a bug, not slowness
            async with fetch_controls(
                url, TOKEN, [*fast, hanging], ca_bundle=tls.ca_bundle, timeout=30
            ) as fetch:
                async for row in fetch:
                    got.append(row)
                    if len(got) == len(fast):
                        kill.cancel()
    outcome = fetch.outcome
    assert sorted(r["url"] for r in got) == sorted(fast)
    assert outcome.error == C.STREAM_BROKEN
    assert outcome.received == 2 and outcome.missing == 1
    assert outcome.missing_urls == [hanging]


async def test_wire_format_heartbeats_while_a_measurement_runs(tls, world):
    # From CU, exchange-rates never answers the TLS handshake: the row cannot come before the
    # TLS timeout (1 s), and the heartbeat (50 ms) must fill the silence.
    v = _vantage(world, "cu-1", control=True)
    short = dataclasses.replace(TIMEOUTS, tls=1.0)
    cfg = _helper_cfg(tls, _measure_cfg(world, v, timeouts=short), world, allow_private=True,
                      heartbeat=0.05)  # fmt: skip
    target = world.url_for("exchange-rates")
    async with (
        running_helper(cfg) as (url, _),
        _https(tls) as http,
        http.stream(
            "POST",
            url + "/v1/measure",
            json={"urls": [target]},
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as response,
    ):
        assert response.headers["content-type"] == "application/x-ndjson"
        assert response.headers["transfer-encoding"] == "chunked"
        lines = [line async for line in response.aiter_lines()]
    payload = [json.loads(line) for line in lines if line.strip()]
    assert len(lines) > len(payload), "no heartbeat line"
    record, summary = payload
    assert record["url"] == target and record["failure"] == "generic_timeout_error"
    assert record["is_control"] is True and record["probe_cc"] == "CU"
    s = summary["summary"]
    assert (s["requested"], s["measured"], s["refused"], s["country"]) == (1, 1, {}, "CU")


async def test_helper_records_match_direct_measurements_from_the_same_country(tls, world):
    targets = load_targets(world.targets_csv)
    helper_v = _vantage(world, "ir-1", control=True)
    direct_v = _vantage(world, "ir-1", control=False)
    cfg = _helper_cfg(tls, _measure_cfg(world, helper_v), world, allow_private=True)

    direct_cfg = _measure_cfg(world, direct_v)
    ctx = Context(
        cfg=direct_cfg,
        run_id="direct",
        geo=open_geo(None, world.overrides_csv, embedded=False),
        resolver=ResolverSpec.parse(world.resolver_arg()),
        control=ResolverSpec.parse(world.control_resolver_arg()),
    )
    direct: dict[str, Measurement] = {}

    async def one(t: Target) -> None:
        direct[t.url] = await measure_target(ctx, t)

    fetched: dict = {}

    async def via_helper(url: str) -> None:
        fetched["rows"], fetched["outcome"] = await _collect(url, [t.url for t in targets], tls)

    async with running_helper(cfg) as (url, _), trio.open_nursery() as nursery:
        nursery.start_soon(via_helper, url)
        for t in targets:
            nursery.start_soon(one, t)
    rows, outcome = fetched["rows"], fetched["outcome"]

    assert outcome.complete, outcome
    assert len(rows) == len(targets) == 14
    by_url = {r["url"]: r for r in rows}

    def key(m: dict) -> tuple:
        return (m["probe_cc"], m["failure_step"], m["failure"], m["http_status"])

    pairs = {u: (key(by_url[u]), key(m.as_row())) for u, m in direct.items()}
    mismatch = {u: p for u, p in pairs.items() if p[0] != p[1]}
    assert not mismatch, mismatch
    # the same evidence survives the wire: body bytes, titles, DNS answers, times
    for u, m in direct.items():
        r = by_url[u]
        assert r["is_control"] is True and r["data_source"] == "helper"
        assert r["vantage_id"] == "helper-ir-1"
        assert r["http_title"] == m.http_title, u
        assert r["dns_answers"] == list(m.dns_answers), u
        assert isinstance(r["started_at"], datetime) and r["started_at"].tzinfo is not None
    geo = by_url[world.url_for("dev-platform")]
    assert geo["http_status"] == 403 and b"banned the country" in geo["http_body_prefix"]
    # rows are storable as they are, and convertible to records
    table = pa.Table.from_pylist(rows, schema=MEASUREMENTS)
    assert table.num_rows == 14
    records = rows_to_measurements(rows, campaign="mine", run_id="r1")
    assert {m.campaign for m in records} == {"mine"} and all(m.is_control for m in records)


async def test_slow_clients_are_cut_off(tls):
    cfg = _helper_cfg(tls, _measure_cfg(), header_timeout=0.5, body_timeout=0.5)
    client_ctx = ssl.create_default_context(cafile=tls.ca_bundle)
    async with running_helper(cfg) as (url, _):
        port = int(url.rsplit(":", 1)[1])

        async def connect() -> trio.SSLStream:
            raw = await trio.open_tcp_stream("127.0.0.1", port)
            s = trio.SSLStream(raw, client_ctx, server_hostname="127.0.0.1")
            await s.do_handshake()
            return s

        async def read_all(s: trio.SSLStream) -> bytes:
            data = b""
            try:
                while chunk := await s.receive_some(65536):
                    data += chunk
            except trio.BrokenResourceError:
                pass
            return data

        with trio.fail_after(20):  # the helper must close both connections by itself
            headers_only = await connect()
            await headers_only.send_all(b"POST /v1/measure HTTP/1.1\r\nHost: x\r\n")
            assert await read_all(headers_only) == b""
            body_slow = await connect()
            await body_slow.send_all(
                b"POST /v1/measure HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                + f"Authorization: Bearer {TOKEN}\r\n\r\n".encode()
                + b'{"urls": ['
            )
            answer = await read_all(body_slow)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b'"request_timeout"' in answer


# --------------------------------------------------------------------------------------------
# the client against broken helpers


async def test_unreachable_helper_and_untrusted_certificate_are_reported(tls, tmp_path):
    port = await _free_port()
    rows, down = await _collect(f"https://127.0.0.1:{port}", ["http://127.0.0.1:9/"], tls)
    assert rows == [] and down.error == C.UNREACHABLE and down.missing == 1

    other_ca = LabPKI("someone else").write_ca(tmp_path / "other-ca.pem")
    async with running_helper(_helper_cfg(tls, _measure_cfg(), allow_private=True)) as (url, _):
        rows, untrusted = await _collect(url, ["http://127.0.0.1:9/"], Tls(tls.server, other_ca))
    assert rows == [] and untrusted.error == C.TLS_ERROR and untrusted.missing == 1

    _, plain = await _collect("http://192.0.2.1:1/", ["http://127.0.0.1:9/"], tls)
    assert plain.error == C.BAD_HELPER_URL  # a token never travels in clear text off-host


def _row(url: str, **over) -> dict:
    m = Measurement(
        measurement_id="01hx0000000000000000000000",
        schema_version=1,
        software_version="0",
        campaign="c",
        run_id="r",
        started_at=datetime.fromisoformat("2026-01-02T03:04:05.123456+00:00"),
        url=url,
        http_body_prefix=b"\x00\xffbody",
        dns_answers=("127.0.0.1",),
    )
    row = {k: encode_value(v) for k, v in m.as_row().items()}
    row.update(over)
    return row


def _mock(lines: list[bytes], status: int = 200) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert json.loads(request.content)["urls"]
        return httpx.Response(
            status, headers={"Content-Type": "application/x-ndjson"}, content=b"".join(lines)
        )

    return httpx.MockTransport(handler)


async def _mocked(lines: list[bytes], urls: list[str], **kw):
    rows = []
    async with fetch_controls(
        "https://helper.invalid/", TOKEN, urls, ca_bundle=None, timeout=5,
        transport=_mock(lines), **kw,
    ) as fetch:  # fmt: skip
        async for row in fetch:
            rows.append(row)
    return rows, fetch.outcome


async def test_client_validates_every_line():
    a, b, c = "http://a.example/", "http://b.example/", "http://c.example/"
    lines = [
        b"\n",  # heartbeat
        json.dumps(_row(a, is_control=False, data_source="res64", evil="x")).encode() + b"\n",
        json.dumps(_row(a)).encode() + b"\n",  # duplicate
        json.dumps(_row("http://not-asked.example/")).encode() + b"\n",
        b"{not json\n",
        json.dumps(_row(b, http_status="200")).encode() + b"\n",
        json.dumps(_row(c, measurement_id=None)).encode() + b"\n",  # unusable
        json.dumps(_row(c, started_at="2026-01-02T03:04:05")).encode() + b"\n",  # naive time
        b'{"summary": {"requested": 3, "refused": {"http://c.example/": "private_target"}}}\n',
    ]
    rows, outcome = await _mocked(lines, [a, b, c])
    assert [r["url"] for r in rows] == [a, b]
    first, second = rows
    assert first["is_control"] is True and first["data_source"] == "helper"
    assert "evil" not in first and set(first) == set(MEASUREMENTS.names)
    assert first["http_body_prefix"] == b"\x00\xffbody"
    assert first["started_at"].isoformat() == "2026-01-02T03:04:05.123456+00:00"
    # a wrong type becomes null and is flagged, the rest of the row is kept
    assert second["http_status"] is None and second["import_note"] == "helper: invalid http_status"
    assert second["http_body_prefix"] == b"\x00\xffbody"
    assert outcome.error is None and outcome.received == 2 and outcome.malformed == 5
    assert outcome.refused == {c: "private_target"} and outcome.missing_urls == [c]


def test_decode_row_flags_what_it_tolerated():
    row = decode_row(_row("http://a.example/", http_status="200", tcp_ms=True, rep=None))
    assert row is not None and row["http_status"] is None and row["tcp_ms"] is None
    assert row["import_note"] == "helper: invalid tcp_ms,http_status" and row["rep"] == 0
    assert decode_row(_row("http://a.example/", started_at="2026-01-02T03:04:05")) is None
    assert decode_row(_row("http://a.example/", http_status=1 << 20))["http_status"] is None
    assert decode_row(_row("http://a.example/", http_body_prefix="!!"))["http_body_prefix"] is None
    assert decode_row([1, 2]) is None


async def test_client_bounds_lines_and_needs_the_summary():
    a = "http://a.example/"
    long_line = [b'{"x": "' + b"a" * 5000]
    _, outcome = await _mocked(long_line, [a], max_line_bytes=1000)
    assert outcome.error == C.PROTOCOL_ERROR and outcome.missing == 1
    cut = [json.dumps(_row(a)).encode() + b"\n"]  # no summary line: the helper died
    rows, outcome = await _mocked(cut, [a, "http://b.example/"])
    assert len(rows) == 1 and outcome.error == C.STREAM_BROKEN and outcome.missing == 1


async def test_client_reports_invalid_urls_without_sending_them():
    ok = "http://a.example/"
    lines = [json.dumps(_row(ok)).encode() + b"\n", b'{"summary": {}}\n']
    rows, outcome = await _mocked(lines, [ok, "ftp://nope/", "HTTP://A.EXAMPLE"])
    assert len(rows) == 1 and outcome.received == 1
    assert outcome.refused == {"ftp://nope/": C.INVALID_URL}
    assert outcome.requested == 2 and outcome.missing == 1


def test_record_line_round_trips_through_decode_row():
    m = rows_to_measurements([decode_row(_row("http://a.example/"))])[0]
    back = decode_row(json.loads(record_line(m)))
    assert back is not None and rows_to_measurements([back])[0] == m


def test_measure_request_parsing():
    assert parse_measure_request(b'{"urls": ["a.example"]}', 5)[0].url == "https://a.example/"
    assert parse_measure_request(b'{"urls": [1]}', 5)[1] == "bad_urls"
    assert parse_measure_request(b"[[[[" * 100_000, 5)[1] == "bad_json"
    assert parse_measure_request(b"\xff", 5)[1] == "bad_json"
    assert parse_measure_request(b'{"urls": ["a.example", "b.example"]}', 1)[0] == 413


# --------------------------------------------------------------------------------------------
# configuration and deployment


def test_helper_config_refuses_clear_text_off_loopback():
    with pytest.raises(ConfigError, match="tls-cert"):
        HelperConfig(measure=_measure_cfg(), tokens=(TOKEN,), host="0.0.0.0")
    with pytest.raises(ConfigError, match="go together"):
        HelperConfig(measure=_measure_cfg(), tokens=(TOKEN,), tls_cert=Path("c.pem"))
    with pytest.raises(ConfigError, match="token"):
        HelperConfig(measure=_measure_cfg(), tokens=())
    assert TOKEN not in repr(HelperConfig(measure=_measure_cfg(), tokens=(TOKEN,)))


def test_load_tokens(tmp_path):
    f = tmp_path / "tokens"
    f.write_text(f"# ops\n{TOKEN}\n")
    f.chmod(0o600)
    assert load_tokens(f) == (TOKEN,)
    with pytest.raises(ConfigError, match="no such file"):
        load_tokens(tmp_path / "missing")
    with pytest.raises(ConfigError, match="not a regular file"):
        load_tokens(tmp_path)


def test_systemd_unit():
    argv = ["/opt/res64/bin/res64", "helper", "serve", "--listen", "0.0.0.0:443",
            "--token-file", "/etc/res64/tokens", "--note", "50% $HOME x"]  # fmt: skip
    unit = systemd_unit(argv, "res64")
    assert "User=res64\n" in unit and "WantedBy=multi-user.target" in unit
    exec_line = next(ln for ln in unit.splitlines() if ln.startswith("ExecStart="))
    assert exec_line.startswith("ExecStart=/opt/res64/bin/res64 helper serve --listen 0.0.0.0:443")
    assert exec_line.endswith('"50%% $$HOME x"')
    assert "NoNewPrivileges=yes" in unit and "CAP_NET_BIND_SERVICE" in unit
    for bad_user in ("root\nExecStart=/bin/sh", "Bad User", ""):
        with pytest.raises(ConfigError):
            systemd_unit(argv, bad_user)
    with pytest.raises(ConfigError):
        systemd_unit(["res64", "helper", "serve"], "res64")
    with pytest.raises(ConfigError):
        systemd_unit(["/bin/res64", "--x", "a\nb"], "res64")
