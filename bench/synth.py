"""Deterministic synthetic measurement datasets for benchmarks.

:func:`generate` writes a dataset in the real layout (SPEC §7: hive partitions
``measurements/campaign=<c>/probe_cc=<CC>/date=<YYYY-MM-DD>/part-*.parquet``, the file schema of
:func:`probe.schema.file_schema`, zstd) from a seeded model of the world:

- countries with a few vantages each (own ASNs), plus dedicated control records (``ZZ``);
- URLs with one or two addresses, a category, an operator country and a per-site page;
- behaviours per (country, URL): most targets are reachable; a few percent are geoblocked by
  the site for a set of "sanctioned" countries (403 pages over valid TLS, sharing a handful of
  distinct bodies, some behind a redirect); three countries censor some URLs (DNS to a
  block-page address with a block page, TLS resets, NXDOMAIN); a few sites are down everywhere;
  transient failures (timeouts, resets, refusals) are sprinkled everywhere; a few responses are
  challenge pages.

Everything is vectorised per partition, so ten million rows take a few minutes.  Bodies are
short (a few hundred bytes) to keep the files small; the writer keeps them dictionary-encoded.
The addresses are made-up data and are never contacted.

``ensure_dataset(root, config)`` re-uses a dataset generated earlier with the same config
(``synth.json`` beside ``measurements/``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from probe.schema import SCHEMA_VERSION, file_schema

COUNTRY_POOL = (
    "US DE FR GB NL IT ES SE NO FI PL CZ AT CH BE IE PT GR HU RO BG UA TR IL EG "
    "ZA NG KE MA DZ BR AR CL CO MX PE CA AU NZ JP KR IN PK BD ID MY TH VN PH SG "
    "IR SY CU RU BY VE SD CN"
).split()
SANCTIONED = ("IR", "SY", "CU", "RU", "BY", "VE", "SD")
CENSORS = ("IR", "RU", "CN")  # DNS + block page, TLS reset, NXDOMAIN
CATEGORIES = ("NEWS", "SRCH", "COMT", "HOST", "SCI", "EDU", "GOVT", "CULTR", "FILE", "MMED")
OPERATORS = ("US", "US", "US", "US", "DE", "GB", "FR", "NL", "JP", "SE", "IE", "CA")

GEOBLOCK_BODIES = (
    b"<html><head><title>Access denied</title></head><body><h1>Error 1009</h1>"
    b"<p>Access denied. The owner of this website has banned the country or region your IP "
    b"address is in from accessing this website.</p></body></html>",
    b"<html><head><title>ERROR: The request could not be satisfied</title></head><body>"
    b"<h1>403 ERROR</h1><p>The Amazon CloudFront distribution is configured to block access "
    b"from your country.</p></body></html>",
    b"<html><head><title>403 Forbidden</title></head><body><h1>Forbidden</h1>"
    b"<p>We are unable to provide our services in your region because of trade sanctions."
    b"</p></body></html>",
    b"<html><head><title>Unavailable</title></head><body><p>Sorry, this content is not "
    b"available in your location.</p></body></html>",
)
GEOBLOCK_TITLES = (
    "Access denied",
    "ERROR: The request could not be satisfied",
    "403 Forbidden",
    "Unavailable",
)
BLOCKPAGE_BODY = (
    b"<html><head><title>Blocked</title></head><body><p>Access to this website has been "
    b"restricted in accordance with the laws of the country.</p></body></html>"
)
CHALLENGE_BODY = (
    b"<html><head><title>Just a moment...</title></head><body><p>Checking your browser "
    b"before accessing the website.</p></body></html>"
)
DOWN_BODY = b"<html><head><title>503 Service Unavailable</title></head><body></body></html>"


#: Bump when the generator writes different data for the same config (invalidates caches).
GENERATOR_VERSION = 2


@dataclass(frozen=True)
class SynthConfig:
    """Size and shape of a synthetic dataset (deterministic for a given config)."""

    rows: int = 10_000_000
    countries: int = 50
    urls: int = 2000
    vantages: int = 200
    days: int = 30
    seed: int = 64
    campaign: str = "synth"
    start: str = "2025-01-01"
    control_share: float = 0.01
    transient_rate: float = 0.03

    def as_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "generator": GENERATOR_VERSION}


@dataclass(frozen=True)
class SynthSummary:
    root: Path
    rows: int
    files: int
    bytes: int


# -- the world ---------------------------------------------------------------------------


@dataclass
class _World:
    countries: list[str]
    vantage_cc: np.ndarray  # vantage index -> country index
    vantage_ids: list[str]
    vantage_asn: np.ndarray
    urls: list[str]
    hosts: list[str]
    https: np.ndarray
    category: list[str]
    operator: list[str | None]
    server_cc: list[str]
    server_asn: np.ndarray
    ips: list[list[str]]
    titles: list[str]
    headers: list[str]
    bodies: list[bytes]
    down: np.ndarray  # url -> 0 up, 1 tcp timeout everywhere, 2 http 503 everywhere
    geoblock: np.ndarray  # (country, url) -> 0 none, 1+k geoblock body k
    georedirect: np.ndarray  # url -> geoblock served after a redirect
    censor: np.ndarray  # (country, url) -> 0 none, 1 dns+blockpage, 2 tls reset, 3 nxdomain
    challenge_url: np.ndarray
    blockpage_ip: dict[int, str]


def _ip(rng: np.random.Generator) -> str:
    first = int(rng.choice([23, 31, 45, 52, 64, 77, 88, 91, 104, 151, 185, 193, 212]))
    a, b, c = (int(x) for x in rng.integers(1, 255, 3))
    return f"{first}.{a}.{b}.{c}"


def _world(cfg: SynthConfig) -> _World:
    rng = np.random.default_rng(cfg.seed)
    pool = list(COUNTRY_POOL)
    if cfg.countries > len(pool):
        raise ValueError(f"at most {len(pool)} countries")
    # keep the interesting countries in, fill with the others
    special = [c for c in (*SANCTIONED, *CENSORS) if c in pool]
    special = list(dict.fromkeys(special))[: max(0, cfg.countries // 3)]
    rest = [c for c in pool if c not in special]
    countries = sorted(special + rest[: cfg.countries - len(special)])
    nc = len(countries)
    vantage_cc = np.arange(cfg.vantages) % nc
    vantage_ids = [
        hashlib.sha256(f"v{cfg.seed}-{i}".encode()).hexdigest()[:16] for i in range(cfg.vantages)
    ]
    vantage_asn = 64512 + rng.integers(0, 60000, cfg.vantages)

    nu = cfg.urls
    https = rng.random(nu) < 0.85
    hosts = [f"www.site{i:05d}.example" for i in range(nu)]
    urls = [f"{'https' if s else 'http'}://{h}/" for h, s in zip(hosts, https, strict=True)]
    category = [CATEGORIES[int(i)] for i in rng.integers(0, len(CATEGORIES), nu)]
    operator: list[str | None] = [
        None if r < 0.1 else OPERATORS[int(k)]
        for r, k in zip(rng.random(nu), rng.integers(0, len(OPERATORS), nu), strict=True)
    ]
    server_cc = [op or "US" for op in operator]
    server_asn = rng.integers(10000, 60000, nu)
    ips = [[_ip(rng) for _ in range(1 + int(rng.random() < 0.4))] for _ in range(nu)]
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()
    titles = [
        f"Site {i} {words[i % len(words)]} {words[(i * 7) % len(words)]} portal" for i in range(nu)
    ]
    headers = [
        json.dumps(
            [
                ["content-type", "text/html; charset=utf-8"],
                ["server", ("nginx", "apache", "cloudflare", "AmazonS3")[i % 4]],
                ["x-site-id", f"s{i}"],
                ["cache-control", "max-age=600"],
            ]
        )
        for i in range(nu)
    ]
    bodies = [
        (
            f"<html><head><title>{titles[i]}</title></head><body>"
            + f"<p>{words[i % 12]} {i}</p>" * (5 + (i * 37) % 60)
            + "</body></html>"
        ).encode()
        for i in range(nu)
    ]
    down = np.zeros(nu, np.int8)
    down_idx = rng.choice(nu, max(1, nu // 200), replace=False)
    down[down_idx] = 1 + (np.arange(len(down_idx)) % 2)
    geoblock = np.zeros((nc, nu), np.int8)
    sanctioned = [countries.index(c) for c in SANCTIONED if c in countries]
    geo_urls = rng.choice(nu, max(1, nu // 25), replace=False)
    for u in geo_urls:
        if down[u] or not sanctioned:
            continue
        k = 1 + int(rng.integers(0, len(GEOBLOCK_BODIES)))
        chosen = rng.choice(sanctioned, int(rng.integers(1, len(sanctioned) + 1)), replace=False)
        geoblock[chosen, u] = k
    georedirect = rng.random(nu) < 0.2
    censor = np.zeros((nc, nu), np.int8)
    blockpage_ip: dict[int, str] = {}
    for method, cc in enumerate(CENSORS, start=1):
        if cc not in countries:
            continue
        ci = countries.index(cc)
        blockpage_ip[ci] = "10.10.34.34"
        cu = rng.choice(nu, max(1, nu * 3 // 100), replace=False)
        censor[ci, cu] = method
    censor[:, down > 0] = 0
    challenge_url = np.zeros(nu, bool)
    challenge_url[rng.choice(nu, max(1, nu // 100), replace=False)] = True
    return _World(
        countries=countries,
        vantage_cc=vantage_cc,
        vantage_ids=vantage_ids,
        vantage_asn=vantage_asn,
        urls=urls,
        hosts=hosts,
        https=https,
        category=category,
        operator=operator,
        server_cc=server_cc,
        server_asn=server_asn,
        ips=ips,
        titles=titles,
        headers=headers,
        bodies=bodies,
        down=down,
        geoblock=geoblock,
        georedirect=georedirect,
        censor=censor,
        challenge_url=challenge_url,
        blockpage_ip=blockpage_ip,
    )


# -- one partition -------------------------------------------------------------------------

_B32 = np.frombuffer(b"0123456789abcdefghjkmnpqrstvwxyz", np.uint8)


def _ids(rng: np.random.Generator, n: int) -> pa.Array:
    """``n`` random 26-character ids as an Arrow string array (no Python objects)."""
    data = _B32[rng.integers(0, 32, (n, 26))].astype(np.uint8).ravel()
    offsets = np.arange(0, 26 * (n + 1), 26, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def _take(values: list, idx: np.ndarray, type_: pa.DataType, valid: np.ndarray | None = None):
    arr = pa.array(values, type_).take(pa.array(idx))
    if valid is not None:
        arr = pa.compute.if_else(pa.array(valid), arr, pa.scalar(None, type_))
    return arr


def _null(values: np.ndarray) -> np.ndarray:
    """Element-wise ``is None`` of an object array."""
    return np.equal(values, None)


def _lists(values: list[list[str]], idx: np.ndarray) -> pa.Array:
    return pa.array(values, pa.list_(pa.string())).take(pa.array(idx))


def _partition(
    w: _World, cfg: SynthConfig, rng: np.random.Generator, ci: int | None, day: datetime, n: int
) -> pa.Table:
    """Rows of one country (``ci``; ``None`` = control records) on one day."""
    nu = len(w.urls)
    url = rng.integers(0, nu, n)
    t0 = int(day.timestamp() * 1_000_000)
    started = np.sort(t0 + rng.integers(0, 86_400_000_000, n))
    is_control = ci is None
    if is_control:
        vant = np.full(n, -1)
        cc = "ZZ"
        asn = np.full(n, 13335)
    else:
        cand = np.flatnonzero(w.vantage_cc == ci)
        vant = cand[rng.integers(0, len(cand), n)]
        cc = w.countries[ci]
        asn = w.vantage_asn[vant]

    # outcome codes
    # 0 ok, 1 dns timeout, 2 tcp timeout, 3 tcp refused, 4 tls reset, 5 http timeout,
    # 6 down-tcp, 7 down-503, 8 geoblock, 9 dns blockpage, 10 tls reset (censor), 11 nxdomain,
    # 12 challenge
    out = np.zeros(n, np.int8)
    r = rng.random(n)
    tr = cfg.transient_rate
    out[r < tr] = 2
    out[r < tr * 0.66] = 4
    out[r < tr * 0.5] = 3
    out[r < tr * 0.33] = 5
    out[r < tr * 0.17] = 1
    chal = w.challenge_url[url] & (rng.random(n) < 0.3)
    out[chal] = 12
    if not is_control:
        geo = w.geoblock[ci, url]
        out[geo > 0] = 8
        cen = w.censor[ci, url]
        out[cen == 1] = 9
        out[cen == 2] = 10
        out[cen == 3] = 11
    down = w.down[url]
    out[down == 1] = 6
    out[down == 2] = 7

    https = w.https[url]
    ok = out == 0
    # DNS
    dns_fail = np.where(
        out == 1, "generic_timeout_error", np.where(out == 11, "dns_nxdomain_error", None)
    )
    answers_idx = url.copy()
    ip_lists = [*w.ips, []]
    if not is_control and ci in w.blockpage_ip:
        ip_lists.append([w.blockpage_ip[ci]])
        answers_idx[out == 9] = len(ip_lists) - 1
    answers_idx[(out == 1) | (out == 11)] = nu  # empty
    first_ip = [ips[0] if ips else None for ips in ip_lists]
    server_ip = _take(first_ip, answers_idx, pa.string())
    # TCP
    tcp_fail = np.select(
        [(out == 2) | (out == 6), out == 3], ["generic_timeout_error", "connection_refused"], None
    )
    tcp_done = (out != 1) & (out != 11)
    # TLS
    tls_attempt = tcp_done & https & _null(tcp_fail)
    tls_fail = np.where(
        tls_attempt & ((out == 4) | (out == 10)),
        "connection_reset",
        np.where(tls_attempt & (out == 9), "ssl_invalid_hostname", None),
    )
    tls_valid = np.where(tls_attempt, _null(tls_fail), None)
    tls_valid = np.where(tls_attempt & (out == 9), False, tls_valid)
    # HTTP
    http_attempt = tcp_done & _null(tcp_fail) & (_null(tls_fail) | (out == 9))
    http_fail = np.where(http_attempt & (out == 5), "generic_timeout_error", None)
    responded = http_attempt & (out != 5)
    status = np.select([out == 7, out == 8, out == 12], [503, 403, 403], 200)
    georedir = (out == 8) & w.georedirect[url]
    status[georedir] = 200
    # body: per URL body, geoblock bodies, block page, challenge, 503
    nb = len(w.bodies)
    body_idx = url.copy()
    if not is_control:
        gk = w.geoblock[ci, url].astype(np.int64)
        body_idx[out == 8] = nb + gk[out == 8] - 1
    body_idx[out == 9] = nb + len(GEOBLOCK_BODIES)
    body_idx[out == 12] = nb + len(GEOBLOCK_BODIES) + 1
    body_idx[out == 7] = nb + len(GEOBLOCK_BODIES) + 2
    all_bodies = [*w.bodies, *GEOBLOCK_BODIES, BLOCKPAGE_BODY, CHALLENGE_BODY, DOWN_BODY]
    all_titles = [
        *w.titles,
        *GEOBLOCK_TITLES,
        "Blocked",
        "Just a moment...",
        "503 Service Unavailable",
    ]
    generic_headers = json.dumps([["content-type", "text/html"], ["server", "cloudflare"]])
    block_headers = json.dumps([["content-type", "text/html"], ["server", "nginx"]])
    all_headers = [*w.headers, *([generic_headers] * len(GEOBLOCK_BODIES)), block_headers]
    all_headers += [generic_headers, generic_headers]
    shas = [hashlib.sha256(b).hexdigest() for b in all_bodies]
    lens = np.array([len(b) for b in all_bodies], np.int64)
    # failure summary
    steps = np.select(
        [~_null(dns_fail), ~_null(tcp_fail), ~_null(tls_fail), ~_null(http_fail)],
        ["dns", "tcp", "tls", "http"],
        None,
    )
    failure = np.select(
        [~_null(dns_fail), ~_null(tcp_fail), ~_null(tls_fail), ~_null(http_fail)],
        [dns_fail, tcp_fail, tls_fail, http_fail],
        None,
    )
    redirects = np.where(georedir, 1, 0)
    redirect_lists = [[], ["https://unavailable.example/region"]]

    def col(values: np.ndarray, type_: pa.DataType, mask: np.ndarray | None = None) -> pa.Array:
        return pa.array(values, type_, mask=mask)

    resp = pa.array(responded)
    n_mid = _ids(rng, n)
    run_id = f"synth-{cc}-{day:%Y%m%d}"
    vid = [*w.vantage_ids, "ooni-th"]
    cols: dict[str, pa.Array] = {
        "measurement_id": n_mid,
        "schema_version": pa.array(np.full(n, SCHEMA_VERSION, np.int16)),
        "software_version": pa.array(["synth"] * n, pa.string()),
        "run_id": pa.array([run_id] * n, pa.string()),
        "started_at": pa.array(started, pa.timestamp("us", tz="UTC")),
        "duration_ms": pa.array(rng.gamma(2.0, 200.0, n)),
        "rep": pa.array(np.zeros(n, np.int32)),
        "vantage_id": _take(vid, np.where(vant < 0, len(vid) - 1, vant), pa.string()),
        "probe_asn": pa.array(asn.astype(np.int64)),
        "probe_as_name": pa.array(["synthetic-as"] * n, pa.string()),
        "via_proxy": pa.nulls(n, pa.string()),
        "is_control": pa.array(np.full(n, is_control)),
        "steps_hidden": pa.array([[]] * n, pa.list_(pa.string())),
        "url": _take(w.urls, url, pa.string()),
        "hostname": _take(w.hosts, url, pa.string()),
        "category_code": _take(w.category, url, pa.string()),
        "operator_cc": _take(w.operator, url, pa.string()),
        "dns_resolver": pa.array(["192.0.2.53"] * n, pa.string()),
        "dns_answers": _lists(ip_lists, answers_idx),
        "dns_failure": pa.array(dns_fail, pa.string()),
        "dns_rcode": pa.array(np.where(out == 11, "NXDOMAIN", "NOERROR"), pa.string()),
        "dns_ms": pa.array(rng.gamma(2.0, 10.0, n)),
        "dns_control_resolver": pa.array(["198.51.100.53"] * n, pa.string()),
        "dns_control_answers": _lists(w.ips, url),
        "dns_control_failure": pa.nulls(n, pa.string()),
        "dns_control_ms": pa.array(rng.gamma(2.0, 15.0, n)),
        "server_ip": pa.compute.if_else(
            pa.array(tcp_done), server_ip, pa.scalar(None, pa.string())
        ),
        "server_port": pa.array(np.where(https, 443, 80).astype(np.int32)),
        "server_cc": _take(w.server_cc, url, pa.string()),
        "server_asn": pa.array(w.server_asn[url].astype(np.int64)),
        "server_as_name": pa.nulls(n, pa.string()),
        "tcp_failure": pa.array(tcp_fail, pa.string()),
        "tcp_ms": col(rng.gamma(2.0, 20.0, n), pa.float64(), ~tcp_done),
        "tcp_attempts": pa.nulls(n, pa.string()),
        "synack_ttl": pa.nulls(n, pa.int16()),
        "rst_ttl": pa.nulls(n, pa.int16()),
        "tls_failure": pa.array(tls_fail, pa.string()),
        "tls_version": pa.array(
            np.where(tls_attempt & _null(tls_fail), "TLSv1.3", None), pa.string()
        ),
        "tls_cert_issuer": pa.nulls(n, pa.string()),
        "tls_cert_subject": pa.nulls(n, pa.string()),
        "tls_cert_valid": pa.array(tls_valid, pa.bool_()),
        "tls_cert_not_after": pa.nulls(n, pa.timestamp("us", tz="UTC")),
        "tls_cert_sha256": pa.nulls(n, pa.string()),
        "tls_ms": col(rng.gamma(2.0, 30.0, n), pa.float64(), ~tls_attempt),
        "http_status": col(status.astype(np.int16), pa.int16(), ~responded),
        "http_failure": pa.array(http_fail, pa.string()),
        "http_headers": _take(all_headers, body_idx, pa.string(), responded),
        "http_title": _take(all_titles, body_idx, pa.string(), responded),
        "http_body_length": col(lens[body_idx], pa.int64(), ~responded),
        "http_body_sha256": _take(shas, body_idx, pa.string(), responded),
        "http_body_prefix": _take(all_bodies, body_idx, pa.binary(), responded),
        "http_body_truncated": col(np.zeros(n, bool), pa.bool_(), ~responded),
        "http_final_url": pa.compute.if_else(
            resp,
            pa.compute.if_else(
                pa.array(georedir),
                pa.scalar("https://unavailable.example/region"),
                _take(w.urls, url, pa.string()),
            ),
            pa.scalar(None, pa.string()),
        ),
        "http_redirects": _lists(redirect_lists, redirects),
        "http_verified": pa.array(np.where(http_attempt & https, out != 9, None), pa.bool_()),
        "http_ms": col(rng.gamma(2.0, 80.0, n), pa.float64(), ~http_attempt),
        "failure_step": pa.array(steps, pa.string()),
        "failure": pa.array(failure, pa.string()),
    }
    del ok
    schema = file_schema("measurements")
    cols["data_source"] = pa.array(["helper" if is_control else "res64"] * n, pa.string())
    arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def generate(
    root: Path, cfg: SynthConfig, *, progress: Callable[[int, int], None] | None = None
) -> SynthSummary:
    """Write the dataset for ``cfg`` under ``root`` (replacing what is there)."""
    root = Path(root)
    meas = root / "measurements"
    if meas.exists():
        shutil.rmtree(meas)
    w = _world(cfg)
    start = datetime.fromisoformat(cfg.start).replace(tzinfo=UTC)
    groups: list[int | None] = [*range(len(w.countries))]
    if cfg.control_share > 0:
        groups.append(None)
    n_ctrl = round(cfg.rows * cfg.control_share) if cfg.control_share > 0 else 0
    per_country = (cfg.rows - n_ctrl) / len(w.countries)
    total_parts = len(groups) * cfg.days
    done = files = size = rows = 0
    for gi, ci in enumerate(groups):
        n_group = n_ctrl if ci is None else round(per_country * (gi + 1)) - round(per_country * gi)
        cc = "ZZ" if ci is None else w.countries[ci]
        for d in range(cfg.days):
            n = n_group * (d + 1) // cfg.days - n_group * d // cfg.days
            done += 1
            if n <= 0:
                continue
            day = start + timedelta(days=d)
            rng = np.random.default_rng([cfg.seed, gi, d])
            table = _partition(w, cfg, rng, ci, day, n)
            part = meas / f"campaign={cfg.campaign}" / f"probe_cc={cc}" / f"date={day:%Y-%m-%d}"
            part.mkdir(parents=True, exist_ok=True)
            path = part / f"part-synth-{cc}-{day:%Y%m%d}-0.parquet"
            tmp = path.with_suffix(".tmp")
            pq.write_table(
                table,
                tmp,
                compression="zstd",
                dictionary_pagesize_limit=16 << 20,
                row_group_size=128 * 1024,
            )
            os.replace(tmp, path)
            files += 1
            rows += n
            size += path.stat().st_size
            if progress is not None:
                progress(done, total_parts)
    (root / "synth.json").write_text(json.dumps({"config": cfg.as_json(), "rows": rows}, indent=1))
    return SynthSummary(root=root, rows=rows, files=files, bytes=size)


def ensure_dataset(
    root: Path, cfg: SynthConfig, *, progress: Callable[[int, int], None] | None = None
) -> SynthSummary:
    """The dataset for ``cfg`` under ``root``: re-used when ``synth.json`` matches, else made."""
    root = Path(root)
    stamp = root / "synth.json"
    if stamp.exists():
        try:
            meta = json.loads(stamp.read_text())
        except ValueError:
            meta = {}
        if meta.get("config") == cfg.as_json():
            files = sorted((root / "measurements").rglob("*.parquet"))
            return SynthSummary(
                root=root,
                rows=int(meta["rows"]),
                files=len(files),
                bytes=sum(f.stat().st_size for f in files),
            )
    return generate(root, cfg, progress=progress)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "synth")
    p.add_argument("--rows", type=int, default=SynthConfig.rows)
    p.add_argument("--seed", type=int, default=SynthConfig.seed)
    args = p.parse_args(argv)
    cfg = SynthConfig(rows=args.rows, seed=args.seed)
    s = ensure_dataset(args.out, cfg)
    print(
        f"{s.rows} rows in {s.files} files ({s.bytes / 1e6:.1f} MB) under {s.root}", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
