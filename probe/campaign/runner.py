"""The campaign loop: wait for the next run, measure, record, upload; survive restarts.

``run_campaign`` runs the schedule in the foreground (``res64 campaign run``).  Every transition
is saved in the state file before and after each run, so a process that is restarted after a
reboot, SIGTERM or a crash continues where it was:

- a run that was under way is continued with the store's resume (``MeasureConfig(resume=True)``)
  — or, if it had in fact completed just before the crash, adopted from its manifest;
- finished runs are never repeated and due runs are never skipped (see
  :mod:`probe.campaign.schedule` for late runs);
- runs that could not be uploaded stay queued and are retried with back-off, between runs and
  after the last one (``upload.final_wait``).

SIGINT/SIGTERM during a run are handled by :func:`probe.runner.run_measurements` (it flushes and
marks the run interrupted); while waiting or uploading, they stop the loop at once.
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import trio

from probe.campaign import schedule as sch
from probe.campaign.spec import CampaignSpec, format_duration, load_spec
from probe.campaign.state import CampaignLock, CampaignState, load_state, save_state
from probe.config import (
    Limits,
    MeasureConfig,
    Timeouts,
    is_loopback,
    loopback_only_from_env,
    redact_url,
)
from probe.errors import ConfigError, ProbeError, StoreError, TargetError
from probe.store import Manifest, iter_manifests, load_manifest

EventFn = Callable[[str], None]


@dataclass
class RunOutcome:
    """What one measurement run reported."""

    run_id: str
    measured: int
    interrupted: bool = False


MeasureFn = Callable[[CampaignSpec], Awaitable[RunOutcome]]


@dataclass
class CampaignResult:
    """How ``run_campaign`` ended."""

    done: int = 0  # completed runs of the campaign, in total
    ran: list[str] = field(default_factory=list)  # run ids measured by this call
    finished: bool = False  # no run left in the schedule
    interrupted: bool = False  # stopped by SIGINT/SIGTERM (exit code 130)
    pending_uploads: list[str] = field(default_factory=list)
    not_started: bool = False  # --once before schedule.start


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------------------------
# One measurement run (the existing measurement API)


def load_campaign_targets(spec: CampaignSpec) -> list[Any]:
    """Every target of the spec's files, first occurrence of each URL kept."""
    from probe.targets import load_targets

    out, seen = [], set()
    for f in spec.targets:
        for t in load_targets(f):
            if t.url not in seen:
                seen.add(t.url)
                out.append(t)
    if not out:
        raise TargetError(f"{spec.path}: the target files hold no targets")
    return out


def measure_config(spec: CampaignSpec, vantage: Any, *, loopback_only: bool) -> MeasureConfig:
    """The :class:`MeasureConfig` of one campaign run (resume on, so a crash is continued)."""
    v = spec.vantage
    if v.proxy and loopback_only and not is_loopback(urlsplit(v.proxy).hostname or ""):
        raise ConfigError(f"vantage.proxy {redact_url(v.proxy)}: only loopback in this mode")
    m = spec.measure
    return MeasureConfig(
        out=str(spec.data_dir),
        vantage=vantage,
        campaign=spec.name,
        resolver=v.resolver,
        control_resolver=v.control_resolver,
        proxy=v.proxy,
        ca_bundle=v.ca_bundle,
        geoip=v.geoip,
        geoip_overrides=v.geoip_overrides,
        timeouts=Timeouts.from_total(m.timeout),
        limits=Limits(body_prefix_bytes=m.body_bytes),
        concurrency=m.concurrency,
        per_host=m.per_host,
        trace=spec.trace,
        resume=True,
        quiet=True,
        loopback_only=loopback_only,
        flush_records=m.batch,
    )


async def measure_run(spec: CampaignSpec, on_event: EventFn | None = None) -> RunOutcome:
    """Measure every target once with :func:`probe.runner.run_measurements`."""

    def note(msg: str) -> None:
        if on_event is not None and not msg.startswith("nothing to resume"):
            on_event(msg)  # every run asks for resume: "nothing to resume" is the normal case

    from probe.geo import open_geo
    from probe.runner import run_measurements
    from probe.vantage import resolve_vantage

    loopback_only = loopback_only_from_env()
    targets = load_campaign_targets(spec)
    v = spec.vantage
    geo = open_geo(v.geoip, v.geoip_overrides)
    try:
        vantage = await trio.to_thread.run_sync(
            partial(
                resolve_vantage,
                geo,
                country=v.country,
                source_address=v.source_address,
                vantage_id=v.vantage_id,
                discover=v.discover and not loopback_only,
            )
        )
        cfg = measure_config(spec, vantage, loopback_only=loopback_only)
        summary = await run_measurements(
            cfg,
            targets,
            geo,
            handle_signals=True,
            target_sources=[str(p) for p in spec.targets],
            on_note=note,
        )
    finally:
        geo.close()
    # a resumed run counts what the earlier attempts measured too
    total = summary.measured + summary.skipped_done
    return RunOutcome(summary.run_id, total, summary.interrupted)


def find_completed_run(
    data_dir: Path, campaign: str, since: datetime, exclude: set[str]
) -> Manifest | None:
    """A complete run of ``campaign`` started at or after ``since`` (not in ``exclude``)."""
    best: Manifest | None = None
    for m in iter_manifests(data_dir):
        try:
            started = datetime.fromisoformat(m.started_at)
        except (ValueError, TypeError):
            continue
        if m.campaign != campaign or m.status != "complete" or m.run_id in exclude:
            continue
        if started >= since and (best is None or m.started_at < best.started_at):
            best = m
    return best


def prune_run(data_dir: Path, run_id: str) -> int:
    """Delete a run's local Parquet files (its manifest stays); return how many."""
    m = load_manifest(data_dir / "runs" / f"{run_id}.json")
    n = 0
    for f in m.files:
        p = data_dir / f.path
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n


# --------------------------------------------------------------------------------------------
# The loop


class _Loop:
    def __init__(
        self,
        spec: CampaignSpec,
        *,
        now: Callable[[], datetime],
        emit: EventFn,
        measure: MeasureFn,
        handle_signals: bool,
    ) -> None:
        self.spec = spec
        self.now = now
        self.emit = emit
        self.measure = measure
        self.handle_signals = handle_signals
        self.state = CampaignState(campaign=spec.name)
        self.result = CampaignResult()

    def save(self) -> None:
        save_state(self.spec.state_dir, self.state)

    def label(self, slot: int) -> str:
        total = sch.planned_total(self.spec)
        return f"run {slot + 1}" + (f"/{total}" if total else "")

    async def guarded(self, fn: Callable[[], Awaitable[Any]]) -> bool:
        """Run ``fn``; False if SIGINT/SIGTERM arrived first (``fn`` is then cancelled)."""
        if not self.handle_signals:
            await fn()
            return True
        try:
            return await self._race(fn)
        except BaseExceptionGroup as group:  # trio's strict groups: surface a lone error as is
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def _race(self, fn: Callable[[], Awaitable[Any]]) -> bool:
        stopped = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal stopped
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
                    async for _ in sigs:
                        stopped = True
                        nursery.cancel_scope.cancel()
                        return

            async def work() -> None:
                await fn()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            nursery.start_soon(work)
        return not stopped

    async def sleep_until(self, when: datetime) -> bool:
        """Sleep until ``when`` (wall clock); False if interrupted by a signal."""
        return await self.guarded(partial(self._sleep, when))

    async def _sleep(self, when: datetime) -> None:
        while (left := (when - self.now()).total_seconds()) > 0:
            await trio.sleep(min(left, 60.0))

    async def upload(self, *, force: bool = False) -> bool:
        """Try to upload pending runs (if due, or ``force``); False if interrupted."""
        spec, state = self.spec, self.state
        if spec.upload is None or not sch.pending_uploads(state):
            return True
        if not force and not sch.upload_due(state, self.now()):
            return True
        return await self.guarded(self._upload)

    async def _upload(self) -> None:
        from probe.upload import UploadError, upload_dataset

        spec, state = self.spec, self.state
        assert spec.upload is not None
        pending = sch.pending_uploads(state)
        up = spec.upload
        call = partial(
            upload_dataset,
            spec.data_dir,
            up.dest,
            runs=pending,
            endpoint_url=up.endpoint_url,
            profile=up.profile,
            retries=up.retries,
        )
        try:
            res = await trio.to_thread.run_sync(call, abandon_on_cancel=True)
        except UploadError as exc:
            sch.upload_done(state, exc.result.runs, self.now())
            sch.upload_failed(spec, state, str(exc), self.now())
            self.save()
            nxt = state.upload_next_at
            wait = format_duration((nxt - self.now()).total_seconds()) if nxt else "?"
            self.emit(f"upload failed, {len(sch.pending_uploads(state))} runs queued: {exc}")
            self.emit(f"next upload attempt in {wait}")
            return
        sch.upload_done(state, res.runs, self.now())
        left = sch.pending_uploads(state)
        if left:
            why = "; ".join([*res.problems, *res.missing, *res.mismatched][:5])
            sch.upload_failed(spec, state, f"runs not complete at {up.dest}: {why}", self.now())
        self.save()
        self.emit(
            f"uploaded to {up.dest}: {len(res.uploaded)} files, {len(res.skipped)} already there"
            + (f"; {len(left)} runs still pending" if left else "")
        )
        self.prune()

    def prune(self) -> None:
        for r in sch.prune_candidates(self.spec, self.state, self.now()):
            assert r.run_id is not None
            try:
                n = prune_run(self.spec.data_dir, r.run_id)
            except (OSError, StoreError) as exc:
                sch.record_error(self.state, "prune", f"{r.run_id}: {exc}", self.now())
                continue
            r.pruned_at = self.now()
            self.emit(f"retention: deleted {n} local files of run {r.run_id}")
        self.save()

    async def run_slot(self, plan: sch.Plan, *, once: bool) -> bool:
        """Measure ``plan``'s slot; False if the run was interrupted."""
        spec, state = self.spec, self.state
        if plan.resume and state.current is not None:
            done_ids = {r.run_id for r in state.runs if r.run_id}
            m = find_completed_run(spec.data_dir, spec.name, state.current.started_at, done_ids)
            if m is not None:  # it completed just before the process died
                sch.finish(state, m.run_id, int(m.counts.get("measurements", 0)), self.now())
                self.save()
                self.emit(f"{self.label(plan.slot)} had completed ({m.run_id}); recorded")
                return True
            self.emit(f"{self.label(plan.slot)}: continuing the interrupted run")
        for slot, _ in plan.missed:
            self.emit(f"{self.label(slot)} missed (its time passed while stopped)")
        sch.begin(spec, state, plan, self.now(), once=once)
        self.save()
        self.emit(f"{self.label(plan.slot)} started")
        try:
            outcome = await self.measure(spec)
        except ProbeError as exc:
            sch.record_error(state, "run", str(exc), self.now())
            self.save()
            raise
        if outcome.interrupted:
            sch.interrupted(state, outcome.run_id)
            self.save()
            self.emit(f"{self.label(plan.slot)} interrupted ({outcome.run_id}); it resumes later")
            return False
        sch.finish(state, outcome.run_id, outcome.measured, self.now())
        self.save()
        self.result.ran.append(outcome.run_id)
        self.emit(
            f"{self.label(plan.slot)} complete: {outcome.run_id}, {outcome.measured} measurements"
        )
        return True

    async def loop(self, *, once: bool, delay: bool) -> CampaignResult:
        spec = self.spec
        if spec.upload is not None:  # a bad destination fails now, not after the first run
            from probe.upload import open_dataset_filesystem

            up = spec.upload
            open_dataset_filesystem(up.dest, endpoint_url=up.endpoint_url, profile=up.profile)
        self.state = load_state(spec.state_dir, spec.name)
        sch.ensure_anchor(spec.schedule, self.state, self.now())
        self.save()
        while True:
            if not await self.upload(force=once):
                return self._end(interrupted=True)
            plan = sch.next_run(spec, self.state, self.now())
            if plan is None:
                break
            if not plan.resume:
                if once:
                    start = spec.schedule.start
                    if start is not None and self.now() < start:
                        self.emit(
                            f"not started yet: the campaign starts at {start:%Y-%m-%d %H:%M} UTC"
                        )
                        self.result.not_started = True
                        return self._end()
                    if delay and spec.schedule.jitter > 0:
                        pause = random.uniform(0, spec.schedule.jitter)
                        self.emit(f"random delay {format_duration(pause)}")
                        if not await self.guarded(partial(trio.sleep, pause)):
                            return self._end(interrupted=True)
                elif not await self._wait_for(plan):
                    return self._end(interrupted=True)
            if not await self.run_slot(plan, once=once):
                return self._end(interrupted=True)
            if not await self.upload(force=True):
                return self._end(interrupted=True)
            if once:
                return self._end()
        if not once and not await self._drain():
            return self._end(interrupted=True)
        return self._end()

    async def _wait_for(self, plan: sch.Plan) -> bool:
        """Wait until ``plan`` is due, retrying pending uploads meanwhile."""
        due = plan.due
        if due > self.now():
            left = format_duration((due - self.now()).total_seconds())
            self.emit(f"{self.label(plan.slot)} due {due:%Y-%m-%d %H:%M:%S} UTC (in {left})")
        while self.now() < due:
            wake = due
            nxt = self.state.upload_next_at
            if sch.pending_uploads(self.state) and nxt is not None and nxt < wake:
                wake = nxt
            if not await self.sleep_until(wake):
                return False
            if not await self.upload():
                return False
        return True

    async def _drain(self) -> bool:
        """After the last run: keep retrying pending uploads for ``upload.final_wait``."""
        up = self.spec.upload
        if up is None:
            return True
        deadline = self.now() + timedelta(seconds=up.final_wait)
        while sch.pending_uploads(self.state) and self.now() < deadline:
            nxt = self.state.upload_next_at or self.now()
            if nxt > deadline:
                break
            if not await self.sleep_until(nxt):
                return False
            if not await self.upload():
                return False
        return True

    def _end(self, *, interrupted: bool = False) -> CampaignResult:
        r = self.result
        r.interrupted = interrupted
        r.done = sch.completed(self.state)
        r.pending_uploads = sch.pending_uploads(self.state) if self.spec.upload else []
        r.finished = sch.next_run(self.spec, self.state, self.now()) is None
        return r


async def run_campaign(
    spec: CampaignSpec,
    *,
    once: bool = False,
    delay: bool = False,
    on_event: EventFn | None = None,
    now: Callable[[], datetime] = _utcnow,
    measure: MeasureFn | None = None,
    handle_signals: bool = True,
) -> CampaignResult:
    """Run the campaign's schedule (all of it, or with ``once`` the next run only).

    ``once`` is what a systemd timer or cron runs: the next run now (or the interrupted one),
    then its upload; ``delay`` first sleeps a random part of ``schedule.jitter`` (cron has no
    RandomizedDelaySec).  Raises :class:`ConfigError` if another process runs the campaign.
    """
    emit = on_event or (lambda _msg: None)
    if measure is None:
        measure = partial(measure_run, on_event=emit)
    loop = _Loop(spec, now=now, emit=emit, measure=measure, handle_signals=handle_signals)
    with CampaignLock(spec.state_dir, spec.name):
        return await loop.loop(once=once, delay=delay)


def campaign_status(spec: CampaignSpec, now: datetime | None = None) -> list[str]:
    """Lines for ``res64 campaign status``: runs done, next run, errors, pending uploads."""
    t = now or _utcnow()
    state = load_state(spec.state_dir, spec.name)
    return sch.format_status(sch.status_view(spec, state, t), t)


def exit_code(result: CampaignResult) -> int:
    """0 done (or waiting for the next timer), 130 interrupted, 1 uploads left pending."""
    if result.interrupted:
        return 130
    if result.finished and result.pending_uploads:
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -c 'from probe.campaign.runner import main; main()' run|status SPEC [--once]``.

    A minimal entry point for tests and debugging; users run ``res64 campaign``.
    """
    import argparse

    p = argparse.ArgumentParser(prog="probe.campaign")
    p.add_argument("command", choices=("run", "status"))
    p.add_argument("spec", type=Path)
    p.add_argument("--once", action="store_true")
    p.add_argument("--delay", action="store_true")
    args = p.parse_args(argv)

    def say(msg: str) -> None:
        print(f"{_utcnow():%H:%M:%S} {msg}", flush=True)

    try:
        spec = load_spec(args.spec)
        if args.command == "status":
            for line in campaign_status(spec):
                print(line)
            return 0
        res = trio.run(partial(run_campaign, spec, once=args.once, delay=args.delay, on_event=say))
    except ProbeError as exc:
        sys.stderr.write(f"res64: error: {exc}\n")
        return 1 if isinstance(exc, StoreError) else 2
    return exit_code(res)
