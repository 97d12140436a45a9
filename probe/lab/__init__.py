"""The loopback test/demo world: real trio servers on 127.x addresses.

Sites, a lying "system" resolver and a truthful control resolver, national block-page servers
and a throw-away CA, whose behaviour depends on the client's *source* address (a vantage is a
source address 127.10.N.1 mapped to a country by the overrides CSV).  Used by the integration
tests, ``res64 demo`` and the benchmark::

    async with run_world(demo_world(), workdir) as world:
        # res64 measure world.targets_csv --resolver world.resolver_arg()
        #   --control-resolver world.control_resolver_arg() --ca-bundle world.ca_bundle
        #   --geoip-overrides world.overrides_csv --source-address 127.10.5.1
        ...

``python -m probe.lab serve --workdir DIR`` runs a world in its own process.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from probe.lab.dns_server import LabDns, bind_udp, serve_udp
from probe.lab.pki import LabPKI, client_context
from probe.lab.web import LabWeb
from probe.lab.world import (
    BEHAVIOURS,
    CONTROL_RESOLVER_IP,
    DNS_BEHAVIOURS,
    DNS_PORT,
    SYSTEM_RESOLVER_IP,
    Expectation,
    RunningWorld,
    Site,
    Vantage,
    WorldSpec,
    bulk_world,
    catalogue_world,
    demo_world,
)

log = logging.getLogger(__name__)


def overrides_csv_text(spec: WorldSpec) -> str:
    """``prefix,cc,asn,as_name`` (for ``--geoip-overrides``): vantages, sites, block pages."""
    rows: dict[str, tuple[str, str, int, str]] = {}
    for v in spec.vantages:
        rows.setdefault(v.source_ip, (f"{v.source_ip}/32", v.cc, v.asn, v.as_name))
    for s in spec.sites:
        rows.setdefault(s.address, (f"{s.address}/32", s.server_cc, s.server_asn, s.server_as_name))
    for cc in spec.blockpage_countries():
        address = spec.blockpage_address(cc)
        rows.setdefault(address, (f"{address}/32", cc, *spec.national_network(cc)))
    return _csv(("prefix", "cc", "asn", "as_name"), rows.values())


def targets_csv_text(spec: WorldSpec, site_urls: Mapping[str, str]) -> str:
    """``url,category_code,operator_cc,notes``: one row per site (the probe's target list)."""
    rows = []
    for s in spec.sites:
        notes = s.notes or " ".join(
            [f"{cc}:{b}" for cc, b in s.behaviours.items()]
            + [f"{cc}:dns_{kind}" for cc, kind in s.dns.items()]
        )
        rows.append((site_urls.get(s.name, s.url()), s.category_code, s.operator_cc, notes))
    return _csv(("url", "category_code", "operator_cc", "notes"), rows)


def _csv(header: tuple[str, ...], rows: object) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)  # type: ignore[arg-type]
    return buf.getvalue()


@asynccontextmanager
async def run_world(spec: WorldSpec, workdir: Path) -> AsyncIterator[RunningWorld]:
    """Start every server of ``spec`` (trio) and yield once all sockets are bound.

    Writes ``ca.pem``, ``overrides.csv``, ``targets.csv`` and ``world.json`` into ``workdir``.
    Leaving the context stops every server and closes every socket.
    """
    spec.validate()
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    pki = LabPKI()
    ca_bundle = pki.write_ca(workdir / "ca.pem")
    async with trio.open_nursery() as nursery:
        try:
            dns_addr = await nursery.start(
                serve_udp,
                await bind_udp(SYSTEM_RESOLVER_IP, DNS_PORT),
                LabDns(spec, truthful=False),
            )
            control_addr = await nursery.start(
                serve_udp,
                await bind_udp(CONTROL_RESOLVER_IP, DNS_PORT),
                LabDns(spec, truthful=True),
            )
            site_urls, blockpages = await LabWeb(spec).start(nursery, pki)
            overrides = workdir / "overrides.csv"
            overrides.write_text(overrides_csv_text(spec))
            targets = workdir / "targets.csv"
            targets.write_text(targets_csv_text(spec, site_urls))
            world = RunningWorld(
                spec=spec,
                workdir=workdir,
                dns=(dns_addr[0], dns_addr[1]),
                control_dns=(control_addr[0], control_addr[1]),
                ca_bundle=ca_bundle,
                overrides_csv=overrides,
                targets_csv=targets,
                urls=[site_urls[s.name] for s in spec.sites],
                site_urls=site_urls,
                blockpages=blockpages,
            )
            world.write_json()
            log.info("lab world %r ready in %s", spec.name, workdir)
            yield world
        finally:
            nursery.cancel_scope.cancel()


__all__ = [
    "BEHAVIOURS",
    "DNS_BEHAVIOURS",
    "Expectation",
    "LabPKI",
    "RunningWorld",
    "Site",
    "Vantage",
    "WorldSpec",
    "bulk_world",
    "catalogue_world",
    "client_context",
    "demo_world",
    "overrides_csv_text",
    "run_world",
    "targets_csv_text",
]
