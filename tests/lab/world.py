"""A network-namespace world for the traceroute and localisation tests (root only).

Namespaces joined by veth pairs, with no link to the root namespace (each veth pair is created
directly inside its two namespaces)::

    vA(IR) ── gwA(IR) ── rT(TR) ──┐
                                  rX(NL) ── rS(US) ── srv(US)
    vB(DE) ── gwB(DE) ────────────┘

* ``rX`` drops its own ICMP time-exceeded messages (a ``*`` hop);
* ``rT`` drops traffic from ``vA`` to ``BLACKHOLE_IP`` (a transit blackhole for one vantage);
* ``gwA`` injects TCP resets for ``BLOCKED_NAME`` (iptables string match on the SNI / Host);
* ``srv`` resets connections that name ``SERVER_BLOCKED_NAME`` itself (a server-side block);
* ``srv`` answers on every address of ``BENCH_NET`` (an AnyIP route), for the benchmark.

Addresses are 10.x, 198.51.100.x and 203.0.113.x: they exist only inside the namespaces.
Countries and ASes come from a GeoIP overrides CSV written next to the world.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WEB_IP = "198.51.100.10"
BLACKHOLE_IP = "198.51.100.20"
BENCH_NET = "203.0.113.0/24"
BLOCKED_NAME = "blocked.example"
SERVER_BLOCKED_NAME = "srvblock.example"
CONTROL_NAME = "control.example"

# role -> (country, asn)
ROLES: dict[str, tuple[str, int]] = {
    "vA": ("IR", 64501),
    "gwA": ("IR", 64501),
    "vB": ("DE", 64502),
    "gwB": ("DE", 64502),
    "rT": ("TR", 64510),
    "rX": ("NL", 64520),
    "rS": ("US", 64530),
    "srv": ("US", 64530),
}
# (role a, address a, role b, address b): /24 links
LINKS: list[tuple[str, str, str, str]] = [
    ("vA", "10.1.0.2", "gwA", "10.1.0.1"),
    ("vB", "10.2.0.2", "gwB", "10.2.0.1"),
    ("gwA", "10.11.0.1", "rT", "10.11.0.2"),
    ("rT", "10.12.0.1", "rX", "10.12.0.2"),
    ("gwB", "10.13.0.1", "rX", "10.13.0.2"),
    ("rX", "10.14.0.1", "rS", "10.14.0.2"),
    ("rS", "10.15.0.1", "srv", "10.15.0.2"),
]
ROUTES: dict[str, list[str]] = {
    "vA": ["default via 10.1.0.1"],
    "vB": ["default via 10.2.0.1"],
    "gwA": ["default via 10.11.0.2"],
    "gwB": ["default via 10.13.0.2"],
    "rT": ["10.1.0.0/24 via 10.11.0.1", "default via 10.12.0.2"],
    "rX": [
        "10.1.0.0/24 via 10.12.0.1",
        "10.11.0.0/24 via 10.12.0.1",
        "10.2.0.0/24 via 10.13.0.1",
        "default via 10.14.0.2",
    ],
    "rS": ["10.0.0.0/8 via 10.14.0.1", "default via 10.15.0.2"],
    "srv": ["default via 10.15.0.1", f"local {BENCH_NET} dev lo"],
}
ROUTERS = ("gwA", "gwB", "rT", "rX", "rS")
# (role, iptables arguments)
RULES: list[tuple[str, list[str]]] = [
    ("rX", ["-A", "OUTPUT", "-p", "icmp", "--icmp-type", "time-exceeded", "-j", "DROP"]),
    ("rT", ["-A", "FORWARD", "-s", "10.1.0.2", "-d", BLACKHOLE_IP, "-j", "DROP"]),
    *[
        ("gwA", ["-A", "FORWARD", "-p", "tcp", "--dport", port, "-m", "string", "--string",
                 BLOCKED_NAME, "--algo", "bm", "-j", "REJECT", "--reject-with", "tcp-reset"])
        for port in ("443", "80")
    ],
    *[
        ("srv", ["-A", "INPUT", "-p", "tcp", "--dport", port, "-m", "string", "--string",
                 SERVER_BLOCKED_NAME, "--algo", "bm", "-j", "REJECT", "--reject-with",
                 "tcp-reset"])
        for port in ("443", "80")
    ],
]  # fmt: skip


def missing_tools() -> str | None:
    """Why the world cannot be built here (None when it can)."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, raw sockets)"
    for tool in ("ip", "iptables", "scamper"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install iproute2 iptables scamper)"
    return None


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=60)


@dataclass
class World:
    """Names of the namespaces of one world; :meth:`close` removes them."""

    tag: str
    workdir: Path
    ns: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    overrides: Path | None = None

    def exec_args(self, role: str, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns[role], *args]

    def sh(self, role: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(*self.exec_args(role, *args), check=check)

    def python(self, role: str, module: str, *args: str, timeout: float = 120) -> str:
        """Run ``python -m module args`` inside ``role``'s namespace; its stdout."""
        env = {k: v for k, v in os.environ.items() if k != "RES64_LOOPBACK_ONLY"}
        env["PYTHONPATH"] = str(REPO)
        p = subprocess.run(
            self.exec_args(role, sys.executable, "-m", module, *args),
            capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO,
        )  # fmt: skip
        if p.returncode != 0:
            raise RuntimeError(f"{module} {args} failed ({p.returncode}): {p.stderr[-3000:]}")
        return p.stdout

    def start_server(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "RES64_LOOPBACK_ONLY"}
        env["PYTHONPATH"] = str(REPO)
        p = subprocess.Popen(
            self.exec_args("srv", sys.executable, "-m", "tests.lab.server"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        self.procs.append(p)
        assert p.stdout is not None
        ready, _, _ = select.select([p.stdout], [], [], 30)
        line = p.stdout.readline() if ready else ""
        if not line.startswith("READY"):
            raise RuntimeError(f"lab server did not start: {line!r}")

    def close(self) -> None:
        for p in self.procs:
            with contextlib.suppress(Exception):
                p.kill()
                p.wait(timeout=10)
        for name in self.ns.values():
            run("ip", "netns", "del", name, check=False)


def build(workdir: Path, *, server: bool = True) -> World:
    """Create the world (namespaces, links, routes, rules, overrides; the server if asked).

    On any failure everything created so far is removed before the error propagates.
    """
    tag = f"r64t{os.getpid() % 100000}"
    world = World(tag=tag, workdir=workdir)
    try:
        for role in ROLES:
            name = f"{tag}-{role}"
            run("ip", "netns", "add", name)
            world.ns[role] = name
            world.sh(role, "ip", "link", "set", "lo", "up")
            for key in ("icmp_ratelimit=0", "icmp_ratemask=0", "conf.all.rp_filter=0",
                        "conf.default.rp_filter=0"):  # fmt: skip
                world.sh(role, "sysctl", "-qw", f"net.ipv4.{key}")
            if role in ROUTERS:
                world.sh(role, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        count: dict[str, int] = {}
        for a, ip_a, b, ip_b in LINKS:
            ia, ib = f"e{count.get(a, 0)}", f"e{count.get(b, 0)}"
            count[a], count[b] = count.get(a, 0) + 1, count.get(b, 0) + 1
            run("ip", "link", "add", ia, "netns", world.ns[a], "type", "veth",
                "peer", "name", ib, "netns", world.ns[b])  # fmt: skip
            for role, ifname, ip in ((a, ia, ip_a), (b, ib, ip_b)):
                world.sh(role, "ip", "addr", "add", f"{ip}/24", "dev", ifname)
                world.sh(role, "ip", "link", "set", ifname, "up")
        for ip in (WEB_IP, BLACKHOLE_IP):
            world.sh("srv", "ip", "addr", "add", f"{ip}/32", "dev", "lo")
        for role, routes in ROUTES.items():
            for r in routes:
                world.sh(role, "ip", "route", "add", *r.split())
        for role, rule in RULES:
            world.sh(role, "iptables", *rule)
        world.overrides = write_overrides(workdir / "overrides.csv")
        if server:
            world.start_server()
    except BaseException:
        world.close()
        raise
    return world


def write_overrides(path: Path) -> Path:
    """GeoIP overrides: every interface address (/32) to its owner's country and AS."""
    lines = ["prefix,cc,asn,as_name"]
    for a, ip_a, b, ip_b in LINKS:
        for role, ip in ((a, ip_a), (b, ip_b)):
            cc, asn = ROLES[role]
            lines.append(f"{ip}/32,{cc},{asn},AS-{role}")
    cc, asn = ROLES["srv"]
    for net in ("198.51.100.0/24", BENCH_NET):
        lines.append(f"{net},{cc},{asn},AS-srv")
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def world_context(workdir: Path, *, server: bool = True) -> Iterator[World]:
    world = build(workdir, server=server)
    try:
        yield world
    finally:
        world.close()
