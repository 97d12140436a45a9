"""The ``res64`` command line: parse options, build a frozen config, call the library.

Every :class:`probe.errors.ProbeError` becomes a one-line message and exit code 2; an interrupted
measurement exits 130 after flushing what it finished.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import trio
import typer
from rich.console import Console

from probe._version import __version__
from probe.config import (
    DEFAULT_CONTROL_RESOLVER,
    Limits,
    MeasureConfig,
    Timeouts,
    is_loopback,
    loopback_only_from_env,
    parse_host_port,
    redact_url,
    validate_proxy,
)
from probe.console import RichProgress, err_console
from probe.errors import ConfigError, ProbeError, StoreError, TargetError

app = typer.Typer(
    name="res64",
    help=(
        "res64-probe: evidence-grade measurements of denial of access to public Internet sites "
        "(ITU Resolution 64). Measure, analyse, report."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
targets_app = typer.Typer(help="Check target lists.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
helper_app = typer.Typer(help="Control helper service for lone vantages.", no_args_is_help=True)
app.add_typer(helper_app, name="helper")
import_app = typer.Typer(
    help="Import public measurements (OONI, RIPE Atlas).", no_args_is_help=True
)
app.add_typer(import_app, name="import")
campaign_app = typer.Typer(help="Measurement campaigns on a schedule.", no_args_is_help=True)
app.add_typer(campaign_app, name="campaign")
fingerprints_app = typer.Typer(help="Block-page and geoblock fingerprints.", no_args_is_help=True)
app.add_typer(fingerprints_app, name="fingerprints")


# Vantage and GeoIP options mean the same on every command that measures (SPEC §8).
CountryOpt = Annotated[
    str | None, typer.Option(help="Vantage country (ISO 3166-1 alpha-2); else from GeoIP.")
]
SourceAddressOpt = Annotated[
    str | None, typer.Option(help="Bind every socket to this local address (never stored).")
]
ResolverOpt = Annotated[
    str | None, typer.Option(help="Resolver IP[:PORT] (default: the system resolver).")
]
ControlResolverOpt = Annotated[
    str,
    typer.Option(
        help="Control resolver IP[:PORT] or DoH https URL, queried besides the system one; "
        "'none' disables it."
    ),
]
GeoipOpt = Annotated[
    Path | None, typer.Option(help="GeoIP database (.mmdb) instead of the embedded one.")
]
GeoipOverridesOpt = Annotated[
    Path | None, typer.Option(help="CSV prefix,cc,asn,as_name that wins over the database.")
]
CaBundleOpt = Annotated[Path | None, typer.Option(help="Trust only these CA certificates (PEM).")]
VantageIdOpt = Annotated[
    str | None, typer.Option(help="Pseudonymous vantage id (default: persisted random id).")
]
DiscoverOpt = Annotated[
    bool,
    typer.Option(
        "--discover/--no-discover",
        help="Find the vantage country from its public address (asks IP-echo services; "
        "the address is never stored).",
    ),
]


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"res64-probe {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_cb, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """res64-probe command line."""


def _split_targets(items: list[str]) -> tuple[list[Path], list[str]]:
    files, urls = [], []
    for it in items:
        if "://" in it:
            urls.append(it)
        elif Path(it).exists() or it.endswith((".csv", ".txt")):
            files.append(Path(it))
        else:
            urls.append(it)
    return files, urls


def load_all_targets(items: list[str]):  # -> list[Target]
    from probe.targets import load_targets, targets_from_urls

    files, urls = _split_targets(items)
    out = []
    seen: set[str] = set()
    for f in files:
        for t in load_targets(f):
            if t.url not in seen:
                seen.add(t.url)
                out.append(t)
    for t in targets_from_urls(urls):
        if t.url not in seen:
            seen.add(t.url)
            out.append(t)
    if not out:
        raise TargetError("no targets: give a target CSV or one or more URLs")
    return out, [str(f) for f in files]


def _existing_file(p: Path | None, opt: str) -> Path | None:
    if p is None:
        return None
    if not p.is_file():
        raise ConfigError(f"{opt}: {p} is not a readable file")
    return p


def _geo_and_vantage(
    geoip: Path | None,
    geoip_overrides: Path | None,
    *,
    country: str | None,
    source_address: str | None,
    vantage_id: str | None,
    discover: bool,
    is_control: bool = False,
):  # -> tuple[GeoResolver, Vantage]
    """The GeoIP resolver and the vantage, as every measuring command builds them (SPEC §8)."""
    from probe.geo import open_geo
    from probe.vantage import resolve_vantage

    geo = open_geo(
        _existing_file(geoip, "--geoip"), _existing_file(geoip_overrides, "--geoip-overrides")
    )
    vantage = resolve_vantage(
        geo,
        country=country,
        source_address=source_address,
        vantage_id=vantage_id,
        discover=discover and not loopback_only_from_env(),
        is_control=is_control,
    )
    return geo, vantage


@app.command()
def measure(
    targets: Annotated[
        list[str], typer.Argument(help="Target CSV file(s) and/or URLs.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")],
    campaign: Annotated[str, typer.Option(help="Campaign name (partition key).")] = "adhoc",
    country: CountryOpt = None,
    source_address: SourceAddressOpt = None,
    proxy: Annotated[
        str | None, typer.Option(help="Measure through a proxy (http://, https://, socks5://).")
    ] = None,
    resolver: ResolverOpt = None,
    control_resolver: ControlResolverOpt = DEFAULT_CONTROL_RESOLVER,
    geoip: GeoipOpt = None,
    geoip_overrides: GeoipOverridesOpt = None,
    ca_bundle: CaBundleOpt = None,
    concurrency: Annotated[int, typer.Option(min=1, max=4096, help="Targets at once.")] = 64,
    per_host: Annotated[int, typer.Option(min=1, max=16, help="Requests per host at once.")] = 2,
    timeout: Annotated[float, typer.Option(min=0.1, help="HTTP step timeout (s).")] = 20.0,
    repeat: Annotated[int, typer.Option(min=1, help="Measure the list N times.")] = 1,
    interval: Annotated[float, typer.Option(min=0, help="Seconds between repetitions.")] = 0.0,
    body_bytes: Annotated[
        int, typer.Option(min=0, max=1 << 20, help="Body prefix bytes stored.")
    ] = 32 * 1024,
    vantage_id: VantageIdOpt = None,
    discover: DiscoverOpt = True,
    control_proxy: Annotated[
        str | None,
        typer.Option(help="Also measure every target through this proxy abroad, as a control."),
    ] = None,
    control_proxy_country: Annotated[
        str | None,
        typer.Option(help="Country of the control proxy's exit (else GeoIP of its address)."),
    ] = None,
    trace: Annotated[
        str,
        typer.Option(
            help="Traceroute the measured address: none, failed (failed measurements) or all. "
            "Needs raw sockets (root or CAP_NET_RAW); also records SYN-ACK/RST TTLs."
        ),
    ] = "none",
    control_helper: Annotated[
        str | None,
        typer.Option(help="URL of a res64 helper abroad that measures each target as a control."),
    ] = None,
    helper_token_file: Annotated[
        Path | None, typer.Option(help="File with the bearer token for --control-helper.")
    ] = None,
    batch: Annotated[
        int,
        typer.Option(min=1, max=100_000, help="Rows per Parquet file (also flushed every 30 s)."),
    ] = 256,
    resume: Annotated[bool, typer.Option(help="Continue the last unfinished run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Measure DNS, TCP, TLS and HTTP(S) reachability of targets; write Parquet to --out."""
    from probe.runner import run_measurements

    loopback_only = loopback_only_from_env()
    if trace not in ("none", "failed", "all"):
        raise ConfigError(f"--trace: expected none, failed or all, got {trace!r}")
    tlist, sources = load_all_targets(targets)
    if resolver:
        parse_host_port(resolver, 53, "--resolver")
    ctl = None if control_resolver.lower() == "none" else control_resolver
    if ctl and not ctl.startswith("https://"):
        parse_host_port(ctl, 53, "--control-resolver")
    if proxy:
        validate_proxy(proxy)
        if loopback_only and not is_loopback(urlsplit(proxy).hostname or ""):
            raise ConfigError(f"--proxy {redact_url(proxy)}: only loopback proxies in this mode")
    geo, vantage = _geo_and_vantage(
        geoip, geoip_overrides, country=country, source_address=source_address,
        vantage_id=vantage_id, discover=discover,
    )  # fmt: skip
    proxy_vantage = None
    if control_proxy:
        validate_proxy(control_proxy)
        if loopback_only and not is_loopback(urlsplit(control_proxy).hostname or ""):
            raise ConfigError("--control-proxy: only loopback proxies in this mode")
        proxy_vantage = control_proxy_vantage(
            geo, control_proxy, control_proxy_country, discover and not loopback_only
        )
    cfg = MeasureConfig(
        out=str(out),
        vantage=vantage,
        campaign=campaign,
        resolver=resolver,
        control_resolver=ctl,
        proxy=proxy,
        ca_bundle=_existing_file(ca_bundle, "--ca-bundle"),
        geoip=geoip,
        geoip_overrides=geoip_overrides,
        timeouts=Timeouts.from_total(timeout),
        limits=Limits(body_prefix_bytes=body_bytes),
        concurrency=concurrency,
        per_host=per_host,
        repeat=repeat,
        interval=interval,
        resume=resume,
        quiet=quiet,
        loopback_only=loopback_only,
        flush_records=batch,
        control_proxy=control_proxy,
        control_proxy_vantage=proxy_vantage,
        control_helper=control_helper,
        helper_token=_helper_token(control_helper, helper_token_file),
        trace=trace,
    )
    console = err_console()
    progress = None if quiet else RichProgress(console=console)
    summary = trio.run(
        lambda: run_measurements(
            cfg,
            tlist,
            geo,
            progress=progress,
            target_sources=sources,
            on_note=lambda n: console.print(f"[yellow]note:[/] {n}"),
        )
    )
    failed = sum(summary.by_step.values())
    console.print(
        f"run {summary.run_id}: {summary.measured} measured "
        f"({summary.measured - failed} ok, {failed} failed"
        + (
            ", " + ", ".join(f"{k} {v}" for k, v in sorted(summary.by_step.items()))
            if failed
            else ""
        )
        + f") in {summary.seconds:.1f} s"
        + (f"; {summary.skipped_done} already done" if summary.skipped_done else "")
    )
    if summary.hops:
        console.print(f"traceroutes: {summary.hops} hops stored")
    if summary.controls or control_helper or control_proxy:
        console.print(
            f"controls: {summary.controls} stored"
            + (f", {summary.controls_missing} missing" if summary.controls_missing else "")
        )
    console.print(f"dataset: {out}  manifest: {summary.manifest_path}")
    if summary.interrupted:
        console.print(
            "[yellow]interrupted[/]: finished measurements were saved; continue with --resume"
        )
        raise typer.Exit(130)


def _helper_token(helper: str | None, token_file: Path | None) -> str | None:
    if helper is None:
        return None
    if token_file is None:
        raise ConfigError("--control-helper needs --helper-token-file")
    from probe.helper import load_tokens

    return load_tokens(_existing_file(token_file, "--helper-token-file"))[0]


def control_proxy_vantage(geo, proxy: str, country: str | None, discover: bool):  # -> Vantage
    """The control proxy's vantage: its exit country from --control-proxy-country or GeoIP."""
    from probe.config import Vantage
    from probe.vantage import discover_public_ip, validate_country

    info = None
    if country is None and discover:
        exit_ip = discover_public_ip(proxy=proxy)
        info = geo.lookup(exit_ip) if exit_ip else None
    cc = validate_country(country) if country else (info.cc if info and info.cc else "ZZ")
    return Vantage(
        vantage_id="ctlproxy-" + cc.lower(),
        probe_cc=cc,
        probe_asn=info.asn if info else None,
        probe_as_name=info.as_name if info else None,
        is_control=True,
    )


@targets_app.command("check")
def targets_check(
    file: Annotated[Path, typer.Argument(help="Target CSV to validate.")],
) -> None:
    """Validate a target list; print a summary, or the errors (exit 2)."""
    from probe.targets import load_targets, summarise

    tl = load_targets(file)
    s = summarise(tl)
    typer.echo(f"{file}: {len(tl)} targets OK")
    for key, val in s.items():
        if isinstance(val, dict):
            items = ", ".join(f"{k} {v}" for k, v in sorted(val.items(), key=lambda kv: -kv[1]))
            typer.echo(f"  {key}: {items}")
        else:
            typer.echo(f"  {key}: {val}")


def parse_window(value: str) -> timedelta:
    """``24h``, ``90m``, ``2d``, ``3600s`` or plain hours → timedelta."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", value.lower())
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--window: expected a duration such as 24h, 90m or 2d, got {value!r}")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "": "hours"}[m.group(2)]
    return timedelta(**{unit: float(m.group(1))})


@app.command()
def analyze(
    datasets: Annotated[
        list[str], typer.Argument(help="Dataset directories or Parquet files.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the analysis files.")],
    window: Annotated[
        str, typer.Option(help="Controls: other countries' measurements within ± this window.")
    ] = "24h",
    skip_bad: Annotated[
        bool,
        typer.Option(help="Skip unreadable or foreign Parquet files (listed) instead of failing."),
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Do not print the pairs table.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="pandas (one process) or dask (a Dask distributed cluster).")
    ] = "pandas",
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler tcp://HOST:PORT (default: a local 2-worker cluster)."),
    ] = None,
) -> None:
    """Compare each country's measurements with controls; write verdicts, targets and pairs."""
    from analysis.pipeline import analyze as run_analysis
    from probe.cli_tables import print_pairs

    w = parse_window(window)
    for d in datasets:
        if "://" not in d and not Path(d).exists():
            raise ConfigError(f"{d}: no such dataset")
    res = run_analysis(
        datasets,
        out,
        window=w,
        skip_bad=skip_bad,
        command=sys.argv[:],
        engine=engine,
        scheduler=scheduler,
        release_memory=False,  # the command ends here
    )
    console = Console()
    if not quiet:
        print_pairs(console, res.pairs)
    err_console().print(f"analysis written to {out}")


@app.command()
def trace(
    destinations: Annotated[
        list[str], typer.Argument(help="Host names or IP addresses.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Destination port (tcp/udp).")] = 443,
    proto: Annotated[str, typer.Option(help="Probe protocol: tcp, icmp or udp.")] = "tcp",
    pps: Annotated[int, typer.Option(min=1, max=100_000, help="Packets per second budget.")] = 200,
    campaign: Annotated[str, typer.Option(help="Campaign name (partition key).")] = "adhoc",
    country: CountryOpt = None,
    source_address: SourceAddressOpt = None,
    resolver: ResolverOpt = None,
    geoip: GeoipOpt = None,
    geoip_overrides: GeoipOverridesOpt = None,
    vantage_id: VantageIdOpt = None,
    discover: DiscoverOpt = True,
) -> None:
    """Paris traceroute (all TTLs at once) to each destination; writes the hops table.

    Needs raw sockets: run as root, or grant the interpreter CAP_NET_RAW with
    `setcap cap_net_raw+ep $(readlink -f $(which python3))`.
    """
    from probe.tracing import run_trace

    if proto not in ("tcp", "icmp", "udp"):
        raise ConfigError(f"--proto: expected tcp, icmp or udp, got {proto!r}")
    if resolver:
        parse_host_port(resolver, 53, "--resolver")
    loopback_only = loopback_only_from_env()
    geo, vantage = _geo_and_vantage(
        geoip, geoip_overrides, country=country, source_address=source_address,
        vantage_id=vantage_id, discover=discover,
    )  # fmt: skip
    s = trio.run(
        partial(
            run_trace,
            destinations,
            out=out,
            port=port,
            proto=proto,
            pps=pps,
            vantage=vantage,
            geo=geo,
            campaign=campaign,
            resolver=resolver,
            loopback_only=loopback_only,
        )
    )
    console = err_console()
    console.print(
        f"run {s.run_id}: {s.traces} traces ({s.reached} reached), {s.hops} hops, "
        f"{s.packets_sent} packets in {s.elapsed_s:.1f} s"
    )
    for name, why in s.unresolved.items():
        console.print(f"[yellow]unresolved[/] {name}: {why}")
    for name in s.refused:
        console.print(f"[yellow]refused[/] {name}: not loopback (loopback-only mode)")
    console.print(f"dataset: {out}")


@app.command()
def report(
    analysis_dir: Annotated[Path, typer.Argument(help="Directory written by res64 analyze.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for the report files.")],
    fmt: Annotated[
        str, typer.Option("--format", help="Comma-separated: md,html,csv,xlsx,docx,png.")
    ] = "md,html,csv,xlsx,docx,png",
    title: Annotated[str | None, typer.Option(help="Report title.")] = None,
    lang: Annotated[str, typer.Option(help="Language of the report text: en, es or fr.")] = "en",
) -> None:
    """Write the evidence report a delegation can attach (tables, figures, method, provenance)."""
    from analysis.report import LANGS, generate_report, parse_formats

    if lang not in LANGS:
        raise ConfigError(f"--lang: expected one of {', '.join(LANGS)}, got {lang!r}")
    if not analysis_dir.is_dir():
        raise ConfigError(f"{analysis_dir}: not a directory (give the --out of res64 analyze)")
    paths = generate_report(
        analysis_dir, out, formats=parse_formats(fmt), title=title, lang=lang, command=sys.argv[:]
    )
    for kind, path in paths.items():
        typer.echo(f"{kind}: {path}")


def _expand_dirs(paths: list[Path]) -> list[Path]:
    """Directories stand for the JSON / JSONL (optionally gzipped) files below them."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and ".json" in f.name)
        else:
            out.append(p)
    return out


def _print_import(summary) -> None:  # ImportSummary
    console = err_console()
    for label, value in summary.rows():
        console.print(f"{label}: {value}")
    for p in summary.problems[:10]:
        console.print(f"[yellow]problem:[/] {p}")


@import_app.command("ooni")
def import_ooni(
    files: Annotated[
        list[Path] | None, typer.Argument(help="OONI JSON / JSONL / .jsonl.gz files.")
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory.")] = Path("."),
    campaign: Annotated[str, typer.Option(help="Campaign name of the imported rows.")] = "ooni",
    api: Annotated[
        bool, typer.Option(help="Fetch from OONI's public API instead of files.")
    ] = False,
    probe_cc: Annotated[str | None, typer.Option(help="--api: country (ISO alpha-2).")] = None,
    since: Annotated[str | None, typer.Option(help="--api: first day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="--api: last day (YYYY-MM-DD).")] = None,
    domain: Annotated[str | None, typer.Option(help="--api: only this domain.")] = None,
) -> None:
    """Import OONI Web Connectivity measurements (test-helper controls included)."""
    import platformdirs

    from probe.imports import import_ooni_api, import_ooni_files
    from probe.vantage import validate_country

    if api:
        if loopback_only_from_env():
            raise ConfigError("--api is disabled in loopback-only mode")
        if not probe_cc:
            raise ConfigError("--api needs --probe-cc")
        summary = import_ooni_api(
            out,
            probe_cc=validate_country(probe_cc),
            since=since,
            until=until,
            domain=domain,
            cache_dir=Path(platformdirs.user_cache_dir("res64")) / "ooni-api",
            campaign=campaign,
        )
    else:
        if not files:
            raise ConfigError("give OONI measurement files, or --api --probe-cc CC")
        summary = import_ooni_files(_expand_dirs(files), out, campaign=campaign)
    _print_import(summary)


@import_app.command("atlas")
def import_atlas(
    files: Annotated[list[Path], typer.Argument(help="RIPE Atlas traceroute results (JSON).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset directory.")],
    probe_cc: Annotated[
        str | None, typer.Option(help="Country of probes missing from the metadata.")
    ] = None,
    probe_meta: Annotated[
        Path | None, typer.Option(help="RIPE Atlas probe metadata (JSON) for countries.")
    ] = None,
    campaign: Annotated[str, typer.Option(help="Campaign name of the imported hops.")] = "atlas",
) -> None:
    """Import RIPE Atlas traceroutes into the hops table."""
    from probe.imports import import_atlas_files

    summary = import_atlas_files(
        _expand_dirs(files), out, probe_cc=probe_cc, probe_meta=probe_meta, campaign=campaign
    )
    _print_import(summary)


@app.command("compare-ooni")
def compare_ooni_cmd(
    analysis_dir: Annotated[Path, typer.Argument(help="Directory written by res64 analyze.")],
    dataset: Annotated[
        list[Path] | None, typer.Option(help="Dataset(s) if they moved since the analysis.")
    ] = None,
) -> None:
    """Agreement between res64's verdicts and OONI's on imported OONI measurements."""
    from analysis.compare_ooni import compare_ooni, comparison_tables

    result = compare_ooni(analysis_dir, dataset or None)
    console = Console()
    for t in comparison_tables(result):
        console.print(t)


@campaign_app.command("run")
def campaign_run(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (TOML).")],
    once: Annotated[
        bool, typer.Option(help="Do the runs that are due, then exit (what a timer runs).")
    ] = False,
    delay: Annotated[bool, typer.Option(help="Sleep the random jitter first (cron).")] = False,
) -> None:
    """Run a campaign's schedule in the foreground; restarts continue where it stopped."""
    from probe.campaign import exit_code, load_spec, run_campaign

    s = load_spec(spec)
    console = err_console()
    res = trio.run(partial(run_campaign, s, once=once, delay=delay, on_event=console.print))
    if res.finished and res.pending_uploads:
        console.print(
            f"{len(res.pending_uploads)} runs not uploaded: "
            f"res64 upload {s.data_dir} {s.upload.dest if s.upload else 'DEST'}"
        )
    raise typer.Exit(exit_code(res))


@campaign_app.command("status")
def campaign_status_cmd(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (TOML).")],
) -> None:
    """Runs done, next run, last errors, pending uploads."""
    from probe.campaign import campaign_status, load_spec

    for line in campaign_status(load_spec(spec, check_files=False)):
        typer.echo(line)


@campaign_app.command("install")
def campaign_install(
    spec: Annotated[Path, typer.Argument(help="Campaign spec (TOML).")],
    user: Annotated[
        bool, typer.Option(help="A systemd --user unit instead of a system one.")
    ] = False,
    cron: Annotated[
        bool, typer.Option(help="Print a crontab line instead of systemd units.")
    ] = False,
    dry_run: Annotated[bool, typer.Option(help="Print the units, write nothing.")] = False,
) -> None:
    """Write a systemd service + timer (RandomizedDelaySec, Persistent=true) or a crontab line."""
    from probe.campaign import install_campaign, load_spec

    res = install_campaign(load_spec(spec), user=user, cron=cron, dry_run=dry_run)
    if cron:
        for line in res.crontab or []:
            typer.echo(line)
    elif dry_run:
        for path, text in res.files.items():
            typer.echo(f"# {path}")
            typer.echo(text)
    else:
        for path in res.written:
            typer.echo(f"wrote {path}")
    v = res.verification
    if not cron:
        if v is None:
            typer.echo("systemd-analyze not found: units not verified")
        elif not v.ok:
            typer.echo(v.output)
            raise typer.Exit(1)
        elif v.output:
            typer.echo(v.output)
    for hint in res.hints:
        typer.echo(hint)


@app.command()
def upload(
    dataset: Annotated[Path, typer.Argument(help="Local dataset directory (with runs/).")],
    dest: Annotated[str, typer.Argument(help="Destination: s3://bucket/prefix or a path.")],
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint (else AWS_ENDPOINT_URL_S3).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile for credentials.")] = None,
    run: Annotated[list[str] | None, typer.Option(help="Only these run ids.")] = None,
) -> None:
    """Upload complete files (those in run manifests), each once (SHA-256), with retries."""
    from probe.upload import UploadError, format_upload_result, upload_dataset

    try:
        res = upload_dataset(dataset, dest, runs=run or None, endpoint_url=endpoint_url,
                             profile=profile)  # fmt: skip
    except UploadError as exc:
        for line in format_upload_result(exc.result):
            typer.echo(line)
        raise
    for line in format_upload_result(res):
        typer.echo(line)
    if not res.complete:
        raise typer.Exit(1)


@helper_app.command("serve")
def helper_serve(
    listen: Annotated[str, typer.Option(help="Address to listen on, IP:PORT.")] = "127.0.0.1:8443",
    token_file: Annotated[
        Path | None, typer.Option(help="Bearer tokens, one per line (required).")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS certificate chain (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    country: CountryOpt = None,
    source_address: SourceAddressOpt = None,
    resolver: ResolverOpt = None,
    control_resolver: ControlResolverOpt = DEFAULT_CONTROL_RESOLVER,
    geoip: GeoipOpt = None,
    geoip_overrides: GeoipOverridesOpt = None,
    ca_bundle: CaBundleOpt = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="HTTP step timeout (s).")] = 20.0,
    concurrency: Annotated[int, typer.Option(min=1, max=1024, help="URLs at once.")] = 32,
    rate: Annotated[int, typer.Option(min=1, help="URLs per token per minute.")] = 600,
    max_urls: Annotated[int, typer.Option(min=1, help="URLs per request.")] = 100,
    vantage_id: VantageIdOpt = None,
    discover: DiscoverOpt = True,
    allow_private: Annotated[
        bool, typer.Option(hidden=True, help="Measure private targets (tests only).")
    ] = False,
    print_systemd: Annotated[
        bool, typer.Option(help="Print a systemd unit for this command line and exit.")
    ] = False,
    user: Annotated[str, typer.Option(help="Service user for --print-systemd.")] = "res64",
) -> None:
    """Serve control measurements to vantages in other countries (HTTPS, bearer tokens)."""
    import logging
    import shutil

    from probe.helper import HelperConfig, load_tokens, serve_helper, systemd_unit

    if token_file is None:
        raise ConfigError("--token-file is required (one bearer token per line)")
    host, port = parse_host_port(listen, 8443, "--listen")
    if print_systemd:
        exe = shutil.which("res64") or sys.argv[0]
        args = [a for a in sys.argv[1:] if a not in ("--print-systemd",)]
        if "--user" in args:
            i = args.index("--user")
            del args[i : i + 2]
        typer.echo(systemd_unit([str(Path(exe).resolve()), *args], user))
        return
    loopback_only = loopback_only_from_env()
    ctl = None if control_resolver.lower() == "none" else control_resolver
    geo, vantage = _geo_and_vantage(
        geoip, geoip_overrides, country=country, source_address=source_address,
        vantage_id=vantage_id, discover=discover, is_control=True,
    )  # fmt: skip
    mcfg = MeasureConfig(
        out="-",
        vantage=vantage,
        resolver=resolver,
        control_resolver=ctl,
        ca_bundle=_existing_file(ca_bundle, "--ca-bundle"),
        timeouts=Timeouts.from_total(timeout),
        concurrency=concurrency,
        loopback_only=loopback_only,
    )
    cfg = HelperConfig(
        measure=mcfg,
        tokens=load_tokens(token_file),
        host=host,
        port=port,
        tls_cert=_existing_file(tls_cert, "--tls-cert"),
        tls_key=_existing_file(tls_key, "--tls-key"),
        allow_private=allow_private,
        rate_per_minute=rate,
        max_urls=max_urls,
        geo=geo,
    )
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    err_console().print(f"helper for {vantage.probe_cc} listening on {listen}")
    trio.run(serve_helper, cfg)


@fingerprints_app.command("check")
def fingerprints_check(
    file: Annotated[Path, typer.Argument(help="A saved page (HTML) to test.")],
    status: Annotated[int | None, typer.Option(help="HTTP status the page came with.")] = None,
    fingerprints: Annotated[
        Path | None, typer.Option(help="Fingerprint file (default: the packaged one).")
    ] = None,
) -> None:
    """Show which fingerprints match a saved page (geoblock, censorship, challenge)."""
    from analysis.fingerprints import load_fingerprints
    from probe.cli_tables import print_matches

    if not file.is_file():
        raise ConfigError(f"{file}: no such file")
    data = file.read_bytes()[: 4 * 1024 * 1024]
    fps = load_fingerprints(_existing_file(fingerprints, "--fingerprints"))
    matches = fps.check_page(data, status=status)
    print_matches(Console(), str(file), matches)


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where to write the demo dataset.")
    ] = Path("res64-demo"),
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    lone: Annotated[
        str | None,
        typer.Option(help="Measure from this country's vantage only, with a res64 helper abroad."),
    ] = None,
) -> None:
    """Offline demo: start a loopback world, measure it from several vantages, analyse, report."""
    from probe.demo import run_demo

    run_demo(out, quiet=quiet, console=err_console(), lone=lone.upper() if lone else None)


def main() -> None:
    """Console-script entry point: ProbeError → one line on stderr, exit 2."""
    try:
        app()
    except StoreError as exc:  # the run itself failed (disk full...): exit 1, data kept
        sys.stderr.write(f"res64: error: {exc}\n")
        sys.exit(1)
    except ProbeError as exc:
        msg = str(exc).strip() or type(exc).__name__
        sys.stderr.write(f"res64: error: {msg}\n")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("res64: interrupted\n")
        sys.exit(130)
    except Exception as exc:  # a bug: one line unless asked for the traceback
        if os.environ.get("RES64_DEBUG"):
            raise
        sys.stderr.write(
            f"res64: internal error: {type(exc).__name__}: {exc} "
            "(set RES64_DEBUG=1 for a traceback, and please report it)\n"
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
