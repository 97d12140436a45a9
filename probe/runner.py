"""The measurement runner: trio nursery, bounded concurrency, per-host politeness, storage.

``run_measurements`` measures every (repetition, target) job once, streams the rows through a
memory channel to a single writer task (rolling Parquet files, SPEC §7) and returns a
:class:`RunSummary`.  SIGINT/SIGTERM cancel the measurements, flush what is finished and mark the
run ``interrupted`` so that ``--resume`` can continue it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import trio

from probe.config import MeasureConfig, Vantage, redact_url
from probe.errors import ConfigError, StoreError
from probe.geo import GeoResolver
from probe.ids import new_run_id
from probe.measure import Context, measure_target
from probe.records import Measurement
from probe.steps.dns import ResolverSpec, system_resolver
from probe.store import (
    DatasetWriter,
    Manifest,
    find_resumable,
    reconcile,
    update_counts,
)
from probe.targets import Target, targets_sha256

FDS_PER_MEASUREMENT = 8
FD_MARGIN = 64


class Progress(Protocol):
    def start(self, total: int, done: int) -> None: ...
    def advance(self, m: Measurement) -> None: ...
    def stop(self) -> None: ...


class NullProgress:
    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, m: Measurement) -> None:
        pass

    def stop(self) -> None:
        pass


@dataclass
class RunSummary:
    run_id: str
    out: Path
    measured: int = 0
    skipped_done: int = 0
    by_step: Counter[str] = field(default_factory=Counter)
    files: int = 0
    interrupted: bool = False
    resumed: bool = False
    seconds: float = 0.0
    manifest_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    controls: int = 0
    controls_missing: int = 0
    hops: int = 0


def effective_concurrency(requested: int) -> tuple[int, str | None]:
    """Concurrency that fits the file-descriptor limit (raising the soft limit if allowed)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = requested * FDS_PER_MEASUREMENT + FD_MARGIN
    if need > soft:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    fit = max(1, (soft - FD_MARGIN) // FDS_PER_MEASUREMENT)
    if fit < requested:
        return fit, (
            f"concurrency lowered from {requested} to {fit} to stay within the open-file limit "
            f"(ulimit -n {soft}); raise it with `ulimit -n` to go faster"
        )
    return requested, None


def config_for_manifest(cfg: MeasureConfig) -> dict[str, Any]:
    """The run configuration without secrets or the operator's addresses."""
    return {
        "campaign": cfg.campaign,
        "vantage_id": cfg.vantage.vantage_id,
        "probe_cc": cfg.vantage.probe_cc,
        "probe_asn": cfg.vantage.probe_asn,
        "source_address_set": cfg.vantage.source_address is not None,
        "resolver": cfg.resolver or "system",
        "control_resolver": cfg.control_resolver,
        "proxy": redact_url(cfg.proxy) if cfg.proxy else None,
        "ca_bundle_set": cfg.ca_bundle is not None,
        "timeouts": cfg.timeouts.__dict__
        if hasattr(cfg.timeouts, "__dict__")
        else {k: getattr(cfg.timeouts, k) for k in ("dns", "tcp", "tls", "http", "target")},
        "concurrency": cfg.concurrency,
        "per_host": cfg.per_host,
        "repeat": cfg.repeat,
        "interval": cfg.interval,
        "body_prefix_bytes": cfg.limits.body_prefix_bytes,
        "max_body_bytes": cfg.limits.max_body_bytes,
        "max_redirects": cfg.limits.max_redirects,
    }


def _control_proxy_context(
    cfg: MeasureConfig, run_id: str, geo: GeoResolver, resolver: ResolverSpec | None
) -> Context | None:
    """Context of the control pass through ``--control-proxy`` (records flagged is_control)."""
    if not cfg.control_proxy:
        return None
    v = cfg.control_proxy_vantage or Vantage(
        vantage_id=f"{cfg.vantage.vantage_id}-ctlproxy", probe_cc="ZZ", is_control=True
    )
    pcfg = dataclasses.replace(
        cfg, proxy=cfg.control_proxy, vantage=dataclasses.replace(v, is_control=True)
    )
    return Context(
        cfg=pcfg,
        run_id=run_id,
        geo=geo,
        resolver=resolver,
        control=None,
        data_source="control_proxy",
    )


def _resolvers(cfg: MeasureConfig) -> tuple[ResolverSpec | None, ResolverSpec | None]:
    res = ResolverSpec.parse(cfg.resolver, "--resolver") if cfg.resolver else system_resolver()
    ctl = (
        ResolverSpec.parse(cfg.control_resolver, "--control-resolver")
        if cfg.control_resolver
        else None
    )
    return res, ctl


async def run_measurements(
    cfg: MeasureConfig,
    targets: Sequence[Target],
    geo: GeoResolver,
    *,
    progress: Progress | None = None,
    handle_signals: bool = True,
    target_sources: Sequence[str] = (),
    on_note: Callable[[str], None] | None = None,
) -> RunSummary:
    """Measure ``targets`` ``cfg.repeat`` times and store the rows under ``cfg.out``."""
    t_start = time.perf_counter()
    progress = progress or NullProgress()
    out = Path(cfg.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create directory ({exc.strerror})") from exc
    tsha = targets_sha256(targets)
    resolver, control = _resolvers(cfg)
    concurrency, note = effective_concurrency(cfg.concurrency)
    notes = [note] if note else []

    done: set[tuple[int, str]] = set()
    first_part = 0
    manifest: Manifest | None = None
    if cfg.resume:
        manifest = find_resumable(out, cfg.campaign, tsha)
        if manifest is None:
            notes.append("nothing to resume for this campaign and target list: new run")
        else:
            done, first_part = reconcile(out, manifest)
            manifest.status = "running"
            manifest.resumed += 1
    if manifest is None:
        manifest = Manifest(
            run_id=new_run_id(),
            campaign=cfg.campaign,
            started_at=datetime.now(UTC).isoformat(),
            config=config_for_manifest(cfg),
            targets={"count": len(targets), "sha256": tsha, "sources": list(target_sources)},
        )
    summary = RunSummary(run_id=manifest.run_id, out=out, resumed=cfg.resume and bool(done))
    summary.notes = notes
    for n in notes:
        if on_note:
            on_note(n)
    manifest.save(out)
    writer = DatasetWriter(out, "measurements", cfg.campaign, manifest.run_id, manifest, first_part)

    jobs = [(rep, t) for rep in range(cfg.repeat) for t in targets if (rep, t.url) not in done]
    summary.skipped_done = len(targets) * cfg.repeat - len(jobs)
    progress.start(len(targets) * cfg.repeat, summary.skipped_done)

    doh_client = None
    if control is not None and control.doh_url:
        verify: str | bool = str(cfg.ca_bundle) if cfg.ca_bundle else True
        doh_client = httpx.AsyncClient(
            trust_env=False,
            transport=httpx.AsyncHTTPTransport(
                verify=verify, local_address=cfg.vantage.source_address
            ),
        )
    ctx = Context(
        cfg=cfg,
        run_id=manifest.run_id,
        geo=geo,
        resolver=resolver,
        control=control,
        doh_client=doh_client,
    )

    send, recv = trio.open_memory_channel[Measurement](concurrency * 2)
    limiter = trio.CapacityLimiter(concurrency)
    host_sems: dict[str, trio.Semaphore] = {}
    interrupted = False

    proxy_ctx = _control_proxy_context(cfg, manifest.run_id, geo, resolver)
    tracing = cfg.trace in ("failed", "all")
    if tracing:
        from probe.transports.raw import has_raw_privileges

        ok, why = has_raw_privileges()
        if not ok:
            tracing = False
            note = f"no traceroutes: {why}"
            summary.notes.append(note)
            if on_note:
                on_note(note)
        else:
            ctx.capture_ttl = True
    hop_writer = DatasetWriter(out, "hops", cfg.campaign, manifest.run_id, manifest, first_part)

    async def traces_for(m: Measurement, send_ch: trio.MemorySendChannel[Any]) -> None:
        from probe.tracing import trace_for_measurement

        if cfg.trace == "failed" and not m.failure_step:
            return
        hops = await trace_for_measurement(
            m, geo=geo, vantage=cfg.vantage, loopback_only=cfg.loopback_only
        )
        if hops:
            await send_ch.send(hops)

    async def one(
        rep: int, target: Target, token: object, send_ch: trio.MemorySendChannel[Measurement]
    ) -> None:
        async with send_ch:
            sem = host_sems.setdefault(target.hostname, trio.Semaphore(cfg.per_host))
            try:
                async with sem, trio.open_nursery() as n:

                    async def measure_with(c: Context) -> None:
                        m = await measure_target(c, target, rep)
                        await send_ch.send(m)
                        if tracing and c is ctx:
                            await traces_for(m, send_ch)

                    n.start_soon(measure_with, ctx)
                    if proxy_ctx is not None:
                        n.start_soon(measure_with, proxy_ctx)
            finally:
                limiter.release_on_behalf_of(token)

    async def helper_controls(
        rep: int, urls: list[str], send_ch: trio.MemorySendChannel[Measurement]
    ) -> None:
        """Ask the control helper for the same URLs while the vantage measures them."""
        from probe.helper import fetch_controls, rows_to_measurements

        async with send_ch:
            assert cfg.control_helper is not None and cfg.helper_token is not None
            fetch = fetch_controls(
                cfg.control_helper,
                cfg.helper_token,
                urls,
                ca_bundle=cfg.ca_bundle,
                timeout=max(30.0, cfg.timeouts.http),
                source=cfg.vantage.source_address,
            )
            async with fetch as rows:
                async for row in rows:
                    for m in rows_to_measurements(
                        [row], campaign=cfg.campaign, run_id=manifest.run_id
                    ):
                        await send_ch.send(dataclasses.replace(m, rep=rep))
            outcome = fetch.outcome
            summary.controls_missing += outcome.missing
            if outcome.missing or outcome.error:
                note = outcome.describe()
                summary.notes.append(note)
                if on_note:
                    on_note(note)

    async def produce(send_ch: trio.MemorySendChannel[Measurement]) -> None:
        async with send_ch, trio.open_nursery() as n:
            t0 = trio.current_time()
            for i, (rep, target) in enumerate(jobs):
                new_rep = i == 0 or jobs[i - 1][0] != rep
                if rep > 0 and cfg.interval > 0 and new_rep:
                    await trio.sleep_until(t0 + rep * cfg.interval)
                if new_rep and cfg.control_helper:
                    urls = [t.url for r, t in jobs if r == rep]
                    n.start_soon(helper_controls, rep, urls, send_ch.clone())
                token = object()  # one borrower per job (a target may repeat)
                await limiter.acquire_on_behalf_of(token)
                n.start_soon(one, rep, target, token, send_ch.clone())

    consumer_done = trio.Event()

    store_error: StoreError | None = None

    async def consume() -> None:
        nonlocal store_error
        try:
            with trio.CancelScope(shield=True):
                await _consume()
        except StoreError as exc:  # disk full, permissions: stop measuring, keep what is written
            store_error = exc
            measuring.cancel()
        finally:
            consumer_done.set()

    async def _consume() -> None:
        buf: list[dict[str, Any]] = []
        hop_buf: list[dict[str, Any]] = []
        deadline = trio.current_time() + cfg.flush_seconds

        async def flush() -> None:
            nonlocal buf, hop_buf, deadline
            rows, buf = buf, []
            hops, hop_buf = hop_buf, []
            deadline = trio.current_time() + cfg.flush_seconds
            if hops:
                # hop files first: a measurement row on disk implies its hops are too
                written = await trio.to_thread.run_sync(hop_writer.write_rows, hops)
                summary.files += len(written)
                summary.hops += len(hops)
            if rows:
                update_counts(manifest, rows)
                written = await trio.to_thread.run_sync(writer.write_rows, rows)
                summary.files += len(written)

        async with recv:
            while True:
                m: Measurement | None = None
                with trio.move_on_at(deadline):
                    try:
                        m = await recv.receive()
                    except trio.EndOfChannel:
                        break
                if m is None:  # nothing for flush_seconds: write what we have
                    await flush()
                    continue
                if isinstance(m, list):  # traceroute hops of a measurement
                    hop_buf.extend(h.as_row() for h in m)
                    continue
                buf.append(m.as_row())
                if m.is_control:
                    summary.controls += 1
                else:
                    summary.measured += 1
                    if m.failure_step:
                        summary.by_step[m.failure_step] += 1
                    progress.advance(m)
                if len(buf) >= cfg.flush_records:
                    await flush()
            await flush()

    async def watch_signals(cancel: trio.CancelScope) -> None:
        nonlocal interrupted
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as sigs:
            async for _ in sigs:
                interrupted = True
                cancel.cancel()
                return

    measuring = trio.CancelScope()
    finished = False  # stays False when cancelled from outside or failing: never "complete"
    try:
        async with trio.open_nursery() as outer:
            if handle_signals:
                outer.start_soon(watch_signals, measuring)
            outer.start_soon(consume)
            with measuring:
                await produce(send)
            if measuring.cancelled_caught and store_error is None:
                interrupted = True
            await consumer_done.wait()
            outer.cancel_scope.cancel()  # stops the signal watcher
        finished = True
    finally:
        progress.stop()
        if doh_client is not None:
            with trio.CancelScope(shield=True):
                await doh_client.aclose()
        if store_error:
            manifest.status = "failed"
        elif interrupted or not finished:
            manifest.status = "interrupted"
        else:
            manifest.status = "complete"
        manifest.finished_at = datetime.now(UTC).isoformat()
        with contextlib.suppress(Exception):
            manifest.save(out)
    if store_error is not None:
        raise store_error
    summary.interrupted = interrupted
    summary.seconds = time.perf_counter() - t_start
    summary.manifest_path = out / "runs" / f"{manifest.run_id}.json"
    return summary
