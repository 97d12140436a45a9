"""``res64 demo``: the whole pipeline on an offline world that runs on loopback addresses.

It starts :mod:`probe.lab`'s demo world (sites with geoblocking and interference behaviours keyed
on the client's source address, a lying and a truthful resolver, a throw-away CA), measures it
from every vantage twice, then analyses the dataset and prints the country-pair table.  Nothing
leaves the machine: the run is loopback-only, and the world's files (which name the vantages'
source addresses) live in a temporary directory, never in the output.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import trio
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from probe.config import Limits, MeasureConfig, Timeouts, Vantage
from probe.geo import open_geo
from probe.lab import RunningWorld, demo_world, run_world
from probe.records import Measurement
from probe.runner import RunSummary, run_measurements
from probe.targets import load_targets

DEMO_ROUNDS = 2
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


def run_demo(out: Path, *, quiet: bool = False, console: Console | None = None) -> DemoResult:
    """Start the world, measure, analyse, report; print the tables. Blocking."""
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
                try:
                    result.summaries = await measure_world(world, out / "dataset", progress=prog)
                finally:
                    if prog is not None:
                        prog.stop()

    trio.run(main)
    _print_counts(console, result)
    _analyse_and_report(console, result)
    return result


def _print_counts(console: Console, result: DemoResult) -> None:
    t = Table(title="Measurements per vantage", title_justify="left")
    for col in ("round", "vantage", "country", "measured", "ok", "failed by step"):
        t.add_column(col)
    for name, cc, rnd, s in sorted(result.summaries, key=lambda r: (r[2], r[0])):
        failed = sum(s.by_step.values())
        steps = ", ".join(f"{k} {v}" for k, v in sorted(s.by_step.items())) or "-"
        t.add_row(str(rnd), name, cc, str(s.measured), str(s.measured - failed), steps)
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
