"""The loopback world as pure data: vantages, sites, ground truth.

A :class:`WorldSpec` describes everything the lab servers need (which site answers what to
which country, which resolver lies to whom) and what a correct, *conservative* analysis must
conclude for every (vantage country, site) pair (:class:`Expectation`, SPEC §5).  Nothing in
this module touches a socket; :func:`probe.lab.run_world` turns a spec into running servers and
a :class:`RunningWorld` (which is also pure data, serialised to ``world.json``).

Addresses (all on loopback, Linux routes the whole of 127/8 to ``lo``):

* vantages (client source addresses)  127.10.N.1
* demo sites                           127.20.0.N   (bulk world: 127.21.0.N, catalogue: 127.22.0.N)
* system / control resolvers           127.53.0.1 / 127.53.0.2
* national block-page servers          127.66.K.1   (K: the country's index, see
  :meth:`WorldSpec.blockpage_address`)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HTTP_PORT = 18080
HTTPS_PORT = 18443
DNS_PORT = 5353
SYSTEM_RESOLVER_IP = "127.53.0.1"
CONTROL_RESOLVER_IP = "127.53.0.2"
DEFAULT_SLOW_DELAY_S = 1.5
ANY_CC = "*"  # behaviour/dns key that applies to every client (and to unknown sources)

BEHAVIOURS: frozenset[str] = frozenset(
    {
        "normal", "geoblock_cloudflare", "geoblock_cloudfront", "http_451", "geo_redirect",
        "sanctions_notice", "challenge_cloudflare", "national_blockpage", "rst_on_connect",
        "rst_after_clienthello", "drop", "slow", "oversized", "redirect_loop", "down",
        "forbidden",
    }
)  # fmt: skip
DNS_BEHAVIOURS: frozenset[str] = frozenset({"nxdomain", "bogus"})
STATUSES: frozenset[str] = frozenset({"accessible", "denied", "down", "inconclusive"})
LOCI: frozenset[str] = frozenset({"none", "server", "local", "transit", "unknown"})
MECHANISMS: frozenset[str] = frozenset(
    {
        "none", "dns_nxdomain", "dns_bogon", "dns_inconsistent", "tcp_timeout", "tcp_refused",
        "tcp_reset", "tls_reset", "tls_timeout", "tls_cert", "http_geoblock", "http_451",
        "http_geo_redirect", "http_blockpage", "http_status", "http_body", "http_timeout",
        "http_reset", "route_blackhole",
    }
)  # fmt: skip
WORLD_FORMAT = "res64-lab-world/1"


@dataclass(frozen=True)
class Vantage:
    """A measuring host: a loopback source address mapped to a country and network."""

    name: str
    cc: str
    asn: int
    as_name: str
    source_ip: str


@dataclass(frozen=True)
class Site:
    """One web site: where it listens and how it treats clients of each country.

    ``behaviours`` and ``dns`` are keyed on the client's country (``"*"`` = everybody);
    a country that is not listed gets ``normal`` and a truthful DNS answer.
    """

    name: str
    hostname: str
    scheme: str  # 'http' | 'https'
    address: str
    operator_cc: str
    server_cc: str
    category_code: str = ""
    behaviours: Mapping[str, str] = field(default_factory=dict)
    dns: Mapping[str, str] = field(default_factory=dict)
    title: str = ""
    notes: str = ""
    server_asn: int = 64510
    server_as_name: str = "Lab CDN"
    delay_s: float = DEFAULT_SLOW_DELAY_S

    def behaviour_for(self, cc: str | None) -> str:
        """The web behaviour shown to a client of country ``cc`` (None: unknown source)."""
        if cc is not None and cc in self.behaviours:
            return self.behaviours[cc]
        return self.behaviours.get(ANY_CC, "normal")

    def dns_for(self, cc: str | None) -> str | None:
        """The system resolver's interference for ``cc`` (None: truthful answer)."""
        if cc is not None and cc in self.dns:
            return self.dns[cc]
        return self.dns.get(ANY_CC)

    @property
    def is_down(self) -> bool:
        """True when nothing listens for this site (connection refused)."""
        return self.behaviours.get(ANY_CC) == "down"

    @property
    def preferred_port(self) -> int:
        return HTTPS_PORT if self.scheme == "https" else HTTP_PORT

    def url(self, port: int | None = None) -> str:
        """The site's URL; the port is always explicit (the lab never uses 80/443)."""
        return f"{self.scheme}://{self.hostname}:{port or self.preferred_port}/"


@dataclass(frozen=True)
class Expectation:
    """Ground truth for one (vantage country, site): what a correct analysis concludes."""

    probe_cc: str
    url: str
    status: str
    mechanism: str
    locus: str
    responsible_cc: str | None
    site: str = ""  # the Site.name this row is about


@dataclass(frozen=True)
class WorldSpec:
    """Sites, vantages and ground truth of one lab world."""

    name: str
    sites: tuple[Site, ...]
    vantages: tuple[Vantage, ...]
    expectations: tuple[Expectation, ...] = ()
    zone: str = "lab.test"

    def site(self, name: str) -> Site:
        for s in self.sites:
            if s.name == name:
                return s
        raise KeyError(name)

    def vantage(self, name: str) -> Vantage:
        for v in self.vantages:
            if v.name == name:
                return v
        raise KeyError(name)

    def client_cc(self, ip: str) -> str | None:
        """Country of a client source address (None for addresses that are no vantage)."""
        for v in self.vantages:
            if v.source_ip == ip:
                return v.cc
        return None

    def countries(self) -> tuple[str, ...]:
        """Vantage countries, sorted."""
        return tuple(sorted({v.cc for v in self.vantages}))

    def blockpage_countries(self) -> tuple[str, ...]:
        """Countries whose resolver answers 'bogus' for some site (they run a block-page server)."""
        ccs = {cc for s in self.sites for cc, kind in s.dns.items() if kind == "bogus"}
        if ANY_CC in ccs:
            ccs = (ccs - {ANY_CC}) | set(self.countries())
        return tuple(sorted(ccs))

    def blockpage_address(self, cc: str) -> str:
        """127.66.K.1 where K is 1 + the index of ``cc`` among the vantage countries."""
        countries = self.countries()
        if cc not in countries:
            raise KeyError(cc)
        return f"127.66.{countries.index(cc) + 1}.1"

    def national_network(self, cc: str) -> tuple[int, str]:
        """ASN and name of the national network of ``cc`` (its first vantage's)."""
        for v in self.vantages:
            if v.cc == cc:
                return v.asn, v.as_name
        raise KeyError(cc)

    def validate(self) -> None:
        """Raise ValueError when the spec is inconsistent."""
        names = [s.name for s in self.sites]
        hosts = [s.hostname for s in self.sites]
        if len(set(names)) != len(names) or len(set(hosts)) != len(hosts):
            raise ValueError("site names and hostnames must be unique")
        if len({v.source_ip for v in self.vantages}) != len(self.vantages):
            raise ValueError("vantage source addresses must be unique")
        for s in self.sites:
            if s.scheme not in ("http", "https"):
                raise ValueError(f"{s.name}: bad scheme {s.scheme!r}")
            if not s.hostname.endswith("." + self.zone):
                raise ValueError(f"{s.name}: {s.hostname} is outside zone {self.zone}")
            for cc, b in s.behaviours.items():
                if b not in BEHAVIOURS:
                    raise ValueError(f"{s.name}: unknown behaviour {b!r}")
                if b == "down" and cc != ANY_CC:
                    raise ValueError(f"{s.name}: 'down' can only apply to every country ('*')")
            for kind in s.dns.values():
                if kind not in DNS_BEHAVIOURS:
                    raise ValueError(f"{s.name}: unknown dns behaviour {kind!r}")
        down = {s.address for s in self.sites if s.is_down}
        if down & {s.address for s in self.sites if not s.is_down}:
            raise ValueError("a 'down' site must not share its address with a live site")
        for e in self.expectations:
            if e.status not in STATUSES or e.mechanism not in MECHANISMS or e.locus not in LOCI:
                raise ValueError(f"bad expectation {e}")


# --------------------------------------------------------------------------------------------
# The demo world


_DEMO_VANTAGES = (
    Vantage("us-1", "US", 64501, "Lab Transit US", "127.10.1.1"),
    Vantage("us-2", "US", 64502, "Lab Cable US", "127.10.2.1"),
    Vantage("de-1", "DE", 64503, "Lab Telekom DE", "127.10.3.1"),
    Vantage("cu-1", "CU", 64504, "Lab Telecom CU", "127.10.4.1"),
    Vantage("ir-1", "IR", 64505, "Lab Mobile IR", "127.10.5.1"),
)
_DE_NET = {"server_asn": 64511, "server_as_name": "Lab Hosting DE"}


def _demo_sites() -> tuple[Site, ...]:
    def site(n: int, name: str, scheme: str, cat: str, title: str, **kw: Any) -> Site:
        kw.setdefault("operator_cc", "US")
        kw.setdefault("server_cc", "US")
        return Site(name, f"{name}.lab.test", scheme, f"127.20.0.{n}", category_code=cat,
                    title=title, **kw)  # fmt: skip

    return (
        site(1, "open-news", "https", "NEWS", "Open News", operator_cc="DE", server_cc="DE",
             notes="normal everywhere", **_DE_NET),
        site(2, "dev-platform", "https", "HOST", "Dev Platform",
             behaviours={"IR": "geoblock_cloudflare", "CU": "geoblock_cloudflare"}),
        site(3, "cloud-docs", "https", "COMT", "Cloud Docs",
             behaviours={"CU": "geoblock_cloudfront"}),
        site(4, "legal-archive", "https", "NEWS", "Legal Archive", operator_cc="DE",
             server_cc="DE", behaviours={"IR": "http_451"}, **_DE_NET),
        site(5, "video-stream", "https", "MMED", "Video Stream",
             behaviours={"CU": "geo_redirect", "IR": "geo_redirect"}),
        site(6, "science-tools", "https", "COMT", "Science Tools",
             behaviours={"IR": "sanctions_notice"}),
        site(7, "social-chat", "https", "GRP", "Social Chat", dns={"IR": "nxdomain"}),
        site(8, "human-rights", "http", "HUMR", "Human Rights Watchers", dns={"IR": "bogus"}),
        site(9, "political-blog", "http", "POLR", "Political Blog",
             behaviours={"IR": "national_blockpage"}),
        site(10, "vpn-service", "https", "ANON", "VPN Service",
             behaviours={"IR": "rst_after_clienthello"}),
        site(11, "exchange-rates", "https", "ECON", "Exchange Rates", behaviours={"CU": "drop"}),
        site(12, "defunct-shop", "https", "COMM", "Defunct Shop", behaviours={ANY_CC: "down"}),
        site(13, "bot-guarded", "https", "HOST", "Bot Guarded Forum",
             behaviours={"IR": "challenge_cloudflare"}),
        site(14, "slow-library", "http", "CULTR", "Slow Library", operator_cc="DE",
             server_cc="DE", behaviours={ANY_CC: "slow"}, **_DE_NET),
    )  # fmt: skip


# (probe_cc, site, status, mechanism, locus, responsible_cc).  Every (country, site) pair not
# listed here is accessible / none / none / None; US and DE are never denied anywhere.
_DEMO_TRUTH: list[tuple[str, str, str, str, str, str | None]] = [
    # Cloudflare error 1009 for IR and CU: the US operator's CDN denies them.
    ("IR", "dev-platform", "denied", "http_geoblock", "server", "US"),
    ("CU", "dev-platform", "denied", "http_geoblock", "server", "US"),
    # CloudFront geo-restriction for CU.
    ("CU", "cloud-docs", "denied", "http_geoblock", "server", "US"),
    # HTTP 451 from a German operator for IR.
    ("IR", "legal-archive", "denied", "http_451", "server", "DE"),
    # Redirect to /unavailable?region=CC for CU and IR.
    ("CU", "video-stream", "denied", "http_geo_redirect", "server", "US"),
    ("IR", "video-stream", "denied", "http_geo_redirect", "server", "US"),
    # "U.S. trade control laws and sanctions" notice for IR: a geoblock by the US operator.
    ("IR", "science-tools", "denied", "http_geoblock", "server", "US"),
    # The IR system resolver says NXDOMAIN, the control resolver knows the name.
    ("IR", "social-chat", "denied", "dns_nxdomain", "local", "IR"),
    # The IR system resolver points at the IR block-page server (control disagrees).
    ("IR", "human-rights", "denied", "dns_inconsistent", "local", "IR"),
    # A transparent proxy answers IR clients with the national block page (plain HTTP).
    ("IR", "political-blog", "denied", "http_blockpage", "local", "IR"),
    # TLS reset after the ClientHello for IR: cannot be localised without traces.
    ("IR", "vpn-service", "denied", "tls_reset", "unknown", None),
    # The TLS handshake of CU clients gets no answer: unattributed.
    ("CU", "exchange-rates", "denied", "tls_timeout", "unknown", None),
    # Nothing listens: down for everybody, never denied.
    ("CU", "defunct-shop", "down", "tcp_refused", "none", None),
    ("DE", "defunct-shop", "down", "tcp_refused", "none", None),
    ("IR", "defunct-shop", "down", "tcp_refused", "none", None),
    ("US", "defunct-shop", "down", "tcp_refused", "none", None),
    # A bot challenge is not a denial: inconclusive for IR.
    ("IR", "bot-guarded", "inconclusive", "none", "unknown", None),
]


def _expectations(
    sites: tuple[Site, ...],
    countries: tuple[str, ...],
    truth: list[tuple[str, str, str, str, str, str | None]],
) -> tuple[Expectation, ...]:
    by_name = {s.name: s for s in sites}
    special = {(cc, name): row for cc, name, *row in truth}  # type: ignore[misc]
    out = []
    for s in sites:
        for cc in countries:
            status, mech, locus, resp = special.get(
                (cc, s.name), ("accessible", "none", "none", None)
            )
            out.append(
                Expectation(cc, by_name[s.name].url(), status, mech, locus, resp, site=s.name)
            )
    if len(special) != len(truth) or not {n for _, n in special} <= set(by_name):
        raise ValueError("ground truth names an unknown site or repeats a row")
    return tuple(out)


def demo_world() -> WorldSpec:
    """The demo world: 14 sites, 5 vantages in US, DE, CU, IR, full ground truth."""
    sites = _demo_sites()
    countries = tuple(sorted({v.cc for v in _DEMO_VANTAGES}))
    spec = WorldSpec("demo", sites, _DEMO_VANTAGES, _expectations(sites, countries, _DEMO_TRUTH))
    spec.validate()
    return spec


def bulk_world(n: int) -> WorldSpec:
    """``n`` normal sites (alternating http/https) on 8 addresses, one US vantage (benchmark)."""
    if n < 1:
        raise ValueError("bulk world needs at least one site")
    sites = tuple(
        Site(
            f"bulk-{i:05d}",
            f"bulk-{i:05d}.lab.test",
            "http" if i % 2 else "https",
            f"127.21.0.{(i - 1) % 8 + 1}",
            operator_cc="US",
            server_cc="US",
            category_code="MISC",
            title=f"Bulk site {i}",
        )
        for i in range(1, n + 1)
    )
    vantages = (_DEMO_VANTAGES[0],)
    spec = WorldSpec("bulk", sites, vantages, _expectations(sites, ("US",), []))
    spec.validate()
    return spec


def catalogue_world(cc: str = "IR", slow_delay_s: float = 0.3) -> WorldSpec:
    """One site per behaviour, applied to clients of ``cc`` (tests of the servers themselves).

    No ground truth: this world exercises the lab, not the analysis.
    """
    vantages = (_DEMO_VANTAGES[0], _DEMO_VANTAGES[4])
    rows: list[tuple[str, str, dict[str, str], dict[str, str]]] = [
        (b, "https", {cc: b}, {}) for b in sorted(BEHAVIOURS - {"down", "national_blockpage"})
    ]
    rows += [
        ("national_blockpage", "http", {cc: "national_blockpage"}, {}),
        ("rst_after_clienthello-http", "http", {cc: "rst_after_clienthello"}, {}),
        ("drop-http", "http", {cc: "drop"}, {}),
        ("down", "https", {ANY_CC: "down"}, {}),
        ("dns-nxdomain", "https", {}, {cc: "nxdomain"}),
        ("dns-bogus", "http", {}, {cc: "bogus"}),
        ("dns-bogus-tls", "https", {}, {cc: "bogus"}),
    ]
    sites = tuple(
        Site(
            name.replace("_", "-"),
            f"{name.replace('_', '-')}.lab.test",
            scheme,
            f"127.22.0.{i}",
            operator_cc="US",
            server_cc="US",
            behaviours=beh,
            dns=dns_,
            title=f"Catalogue {name}",
            delay_s=slow_delay_s,
        )
        for i, (name, scheme, beh, dns_) in enumerate(rows, start=1)
    )
    spec = WorldSpec("catalogue", sites, vantages)
    spec.validate()
    return spec


# --------------------------------------------------------------------------------------------
# A running world (pure data; run_world builds it) and its JSON form


@dataclass(frozen=True)
class RunningWorld:
    """Where a started world listens, and the files the probe needs to measure it."""

    spec: WorldSpec
    workdir: Path
    dns: tuple[str, int]
    control_dns: tuple[str, int]
    ca_bundle: Path
    overrides_csv: Path
    targets_csv: Path
    urls: list[str]
    site_urls: Mapping[str, str] = field(default_factory=dict)
    blockpages: Mapping[str, str] = field(default_factory=dict)  # cc -> block-page address

    @property
    def world_json(self) -> Path:
        return self.workdir / "world.json"

    def resolver_arg(self) -> str:
        """``IP:PORT`` of the system resolver, for ``--resolver``."""
        return f"{self.dns[0]}:{self.dns[1]}"

    def control_resolver_arg(self) -> str:
        """``IP:PORT`` of the truthful resolver, for ``--control-resolver``."""
        return f"{self.control_dns[0]}:{self.control_dns[1]}"

    def url_for(self, site_name: str) -> str:
        return self.site_urls[site_name]

    def expectations(self) -> list[Expectation]:
        """Ground truth with the real URLs (actual ports)."""
        return [
            dataclasses.replace(e, url=self.site_urls.get(e.site, e.url))
            for e in self.spec.expectations
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": WORLD_FORMAT,
            "workdir": str(self.workdir),
            "resolver": self.resolver_arg(),
            "control_resolver": self.control_resolver_arg(),
            "ca_bundle": str(self.ca_bundle),
            "overrides_csv": str(self.overrides_csv),
            "targets_csv": str(self.targets_csv),
            "urls": list(self.urls),
            "site_urls": dict(self.site_urls),
            "blockpages": dict(self.blockpages),
            "vantages": [dataclasses.asdict(v) for v in self.spec.vantages],
            "expectations": [dataclasses.asdict(e) for e in self.expectations()],
            "spec": spec_to_dict(self.spec),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunningWorld:
        if d.get("format") != WORLD_FORMAT:
            raise ValueError(f"not a lab world description (format {d.get('format')!r})")
        return cls(
            spec=spec_from_dict(d["spec"]),
            workdir=Path(d["workdir"]),
            dns=_hostport(d["resolver"]),
            control_dns=_hostport(d["control_resolver"]),
            ca_bundle=Path(d["ca_bundle"]),
            overrides_csv=Path(d["overrides_csv"]),
            targets_csv=Path(d["targets_csv"]),
            urls=list(d["urls"]),
            site_urls=dict(d["site_urls"]),
            blockpages=dict(d["blockpages"]),
        )

    def write_json(self) -> Path:
        """Write ``world.json`` atomically (tmp + rename) and return its path."""
        tmp = self.world_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        tmp.replace(self.world_json)
        return self.world_json

    @classmethod
    def load(cls, path: Path) -> RunningWorld:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _hostport(s: str) -> tuple[str, int]:
    host, _, port = s.rpartition(":")
    return host, int(port)


def spec_to_dict(spec: WorldSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "zone": spec.zone,
        "sites": [
            {**dataclasses.asdict(s), "behaviours": dict(s.behaviours), "dns": dict(s.dns)}
            for s in spec.sites
        ],
        "vantages": [dataclasses.asdict(v) for v in spec.vantages],
        "expectations": [dataclasses.asdict(e) for e in spec.expectations],
    }


def spec_from_dict(d: Mapping[str, Any]) -> WorldSpec:
    return WorldSpec(
        name=d["name"],
        zone=d["zone"],
        sites=tuple(Site(**s) for s in d["sites"]),
        vantages=tuple(Vantage(**v) for v in d["vantages"]),
        expectations=tuple(Expectation(**e) for e in d["expectations"]),
    )
