"""When runs happen, and how the campaign state moves (pure: no clock, no files).

Runs are numbered *slots* 0, 1, 2, ... :

- **interval**: slot 0 is due at the anchor (``schedule.start``, else the first launch), slot k
  at ``nominal(k-1) + interval``; each slot's due time adds its jitter.  A run that starts more
  than :func:`grace` late records the time it really started as its nominal time, so the next
  run comes a full interval later (never a burst of catch-up runs).  With ``catch_up = false``
  a late slot moves to the next point of the grid instead of running late.
- **times** / **daily**: one slot per instant.  A slot whose time passed runs once, late; if the
  next slot's time passed too, the earlier one is recorded ``missed`` (runs collapse into one),
  and with ``catch_up = false`` every slot more than :func:`grace` late is ``missed``.

Jitter is derived from the campaign name and the slot number, so a restarted process plans
exactly the same times.  A slot that was started and not finished (crash, SIGTERM, reboot) is
continued first, with the store's resume.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from probe.campaign.spec import CampaignSpec, ScheduleSpec, format_duration
from probe.campaign.state import (
    MAX_ERRORS,
    CampaignState,
    CurrentRun,
    ErrorRecord,
    RunRecord,
)

MAX_GRACE = 600.0


@dataclass(frozen=True, slots=True)
class Plan:
    """The next run: slot number, nominal and due times, slots to record as missed first."""

    slot: int
    nominal: datetime
    due: datetime
    resume: bool = False
    missed: tuple[tuple[int, datetime], ...] = ()


def jitter_for(campaign: str, slot: int, jitter: float) -> float:
    """A delay in ``[0, jitter)`` seconds, fixed for (campaign, slot)."""
    if jitter <= 0:
        return 0.0
    h = hashlib.sha256(f"res64-campaign:{campaign}:{slot}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 * jitter


def grace(sched: ScheduleSpec) -> float:
    """How late a run may start and still count as on time (seconds)."""
    if sched.interval is not None:
        return min(sched.interval / 2, MAX_GRACE)
    return MAX_GRACE


def ensure_anchor(sched: ScheduleSpec, state: CampaignState, now: datetime) -> CampaignState:
    """Fix the schedule's time origin on first use: ``start``, else now."""
    if state.anchor is None:
        state.anchor = sched.start or now
    return state


def _daily(sched: ScheduleSpec, anchor: datetime, slot: int) -> datetime:
    day = anchor.astimezone(UTC).date()
    first = [t for t in sched.daily if datetime.combine(day, t, UTC) >= anchor]
    if slot < len(first):
        return datetime.combine(day, first[slot], UTC)
    k = slot - len(first)
    n = len(sched.daily)
    return datetime.combine(day + timedelta(days=1 + k // n), sched.daily[k % n], UTC)


def _nominal(
    sched: ScheduleSpec, anchor: datetime, slot: int, prev: datetime | None
) -> datetime | None:
    if sched.interval is not None:
        if slot == 0 or prev is None:
            return anchor + timedelta(seconds=sched.interval * slot)
        return prev + timedelta(seconds=sched.interval)
    if sched.times:
        return sched.times[slot] if slot < len(sched.times) else None
    return _daily(sched, anchor, slot)


def completed(state: CampaignState) -> int:
    return sum(1 for r in state.runs if r.status == "complete")


def next_run(spec: CampaignSpec, state: CampaignState, now: datetime) -> Plan | None:
    """The next run to do, or ``None`` when the campaign is over."""
    sched = spec.schedule
    if state.current is not None:
        cur = state.current
        return Plan(cur.slot, cur.nominal, min(now, cur.started_at), resume=True)
    if sched.runs is not None and completed(state) >= sched.runs:
        return None
    anchor = state.anchor or sched.start or now
    slot = state.runs[-1].slot + 1 if state.runs else 0
    prev = state.runs[-1].nominal if state.runs else None
    g = timedelta(seconds=grace(sched))
    missed: list[tuple[int, datetime]] = []
    while True:
        nominal = _nominal(sched, anchor, slot, prev)
        if nominal is None or (sched.until is not None and nominal > sched.until):
            return None
        j = timedelta(seconds=jitter_for(spec.name, slot, sched.jitter))
        due = nominal + j
        if now - due > g:
            if sched.interval is not None:
                if not sched.catch_up:
                    step = sched.interval
                    m = math.ceil((now - g - due).total_seconds() / step)
                    nominal += timedelta(seconds=m * step)
                    if sched.until is not None and nominal > sched.until:
                        return None
                    due = nominal + j
            else:
                nxt = _nominal(sched, anchor, slot + 1, nominal)
                nxt_due = (
                    nxt + timedelta(seconds=jitter_for(spec.name, slot + 1, sched.jitter))
                    if nxt is not None
                    else None
                )
                nxt_in_campaign = nxt is not None and (sched.until is None or nxt <= sched.until)
                if not sched.catch_up or (
                    nxt_in_campaign and nxt_due is not None and nxt_due <= now
                ):
                    missed.append((slot, nominal))
                    prev = nominal
                    slot += 1
                    if len(missed) > 100_000:  # a schedule that cannot end: stop the scan
                        return None
                    continue
        return Plan(slot, nominal, due, missed=tuple(missed))


def begin(
    spec: CampaignSpec, state: CampaignState, plan: Plan, now: datetime, *, once: bool = False
) -> CampaignState:
    """Record that ``plan``'s run starts now (missed slots first)."""
    if plan.resume and state.current is not None:
        state.current.attempts += 1
        return state
    for slot, nominal in plan.missed:
        state.runs.append(RunRecord(slot=slot, status="missed", nominal=nominal))
    nominal = plan.nominal
    sched = spec.schedule
    if sched.interval is not None:
        j = timedelta(seconds=jitter_for(spec.name, plan.slot, sched.jitter))
        if once or now - plan.due > timedelta(seconds=grace(sched)):
            nominal = now - j  # started late (or by a timer): the next run is an interval later
    state.current = CurrentRun(slot=plan.slot, nominal=nominal, started_at=now)
    return state


def finish(state: CampaignState, run_id: str, measured: int, now: datetime) -> CampaignState:
    """The current slot's run completed."""
    cur = state.current
    if cur is None:
        raise ValueError("no run under way")
    state.runs.append(
        RunRecord(
            slot=cur.slot,
            status="complete",
            nominal=cur.nominal,
            started_at=cur.started_at,
            finished_at=now,
            run_id=run_id,
            measured=measured,
            interrupted=cur.attempts - 1,
        )
    )
    state.current = None
    return state


def interrupted(state: CampaignState, run_id: str | None) -> CampaignState:
    """The current run stopped before the end (SIGTERM); it is resumed next time."""
    if state.current is not None and run_id:
        state.current.run_id = run_id
    return state


def record_error(state: CampaignState, where: str, message: str, now: datetime) -> CampaignState:
    state.errors.append(ErrorRecord(at=now, where=where, message=message[:2000]))
    del state.errors[:-MAX_ERRORS]
    return state


def pending_uploads(state: CampaignState) -> list[str]:
    """Run ids of completed runs not yet uploaded, oldest first."""
    return [
        r.run_id for r in state.runs if r.status == "complete" and r.run_id and not r.uploaded_at
    ]


def backoff(failures: int, lo: float, hi: float) -> float:
    """Seconds to wait after ``failures`` consecutive failures (doubling, capped)."""
    if failures <= 0:
        return 0.0
    return min(hi, lo * 2 ** min(failures - 1, 60))


def upload_done(state: CampaignState, run_ids: list[str], now: datetime) -> CampaignState:
    ids = set(run_ids)
    for r in state.runs:
        if r.run_id in ids and r.uploaded_at is None:
            r.uploaded_at = now
    if not pending_uploads(state):
        state.upload_failures = 0
        state.upload_next_at = None
    return state


def upload_failed(
    spec: CampaignSpec, state: CampaignState, message: str, now: datetime
) -> CampaignState:
    up = spec.upload
    lo, hi = (up.retry_min, up.retry_max) if up else (30.0, 3600.0)
    state.upload_failures += 1
    state.upload_next_at = now + timedelta(seconds=backoff(state.upload_failures, lo, hi))
    return record_error(state, "upload", message, now)


def upload_due(state: CampaignState, now: datetime) -> bool:
    return bool(pending_uploads(state)) and (
        state.upload_next_at is None or state.upload_next_at <= now
    )


def prune_candidates(spec: CampaignSpec, state: CampaignState, now: datetime) -> list[RunRecord]:
    """Uploaded runs whose local files are older than ``retention.local_days``."""
    days = spec.retention.local_days
    if days is None or spec.upload is None:
        return []
    limit = now - timedelta(days=days)
    return [
        r
        for r in state.runs
        if r.status == "complete"
        and r.uploaded_at is not None
        and r.pruned_at is None
        and (r.finished_at or r.nominal) <= limit
    ]


def planned_total(spec: CampaignSpec) -> int | None:
    """How many runs the campaign has, when the schedule says."""
    sched = spec.schedule
    if sched.times:
        return min(len(sched.times), sched.runs) if sched.runs else len(sched.times)
    return sched.runs


# --------------------------------------------------------------------------------------------
# Status (pure view of spec + state)


@dataclass(frozen=True, slots=True)
class StatusView:
    name: str
    done: int
    planned: int | None
    missed: int
    current: CurrentRun | None
    next_plan: Plan | None
    finished: bool
    pending_uploads: tuple[str, ...]
    upload_next_at: datetime | None
    errors: tuple[ErrorRecord, ...]
    last_run: RunRecord | None
    upload_dest: str | None


def status_view(spec: CampaignSpec, state: CampaignState, now: datetime) -> StatusView:
    view = state if state.anchor is not None else ensure_anchor(spec.schedule, _copy(state), now)
    plan = next_run(spec, view, now)
    complete = [r for r in state.runs if r.status == "complete"]
    return StatusView(
        name=spec.name,
        done=len(complete),
        planned=planned_total(spec),
        missed=sum(1 for r in state.runs if r.status == "missed"),
        current=state.current,
        next_plan=plan,
        finished=plan is None,
        pending_uploads=tuple(pending_uploads(state)),
        upload_next_at=state.upload_next_at,
        errors=tuple(state.errors[-5:]),
        last_run=complete[-1] if complete else None,
        upload_dest=spec.upload.dest if spec.upload else None,
    )


def _copy(state: CampaignState) -> CampaignState:
    return CampaignState.from_json(state.to_json())


def _when(d: datetime, now: datetime) -> str:
    delta = (d - now).total_seconds()
    rel = f"in {format_duration(delta)}" if delta > 0 else f"{format_duration(-delta)} ago"
    return f"{d.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({rel})"


def format_status(v: StatusView, now: datetime) -> list[str]:
    """Human-readable lines for ``res64 campaign status``."""
    total = f" of {v.planned}" if v.planned is not None else ""
    lines = [
        f"campaign {v.name}: {v.done}{total} runs done"
        + (f", {v.missed} missed" if v.missed else "")
    ]
    if v.last_run is not None and v.last_run.finished_at is not None:
        lines.append(
            f"  last run: {v.last_run.run_id} ({v.last_run.measured} measurements), "
            f"finished {_when(v.last_run.finished_at, now)}"
        )
    if v.current is not None:
        lines.append(
            f"  unfinished run: slot {v.current.slot + 1}, started "
            f"{_when(v.current.started_at, now)}; it is continued (resumed) on the next start"
        )
    if v.finished:
        lines.append("  next run: none (the campaign is finished)")
    elif v.next_plan is not None and v.current is None:
        lines.append(f"  next run: #{v.next_plan.slot + 1} due {_when(v.next_plan.due, now)}")
    if v.upload_dest is not None:
        if v.pending_uploads:
            retry = f"; next attempt {_when(v.upload_next_at, now)}" if v.upload_next_at else ""
            more = ", ..." if len(v.pending_uploads) > 5 else ""
            lines.append(
                f"  pending uploads to {v.upload_dest}: {len(v.pending_uploads)} runs "
                f"({', '.join(v.pending_uploads[:5])}{more})" + retry
            )
        else:
            lines.append(f"  uploads to {v.upload_dest}: nothing pending")
    if v.errors:
        lines.append("  last errors:")
        for e in v.errors:
            lines.append(f"    {e.at.astimezone(UTC):%Y-%m-%d %H:%M:%S} {e.where}: {e.message}")
    return lines
