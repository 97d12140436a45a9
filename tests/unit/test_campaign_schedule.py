"""Schedule and state transitions (pure): next run times, jitter, late runs, restarts, uploads,
retention, status text, and the state file's JSON round trip."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probe.campaign import schedule as sch
from probe.campaign.spec import (
    CampaignSpec,
    RetentionSpec,
    ScheduleSpec,
    UploadSpec,
)
from probe.campaign.state import (
    CampaignLock,
    CampaignState,
    RunRecord,
    load_state,
    save_state,
)
from probe.errors import ConfigError

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def spec(
    schedule: ScheduleSpec, *, upload: bool = False, local_days: float | None = None
) -> CampaignSpec:
    return CampaignSpec(
        path=Path("/x/c.toml"),
        name="camp",
        targets=(Path("/x/t.csv"),),
        out="/x/data",
        data_dir=Path("/x/data"),
        state_dir=Path("/x/data/_campaign"),
        schedule=schedule,
        upload=UploadSpec(dest="s3://b/p", retry_min=10, retry_max=80) if upload else None,
        retention=RetentionSpec(local_days=local_days),
    )


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def run_slot(sp: CampaignSpec, st_: CampaignState, plan: sch.Plan, start: datetime) -> None:
    sch.begin(sp, st_, plan, start)
    sch.finish(st_, f"run{plan.slot}", 10, start + s(5))


# --- jitter ---------------------------------------------------------------------------------


def test_jitter_is_deterministic_bounded_and_varies():
    vals = [sch.jitter_for("camp", k, 60.0) for k in range(200)]
    assert vals == [sch.jitter_for("camp", k, 60.0) for k in range(200)]
    assert all(0 <= v < 60 for v in vals)
    assert len(set(vals)) == 200
    assert min(vals) < 10 and max(vals) > 50  # spread over the range
    assert sch.jitter_for("other", 0, 60.0) != sch.jitter_for("camp", 0, 60.0)
    assert sch.jitter_for("camp", 3, 0.0) == 0.0


# --- interval schedules ----------------------------------------------------------------------


def test_interval_runs_on_the_grid_and_stop_after_runs():
    sp = spec(ScheduleSpec(interval=20.0, runs=3))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    assert st_.anchor == T0
    dues = []
    now = T0
    while (plan := sch.next_run(sp, st_, now)) is not None:
        dues.append(plan.due)
        now = plan.due  # the loop starts each run when it is due
        run_slot(sp, st_, plan, now)
    assert dues == [T0, T0 + s(20), T0 + s(40)]
    assert sch.completed(st_) == 3


def test_interval_with_jitter_and_start():
    sched = ScheduleSpec(interval=3600.0, jitter=600.0, runs=2, start=T0 + s(7200))
    sp = spec(sched)
    st_ = sch.ensure_anchor(sched, CampaignState("camp"), T0)
    assert st_.anchor == T0 + s(7200)
    plan = sch.next_run(sp, st_, T0)
    assert plan is not None and plan.nominal == T0 + s(7200)
    assert plan.due == plan.nominal + s(sch.jitter_for("camp", 0, 600.0))
    run_slot(sp, st_, plan, plan.due)
    plan2 = sch.next_run(sp, st_, plan.due + s(10))
    assert plan2 is not None and plan2.nominal == T0 + s(7200 + 3600)  # jitter does not drift
    assert plan2.due == plan2.nominal + s(sch.jitter_for("camp", 1, 600.0))


def test_interval_late_run_runs_once_and_shifts_the_grid():
    sp = spec(ScheduleSpec(interval=3600.0, runs=10))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    # the host was off for two days: one late run now, then an hour later (no burst)
    late = T0 + s(2 * 86400)
    plan = sch.next_run(sp, st_, late)
    assert plan.slot == 1 and plan.due == T0 + s(3600) and not plan.missed
    run_slot(sp, st_, plan, late)
    plan = sch.next_run(sp, st_, late + s(10))
    assert plan.slot == 2 and plan.due == late + s(3600)


def test_interval_no_catch_up_waits_for_the_next_grid_point():
    sp = spec(ScheduleSpec(interval=3600.0, runs=10, catch_up=False))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    now = T0 + s(5 * 3600 + 900)
    plan = sch.next_run(sp, st_, now)
    assert plan.slot == 1 and plan.due == T0 + s(6 * 3600)


def test_slightly_late_run_keeps_the_grid():
    sp = spec(ScheduleSpec(interval=3600.0, runs=10))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0 + s(3))  # a few seconds late
    assert sch.next_run(sp, st_, T0 + s(60)).due == T0 + s(3600)


def test_until_ends_the_campaign():
    sp = spec(ScheduleSpec(interval=3600.0, until=T0 + s(3 * 3600)))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    now, n = T0, 0
    while (plan := sch.next_run(sp, st_, now)) is not None:
        now = plan.due
        run_slot(sp, st_, plan, now)
        n += 1
    assert n == 4  # T0, +1h, +2h, +3h (until is inclusive)
    assert sch.planned_total(sp) is None


@settings(max_examples=60, deadline=None)
@given(
    interval=st.floats(min_value=1, max_value=86400),
    jitter_frac=st.floats(min_value=0, max_value=0.99),
    runs=st.integers(min_value=1, max_value=12),
    delays=st.lists(st.floats(min_value=0, max_value=3 * 86400), min_size=12, max_size=12),
)
def test_interval_properties(interval, jitter_frac, runs, delays):
    """Whatever the delays: exactly `runs` runs, slots 0..runs-1, due times never go back,
    and consecutive runs are never closer than the interval minus the jitter and the grace
    (a run late by less than the grace keeps the grid)."""
    sched = ScheduleSpec(interval=interval, jitter=interval * jitter_frac, runs=runs)
    sp = spec(sched)
    st_ = sch.ensure_anchor(sched, CampaignState("camp"), T0)
    now, starts, slots = T0, [], []
    for d in delays:
        plan = sch.next_run(sp, st_, now)
        if plan is None:
            break
        start = max(now, plan.due) + s(d * (len(starts) % 2))  # sometimes very late
        sch.begin(sp, st_, plan, start)
        sch.finish(st_, f"r{plan.slot}", 1, start + s(1))
        starts.append(start)
        slots.append(plan.slot)
        now = start + s(1)
    assert sch.next_run(sp, st_, now) is None
    assert slots == list(range(runs))
    for a, b in itertools.pairwise(starts):
        assert (b - a).total_seconds() >= interval - sched.jitter - sch.grace(sched) - 1e-6


# --- fixed times -----------------------------------------------------------------------------


def test_absolute_times_in_order_then_finished():
    times = (T0, T0 + s(3600), T0 + s(7200))
    sp = spec(ScheduleSpec(times=times))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0 - s(100))
    now, dues = T0 - s(100), []
    while (plan := sch.next_run(sp, st_, now)) is not None:
        dues.append(plan.due)
        now = plan.due
        run_slot(sp, st_, plan, now)
    assert dues == list(times)
    assert sch.planned_total(sp) == 3


def test_missed_times_collapse_into_one_late_run():
    times = tuple(T0 + s(3600 * k) for k in range(5))
    sp = spec(ScheduleSpec(times=times))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    now = T0 + s(3600 * 2 + 1800)  # slots 0, 1, 2 passed while down
    plan = sch.next_run(sp, st_, now)
    assert plan.slot == 2 and [k for k, _ in plan.missed] == [0, 1]
    sch.begin(sp, st_, plan, now)
    sch.finish(st_, "r2", 5, now + s(5))
    assert [r.status for r in st_.runs] == ["missed", "missed", "complete"]
    assert sch.next_run(sp, st_, now + s(10)).slot == 3


def test_missed_times_without_catch_up_are_skipped():
    times = tuple(T0 + s(3600 * k) for k in range(3))
    sp = spec(ScheduleSpec(times=times, catch_up=False))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    now = T0 + s(3600 + 1800)  # slot 1 is 30 min late (> grace)
    plan = sch.next_run(sp, st_, now)
    assert plan.slot == 2 and [k for k, _ in plan.missed] == [0, 1]


def test_daily_times_start_after_the_anchor():
    sched = ScheduleSpec(daily=(time(6, 0), time(18, 0)), runs=3)
    sp = spec(sched)
    st_ = sch.ensure_anchor(sched, CampaignState("camp"), T0)  # 12:00
    now, dues = T0, []
    while (plan := sch.next_run(sp, st_, now)) is not None:
        dues.append(plan.due)
        now = plan.due
        run_slot(sp, st_, plan, now)
    day = T0.date()
    assert dues == [
        datetime.combine(day, time(18), UTC),
        datetime.combine(day + timedelta(days=1), time(6), UTC),
        datetime.combine(day + timedelta(days=1), time(18), UTC),
    ]


# --- restarts --------------------------------------------------------------------------------


def test_interrupted_run_is_resumed_not_repeated():
    sp = spec(ScheduleSpec(interval=20.0, runs=3))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    plan = sch.next_run(sp, st_, T0 + s(20))
    sch.begin(sp, st_, plan, T0 + s(20))
    # crash; the restarted process plans the same slot, as a resume, due at once
    st2 = CampaignState.from_json(json.loads(json.dumps(st_.to_json())))
    again = sch.next_run(sp, st2, T0 + s(35))
    assert again.resume and again.slot == 1 and again.due <= T0 + s(35)
    sch.begin(sp, st2, again, T0 + s(35))
    assert st2.current.attempts == 2
    sch.finish(st2, "run1", 7, T0 + s(40))
    assert [r.slot for r in st2.runs] == [0, 1] and st2.runs[1].interrupted == 1
    assert sch.next_run(sp, st2, T0 + s(41)).slot == 2


def test_finish_without_current_is_a_bug():
    with pytest.raises(ValueError):
        sch.finish(CampaignState("camp"), "r", 0, T0)


# --- uploads and retention -------------------------------------------------------------------


def test_upload_queue_backoff_and_drain():
    sp = spec(ScheduleSpec(interval=20.0, runs=3), upload=True)
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    assert sch.pending_uploads(st_) == ["run0"]
    assert sch.upload_due(st_, T0)
    sch.upload_failed(sp, st_, "down", T0)
    assert st_.upload_next_at == T0 + s(10) and not sch.upload_due(st_, T0 + s(5))
    sch.upload_failed(sp, st_, "down", T0 + s(10))
    assert st_.upload_next_at == T0 + s(30)
    assert st_.errors[-1].where == "upload"
    sch.upload_done(st_, ["run0"], T0 + s(40))
    assert sch.pending_uploads(st_) == [] and st_.upload_failures == 0
    assert st_.upload_next_at is None


def test_backoff_doubles_and_caps():
    assert [sch.backoff(n, 10, 80) for n in range(6)] == [0, 10, 20, 40, 80, 80]
    assert sch.backoff(10_000, 1, 3600) == 3600


def test_errors_are_bounded():
    st_ = CampaignState("camp")
    for i in range(100):
        sch.record_error(st_, "run", f"e{i}", T0)
    assert len(st_.errors) == 20 and st_.errors[-1].message == "e99"


def test_retention_selects_only_old_uploaded_runs():
    sp = spec(ScheduleSpec(interval=86400.0, runs=10), upload=True, local_days=2)
    st_ = CampaignState("camp", anchor=T0)
    for k in range(4):
        st_.runs.append(
            RunRecord(k, "complete", T0 + s(86400 * k), finished_at=T0 + s(86400 * k),
                      run_id=f"r{k}", uploaded_at=T0 + s(86400 * k) if k != 0 else None)
        )  # fmt: skip
    now = T0 + s(86400 * 3 + 60)
    assert [r.run_id for r in sch.prune_candidates(sp, st_, now)] == ["r1"]
    assert sch.prune_candidates(spec(sp.schedule, upload=True), st_, now) == []


# --- status ----------------------------------------------------------------------------------


def test_status_lines():
    sp = spec(ScheduleSpec(interval=20.0, runs=3), upload=True)
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    sch.upload_failed(sp, st_, "connection refused", T0 + s(6))
    text = "\n".join(sch.format_status(sch.status_view(sp, st_, T0 + s(8)), T0 + s(8)))
    assert "campaign camp: 1 of 3 runs done" in text
    assert "next run: #2 due 2026-12-01 12:00:20 UTC (in 12s)" in text
    assert "pending uploads to s3://b/p: 1 runs (run0)" in text
    assert "upload: connection refused" in text
    sch.begin(sp, st_, sch.next_run(sp, st_, T0 + s(20)), T0 + s(20))
    text = "\n".join(sch.format_status(sch.status_view(sp, st_, T0 + s(25)), T0 + s(25)))
    assert "unfinished run: slot 2" in text
    fresh = sch.status_view(sp, CampaignState("camp"), T0)
    assert fresh.done == 0 and fresh.next_plan is not None and not fresh.finished


def test_status_of_a_finished_campaign():
    sp = spec(ScheduleSpec(interval=20.0, runs=1))
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    lines = sch.format_status(sch.status_view(sp, st_, T0 + s(30)), T0 + s(30))
    assert "the campaign is finished" in "\n".join(lines)


# --- state file ------------------------------------------------------------------------------


def test_state_round_trip_and_atomic_save(tmp_path):
    sp = spec(ScheduleSpec(interval=20.0, runs=3), upload=True)
    st_ = sch.ensure_anchor(sp.schedule, CampaignState("camp"), T0)
    run_slot(sp, st_, sch.next_run(sp, st_, T0), T0)
    sch.begin(sp, st_, sch.next_run(sp, st_, T0 + s(20)), T0 + s(20))
    sch.upload_failed(sp, st_, "x", T0)
    save_state(tmp_path, st_)
    assert not list(tmp_path.glob(".*.tmp"))
    back = load_state(tmp_path, "camp")
    assert back.to_json() == st_.to_json()
    assert load_state(tmp_path, "other").runs == []  # no file: a fresh state


def test_state_errors_are_config_errors(tmp_path):
    (tmp_path / "camp.state.json").write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable campaign state"):
        load_state(tmp_path, "camp")
    (tmp_path / "camp.state.json").write_text(json.dumps({"campaign": "zzz"}))
    with pytest.raises(ConfigError, match="not 'camp'"):
        load_state(tmp_path, "camp")
    (tmp_path / "camp.state.json").write_text(json.dumps({"campaign": "camp", "version": 99}))
    with pytest.raises(ConfigError, match="newer"):
        load_state(tmp_path, "camp")


def test_lock_is_exclusive(tmp_path):
    with (
        CampaignLock(tmp_path, "camp"),
        pytest.raises(ConfigError, match="already running"),
        CampaignLock(tmp_path, "camp"),
    ):
        pass
    with CampaignLock(tmp_path, "camp"):  # released
        pass
