"""Hostile servers: every measurement ends within its timeouts with the right failure string,
memory stays bounded, and the well-behaved targets of the same run are measured normally."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pandas as pd
import pytest
import trio

from probe.config import MeasureConfig, Timeouts, Vantage
from probe.geo import open_geo
from probe.lab.hostile import run_hostile_world
from probe.measure import Context, measure_target
from probe.runner import _resolvers
from probe.targets import targets_from_urls
from tests.conftest import child_env, res64_cmd

REFUSED = "unknown_failure: non_loopback_destination_refused"
TOO_MANY = "http_request_failed: too_many_redirects"
SCHEME = "http_request_failed: redirect_to_unsupported_scheme"
HEADERS = "http_request_failed: headers_too_large"
PROTOCOL = "http_request_failed: protocol_error"

# case -> (failure_step, failure) when run by the CLI in loopback-only mode
EXPECTED = {
    "normal-http": (None, None),
    "normal-https": (None, None),
    "gzip-bomb": (None, None),
    "brotli-bomb": (None, None),
    "body-100mb": (None, None),
    "headers-1mb": ("http", HEADERS),
    "headers-10k": ("http", HEADERS),
    "drip": ("http", "generic_timeout_error"),
    "redirect-loop": ("http", TOO_MANY),
    "redirect-cross-scheme": ("http", TOO_MANY),
    "redirect-file": ("http", SCHEME),
    "redirect-ftp": ("http", SCHEME),
    "redirect-private": ("http", REFUSED),  # never sent: 10.1.2.3 is not loopback
    "redirect-loopback": ("http", "connection_refused"),  # nothing on 127.0.0.1:port
    "redirect-linklocal": ("http", REFUSED),
    "bad-title": (None, None),
    "header-nul": ("http", PROTOCOL),
    "http09": ("http", "eof_error"),  # no status line before the close
    "garbage": ("http", PROTOCOL),
    "tls-expired": ("tls", "ssl_invalid_certificate"),
    "tls-self-signed": ("tls", "ssl_unknown_authority"),
    "tls-wrong-name": ("tls", "ssl_invalid_hostname"),
    "dns-oversized": (None, None),
    "dns-truncated": ("dns", "connection_refused"),  # TC set, no DNS over TCP there
    "dns-mismatched-id": ("dns", "generic_timeout_error"),
    "dns-garbage": ("dns", "generic_timeout_error"),
}
TIMEOUT = 4.0


RUSAGE_WRAPPER = (
    "import os,sys,subprocess;"
    "p=subprocess.Popen(sys.argv[1:]);"
    "_,st,ru=os.wait4(p.pid,0);"
    "print('MAXRSS_KB',ru.ru_maxrss,file=sys.stderr);"
    "sys.exit(os.waitstatus_to_exitcode(st))"
)


@pytest.mark.slow
async def test_hostile_suite_bounded_and_correct(tmp_path: Path):
    async with run_hostile_world(tmp_path / "w") as world:
        targets = tmp_path / "targets.csv"
        targets.write_text("url\n" + "\n".join(world.urls.values()) + "\n")
        out = tmp_path / "out"
        cmd = [
            os.sys.executable, "-c", RUSAGE_WRAPPER, *res64_cmd(),
            "measure", str(targets), "--out", str(out), "-q", "--no-discover",
            "--country", "DE", "--vantage-id", "hostile", "--timeout", str(TIMEOUT),
            "--resolver", world.resolver, "--control-resolver", "none",
            "--ca-bundle", str(world.ca_bundle), "--concurrency", "32",
        ]  # fmt: skip
        started = trio.current_time()
        proc = await trio.run_process(cmd, env=child_env(tmp_path), capture_stderr=True,
                                      check=False)  # fmt: skip
        elapsed = trio.current_time() - started
    err = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, err
    peak_kb = int(err.split("MAXRSS_KB", 1)[1].split()[0])
    print(f"hostile suite: peak RSS of res64 measure {peak_kb / 1024:.0f} MiB, {elapsed:.1f} s")
    assert peak_kb <= 300 * 1024, f"peak RSS {peak_kb / 1024:.0f} MiB"
    # every target finished within its per-target budget (drip and DNS timeouts included)
    assert elapsed < Timeouts.from_total(TIMEOUT).target + 30
    df = pd.read_parquet(out / "measurements")
    assert len(df) == len(EXPECTED)
    name_of = {u: n for n, u in world.urls.items()}
    got = {
        name_of[r.url]: (
            None if pd.isna(r.failure_step) else r.failure_step,
            None if pd.isna(r.failure) else r.failure,
        )
        for r in df.itertuples()
    }
    assert got == EXPECTED
    rows = {name_of[r["url"]]: r for r in df.to_dict("records")}
    for bomb in ("gzip-bomb", "brotli-bomb", "body-100mb"):
        assert rows[bomb]["http_body_truncated"] is True
        assert rows[bomb]["http_body_length"] <= 2 * 1024 * 1024
    title = rows["bad-title"]["http_title"]
    assert "\x00" not in title and "\x01" not in title and "bold" in title
    assert "\x00" not in rows["bad-title"]["http_headers"]
    json.loads(rows["bad-title"]["http_headers"])
    for name in ("tls-expired", "tls-self-signed", "tls-wrong-name"):
        assert rows[name]["tls_cert_valid"] is False and rows[name]["http_status"] == 200
        assert rows[name]["http_verified"] is False
    assert list(rows["dns-oversized"]["dns_answers"]) == [world.addresses["dns-oversized"]]
    for n in ("drip", "dns-mismatched-id", "dns-garbage"):
        assert rows[n]["duration_ms"] < (TIMEOUT + 2) * 1000, n


async def test_redirects_from_a_public_site_to_private_addresses_are_refused(tmp_path: Path):
    """With the hostile servers treated as public sites, inward redirects are refused."""
    async with run_hostile_world(tmp_path / "w") as world:
        cfg = MeasureConfig(
            out=str(tmp_path / "o"),
            vantage=Vantage("t", "DE"),
            resolver=world.resolver,
            control_resolver=None,
            ca_bundle=world.ca_bundle,
            timeouts=Timeouts.from_total(TIMEOUT),
            loopback_only=True,
        )
        res, ctl = _resolvers(cfg)
        lab = ipaddress.ip_network("127.30.0.0/16")

        def private(ip: str) -> bool:
            return ipaddress.ip_address(ip) not in lab

        ctx = Context(cfg, "r", open_geo(None, None, embedded=False), res, ctl,
                      private_check=private)  # fmt: skip
        for name in ("redirect-private", "redirect-loopback", "redirect-linklocal"):
            (t,) = targets_from_urls([world.urls[name]])
            m = await measure_target(ctx, t)
            assert m.http_failure == "http_request_failed: redirect_to_private_address", name
            assert m.http_status == 302 and len(m.http_redirects) == 1
