"""Crash safety: SIGKILL at random moments, and a full disk, never leave a partial file visible
and never lose finished measurements; ``--resume`` completes each target exactly once."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from probe.store import sha256_file
from tests.conftest import child_env, lab_process, res64_cmd, world_flags

N_TARGETS = 3000
KILLS = 20


def _files(out: Path) -> list[Path]:
    return sorted(out.glob("measurements/**/part-*.parquet"))


def _check_visible_files(out: Path) -> int:
    """Every visible file is complete; the manifest lists them (at most the newest file may
    still be missing from it: the data file is renamed into place before the manifest is
    rewritten, and --resume adopts it). Returns the rows on disk."""
    rows = 0
    for f in _files(out):
        rows += pq.read_table(f).num_rows  # raises on a partial file
    manifests = list((out / "runs").glob("*.json")) if (out / "runs").exists() else []
    assert len(manifests) <= 1
    if manifests:
        man = json.loads(manifests[0].read_text())
        listed = {f["path"]: f for f in man["files"]}
        on_disk = {str(f.relative_to(out)) for f in _files(out)}
        assert set(listed) <= on_disk, "manifest names a file that is not there"
        assert len(on_disk - set(listed)) <= 1
        for path, entry in listed.items():
            assert sha256_file(out / path) == entry["sha256"]
    if rows:
        assert pd.read_parquet(out / "measurements")["url"].is_unique
    return rows


@pytest.mark.slow
def test_sigkill_at_20_random_moments_then_resume(tmp_path):
    rng = random.Random(64)
    with lab_process(tmp_path / "bulk", world="bulk", bulk_n=N_TARGETS) as w:
        out = tmp_path / "out"
        args = [*res64_cmd(), "measure", w["targets_csv"], "--out", str(out), "-q",
                "--batch", "5", "--concurrency", "1", "--timeout", "3", "--resume",
                *world_flags(w, w["vantages"][0])]  # fmt: skip
        env = child_env(tmp_path)
        previous = kills = 0
        for _ in range(KILLS):
            proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)  # fmt: skip
            # a random moment: during start-up, measuring, or writing
            deadline = time.monotonic() + rng.uniform(0.2, 1.2)
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            if proc.poll() is not None:
                break  # the run completed before this moment came
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
            rows = _check_visible_files(out)
            assert rows >= previous, "finished measurements were lost"
            previous = rows
        assert kills == KILLS, f"only {kills} kills landed before the run completed"
        final = [*args]
        final[final.index("--concurrency") + 1] = "16"  # resuming does not depend on it
        p = subprocess.run(final, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
    df = pd.read_parquet(out / "measurements")
    assert len(df) == N_TARGETS and df["url"].is_unique and df["run_id"].nunique() == 1
    (man_path,) = (out / "runs").glob("*.json")
    man = json.loads(man_path.read_text())
    assert man["status"] == "complete"
    assert sorted(f["path"] for f in man["files"]) == [str(f.relative_to(out)) for f in _files(out)]
    assert not list(out.rglob("*.tmp")), "temporary files must not survive a completed run"


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.root
@pytest.mark.skipif(not _can_mount(), reason="needs root to mount a small tmpfs")
def test_disk_full_is_a_clear_error_and_keeps_what_was_written(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], check=True)
    try:
        with lab_process(tmp_path / "bulk", world="bulk", bulk_n=400) as w:
            out = mnt / "out"
            p = subprocess.run(
                [*res64_cmd(), "measure", w["targets_csv"], "--out", str(out), "-q",
                 "--batch", "10", "--concurrency", "8", "--timeout", "3",
                 *world_flags(w, w["vantages"][0])],
                env=child_env(tmp_path), capture_output=True, text=True, timeout=300,
            )  # fmt: skip
        assert p.returncode == 1, p.stderr
        assert "disk full" in p.stderr and "Traceback" not in p.stderr
        assert len(p.stderr.strip().splitlines()) == 1
        files = _files(out)
        assert files, "files written before the disk filled up must be kept"
        for f in files:
            pq.read_table(f)
        assert not [f for f in out.rglob("*") if f.name.endswith(".tmp")]
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
