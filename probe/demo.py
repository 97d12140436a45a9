"""``res64 demo``: the whole pipeline on an offline world that runs on loopback addresses.

It starts :mod:`probe.lab`'s demo world (sites with geoblocking and interference behaviours keyed
on the client's source address, a lying and a truthful resolver, a throw-away CA), measures it
from every vantage twice, then analyses the dataset and prints the country-pair table.  Nothing
leaves the machine: the run is loopback-only, and the world's files (which name the vantages'
source addresses) live in a temporary directory, never in the output.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.config import Limits, MeasureConfig, Timeouts, Vantage
from probe.errors import ConfigError
from probe.geo import open_geo
from probe.lab import RunningWorld, demo_world, run_world
from probe.records import Measurement
from probe.runner import RunSummary, run_measurements
from probe.targets import load_targets

DEMO_ROUNDS = 2
DEMO_HELPER_TOKEN = "demo-helper-token-not-secret"
DEMO_TIMEOUTS = Timeouts(dns=2.0, tcp=3.0, tls=3.0, http=6.0, target=15.0)


class _VantageProgress:
    """One row of the shared demo progress display."""

    def __init__(self, progress: Progress | None, label: str) -> None:
        self._p = progress
        self._label = label
        self._task = None
        self.ok = 0
        self.failed = 0

    def start(self, total: int, done: int) -> None:
        if self._p is not None:
            self._task = self._p.add_task(self._label, total=total, completed=done, ok=0, failed=0)

    def advance(self, m: Measurement) -> None:
        if m.failure_step:
            self.failed += 1
        else:
            self.ok += 1
        if self._p is not None and self._task is not None:
            self._p.update(self._task, advance=1, ok=self.ok, failed=self.failed)

    def stop(self) -> None:
        pass


@dataclass
class DemoResult:
    out: Path
    summaries: list[tuple[str, str, int, RunSummary]] = field(default_factory=list)
    analysis_dir: Path | None = None
    report_dir: Path | None = None


def vantage_config(world: RunningWorld, v, out: Path, campaign: str = "demo") -> MeasureConfig:
    """The measure configuration of one demo vantage (what the CLI flags would build)."""
    return MeasureConfig(
        out=str(out),
        vantage=Vantage(
            vantage_id=f"demo-{v.name}",
            probe_cc=v.cc,
            probe_asn=v.asn,
            probe_as_name=v.as_name,
            source_address=v.source_ip,
        ),
        campaign=campaign,
        resolver=world.resolver_arg(),
        control_resolver=world.control_resolver_arg(),
        ca_bundle=world.ca_bundle,
        geoip_overrides=world.overrides_csv,
        timeouts=DEMO_TIMEOUTS,
        limits=Limits(),
        concurrency=32,
        loopback_only=True,
        quiet=True,
    )


async def measure_world(
    world: RunningWorld, out: Path, *, rounds: int = DEMO_ROUNDS, progress: Progress | None = None
) -> list[tuple[str, str, int, RunSummary]]:
    """Measure ``world`` from each of its vantages, ``rounds`` times (all vantages at once)."""
    targets = load_targets(world.targets_csv)
    geo = open_geo(None, world.overrides_csv, embedded=False)
    results: list[tuple[str, str, int, RunSummary]] = []
    for rnd in range(1, rounds + 1):
        async with trio.open_nursery() as nursery:
            for v in world.spec.vantages:

                async def one(v=v, rnd=rnd) -> None:
                    cfg = vantage_config(world, v, out)
                    s = await run_measurements(
                        cfg,
                        targets,
                        geo,
                        progress=_VantageProgress(progress, f"round {rnd} {v.name} ({v.cc})"),
                        handle_signals=False,
                        target_sources=["demo world"],
                    )
                    results.append((v.name, v.cc, rnd, s))

                nursery.start_soon(one)
    return results


async def measure_lone_vantage(
    world: RunningWorld,
    out: Path,
    cc: str,
    *,
    helper_vantage: str = "us-1",
    rounds: int = DEMO_ROUNDS,
    control_proxy: str | None = None,
    control_proxy_cc: str = "DE",
    progress: Progress | None = None,
) -> list[tuple[str, str, int, RunSummary]]:
    """Measure ``world`` from the single vantage of ``cc``, with a res64 helper abroad.

    The helper runs in-process on 127.0.0.1 (TLS from a throw-away CA) and measures from the
    source address of ``helper_vantage``; every target's control streams back while the lone
    vantage measures it.  ``control_proxy`` adds a second control country through a proxy.
    """
    from functools import partial

    from probe.helper import HelperConfig, serve_helper
    from probe.lab import LabPKI

    spec = world.spec
    lone = next(v for v in spec.vantages if v.cc == cc)
    hv = spec.vantage(helper_vantage)
    geo = open_geo(None, world.overrides_csv, embedded=False)
    pki = LabPKI("res64 demo helper")
    bundle = world.workdir / "ca-with-helper.pem"
    bundle.write_bytes(world.ca_bundle.read_bytes() + pki.ca_pem)
    helper_cfg = dataclasses.replace(
        vantage_config(world, hv, out),
        out="-",
        vantage=Vantage(f"demo-helper-{hv.name}", hv.cc, hv.asn, hv.as_name, hv.source_ip, True),
    )
    hcfg = HelperConfig(
        measure=helper_cfg,
        tokens=(DEMO_HELPER_TOKEN,),
        host="127.0.0.1",
        port=0,
        ssl_context=pki.server_context(["127.0.0.1"]),
        allow_private=True,  # the lab world lives on loopback addresses
        geo=geo,
    )
    targets = load_targets(world.targets_csv)
    results: list[tuple[str, str, int, RunSummary]] = []
    async with trio.open_nursery() as nursery:
        host, port = await nursery.start(partial(serve_helper, hcfg))
        cfg = dataclasses.replace(
            vantage_config(world, lone, out, campaign="demo-lone"),
            ca_bundle=bundle,
            control_helper=f"https://{host}:{port}",
            helper_token=DEMO_HELPER_TOKEN,
            control_proxy=control_proxy,
            control_proxy_vantage=Vantage(
                f"ctlproxy-{control_proxy_cc.lower()}", control_proxy_cc, is_control=True
            ),
        )
        for rnd in range(1, rounds + 1):
            s = await run_measurements(
                cfg,
                targets,
                geo,
                progress=_VantageProgress(progress, f"round {rnd} {lone.name} + helper"),
                handle_signals=False,
                target_sources=["demo world"],
            )
            results.append((lone.name, cc, rnd, s))
        nursery.cancel_scope.cancel()
    return results


def _progress(console: Console, quiet: bool) -> Progress | None:
    if quiet:
        return None
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("[green]{task.fields[ok]} ok[/] · [red]{task.fields[failed]} failed[/]"),
        TimeElapsedColumn(),
        console=console,
    )


def run_demo(
    out: Path, *, quiet: bool = False, console: Console | None = None, lone: str | None = None
) -> DemoResult:
    """Start the world, measure, analyse, report; print the tables. Blocking.

    ``lone="IR"``: measure from that country's vantage only, with a res64 helper abroad.
    """
    console = console or Console(stderr=True)
    out = Path(out)
    result = DemoResult(out=out)

    async def main() -> None:
        with tempfile.TemporaryDirectory(prefix="res64-world-") as wd:
            async with run_world(demo_world(), Path(wd)) as world:
                console.print(
                    f"[bold]res64 demo[/]: loopback world with {len(world.spec.sites)} sites, "
                    f"{len(world.spec.vantages)} vantages in "
                    f"{len(world.spec.countries())} countries ({', '.join(world.spec.countries())})"
                )
                prog = _progress(console, quiet)
                if prog is not None:
                    prog.start()
                countries = world.spec.countries()
                if lone and lone not in countries:
                    raise ConfigError(f"--lone: the demo has vantages in {', '.join(countries)}")
                try:
                    if lone:
                        result.summaries = await measure_lone_vantage(
                            world, out / "dataset", lone, progress=prog
                        )
                    else:
                        result.summaries = await measure_world(
                            world, out / "dataset", progress=prog
                        )
                finally:
                    if prog is not None:
                        prog.stop()

    trio.run(main)
    _print_counts(console, result)
    _analyse_and_report(console, result)
    return result


def _print_counts(console: Console, result: DemoResult) -> None:
    t = Table(title="Measurements per vantage", title_justify="left")
    for col in ("round", "vantage", "country", "measured", "ok", "failed by step", "controls"):
        t.add_column(col)
    for name, cc, rnd, s in sorted(result.summaries, key=lambda r: (r[2], r[0])):
        failed = sum(s.by_step.values())
        steps = ", ".join(f"{k} {v}" for k, v in sorted(s.by_step.items())) or "-"
        ctl = str(s.controls) + (f" ({s.controls_missing} missing)" if s.controls_missing else "")
        t.add_row(str(rnd), name, cc, str(s.measured), str(s.measured - failed), steps, ctl)
    console.print(t)
    console.print(f"dataset: {result.out / 'dataset'}")


def _analyse_and_report(console: Console, result: DemoResult) -> None:
    try:
        from analysis.pipeline import analyze
    except ImportError:  # analysis not installed in this build
        return
    from probe.cli_tables import print_pairs

    adir = result.out / "analysis"
    res = analyze([str(result.out / "dataset")], adir, command=["res64", "demo"])
    result.analysis_dir = adir
    print_pairs(console, res.pairs, title="Evidence per country pair (demo world)")
    console.print(f"analysis: {adir}")
    from analysis.report import generate_report

    rdir = result.out / "report"
    generate_report(adir, rdir, command=["res64", "demo"])
    result.report_dir = rdir
    console.print(
        f"report: {rdir} (report.html, report.docx, report.xlsx, report.md, csv/, figures/)"
    )
