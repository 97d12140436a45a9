"""Traceroute, injection evidence and block localisation in a network-namespace world.

Root only (skipped otherwise, and when ``ip``/``iptables``/``scamper`` are missing).  The probe
code runs in a vantage namespace through ``python -m tests.lab.entry``; scamper, run in the same
namespace on the same paths, is the reference for the hop lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lab import world as W

pytestmark = pytest.mark.root


def ours(world: W.World, role: str, out: Path, *ips: str, pps: int = 100) -> dict:
    cc = W.ROLES[role][0]
    text = world.python(role, "tests.lab.entry", "trace", str(out), str(world.overrides), cc,
                        str(pps), "tcp", "443", *ips)  # fmt: skip
    return json.loads(text)


def scamper(world: W.World, role: str, *ips: str, pps: int = 100) -> dict[str, set]:
    """``{dst: {(ttl, addr)}}`` of scamper's TCP (Paris-style, constant ports) traces."""
    p = world.sh(role, "scamper", "-O", "json", "-p", str(pps), "-c",
                 "trace -P tcp -d 443 -q 2 -w 1 -g 5", "-i", *ips)  # fmt: skip
    out: dict[str, set] = {}
    for line in p.stdout.splitlines():
        doc = json.loads(line)
        if doc.get("type") == "trace":
            out[doc["dst"]] = {(h["probe_ttl"], h["addr"]) for h in doc.get("hops", [])}
    return out


def answered(hops: list[list]) -> set:
    return {(ttl, ip) for ttl, ip, kind, *_ in hops if kind != "none"}


def test_hop_lists_equal_scamper_from_both_vantages(world: W.World, tmp_path: Path) -> None:
    a = ours(world, "vA", tmp_path / "a", W.WEB_IP, W.BLACKHOLE_IP)
    b = ours(world, "vB", tmp_path / "b", W.WEB_IP, W.BLACKHOLE_IP)
    ref_a = scamper(world, "vA", W.WEB_IP, W.BLACKHOLE_IP)
    ref_b = scamper(world, "vB", W.WEB_IP, W.BLACKHOLE_IP)
    for mine, ref in ((a, ref_a), (b, ref_b)):
        for dst in (W.WEB_IP, W.BLACKHOLE_IP):
            assert answered(mine["hops"][dst]) == ref[dst], dst
    web_a = a["hops"][W.WEB_IP]
    assert [h[1] for h in web_a] == ["10.1.0.1", "10.11.0.2", None, "10.14.0.2", W.WEB_IP]
    assert web_a[2][2] == "none"  # rX drops its time-exceeded: the '*' hop
    assert [h[3] for h in web_a] == ["IR", "TR", None, "US", "US"]
    assert web_a[1][4] == 64510
    assert [h[1] for h in b["hops"][W.WEB_IP]] == ["10.2.0.1", None, "10.14.0.2", W.WEB_IP]
    assert a["reached"] == 1 and b["reached"] == 2  # the blackhole hits vA only


def test_blackhole_localised_to_the_transit_router(world: W.World) -> None:
    cc = W.ROLES["vA"][0]
    res = json.loads(world.python("vA", "tests.lab.entry", "blackhole", str(world.overrides), cc,
                                  W.BLACKHOLE_IP, "443"))  # fmt: skip
    assert not res["reached"]
    assert (res["hop_ip"], res["hop_cc"], res["locus"]) == ("10.11.0.2", "TR", "transit")
    control = json.loads(world.python("vB", "tests.lab.entry", "blackhole", str(world.overrides),
                                      "DE", W.BLACKHOLE_IP, "443"))  # fmt: skip
    assert control["reached"]


def localise(world: W.World, kind: str, port: int, name: str) -> dict:
    cc = W.ROLES["vA"][0]
    return json.loads(world.python("vA", "tests.lab.entry", "localise", str(world.overrides), cc,
                                   kind, W.WEB_IP, str(port), name, W.CONTROL_NAME))  # fmt: skip


@pytest.mark.parametrize(("kind", "port"), [("tls", 443), ("http", 80)])
def test_injector_localised_to_the_gateway(world: W.World, kind: str, port: int) -> None:
    res = localise(world, kind, port, W.BLOCKED_NAME)
    assert (res["kind"], res["hop_ip"], res["hop_cc"]) == ("rst", "10.1.0.1", "IR")
    assert res["locus"] == "local" and not res["at_endpoint"]
    assert res["control"][1][1] == "time_exceeded"  # the control passed the gateway


def test_server_side_reset_attributed_to_the_server(world: W.World) -> None:
    res = localise(world, "tls", 443, W.SERVER_BLOCKED_NAME)
    assert res["kind"] == "rst" and res["at_endpoint"] and res["locus"] == "server"
    assert (res["hop_ip"], res["hop_cc"], res["endpoint_ttl"]) == (W.WEB_IP, "US", 5)


def test_ttl_watch_sees_the_injected_reset(world: W.World) -> None:
    ok = json.loads(world.python("vA", "tests.lab.entry", "watch", W.WEB_IP, "443", "ok.example"))
    assert ok["available"] and ok["synack_ttl"] == 60 and not ok["inconsistent"]
    inj = json.loads(world.python("vA", "tests.lab.entry", "watch", W.WEB_IP, "443",
                                  W.BLOCKED_NAME))  # fmt: skip
    assert inj["failure"] is not None
    assert (inj["synack_ttl"], inj["rst_ttl"], inj["inconsistent"]) == (60, 64, True)
    srv = json.loads(world.python("vA", "tests.lab.entry", "watch", W.WEB_IP, "443",
                                  W.SERVER_BLOCKED_NAME))  # fmt: skip
    assert (srv["synack_ttl"], srv["rst_ttl"], srv["inconsistent"]) == (60, 60, False)
