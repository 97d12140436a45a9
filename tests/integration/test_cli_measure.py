"""``res64 measure`` as a user runs it: a real process against a lab world in another process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from probe.schema import SCHEMA_VERSION
from probe.store import sha256_file
from tests.conftest import child_env, lab_process, res64_cmd, world_flags


@pytest.fixture(scope="module")
def demo_world_proc(tmp_path_factory):
    with lab_process(tmp_path_factory.mktemp("world")) as w:
        yield w


def _vantage(w: dict, name: str) -> dict:
    return next(v for v in w["vantages"] if v["name"] == name)


def run(args: list[str], tmp: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        res64_cmd() + args,
        capture_output=True,
        text=True,
        env=child_env(tmp),
        timeout=timeout,
    )


def test_measure_writes_a_hive_dataset_with_manifest(demo_world_proc, tmp_path):
    w = demo_world_proc
    out = tmp_path / "out"
    v = _vantage(w, "ir-1")
    p = run(
        ["measure", w["targets_csv"], "--out", str(out), "-q", "--timeout", "3", "--campaign", "t1"]
        + world_flags(w, v),
        tmp_path,
    )
    assert p.returncode == 0, p.stderr
    n_targets = len(w["urls"])
    dset = ds.dataset(out / "measurements", format="parquet", partitioning="hive")
    t = dset.to_table()
    assert t.num_rows == n_targets
    df = pd.read_parquet(out / "measurements")
    assert set(df["probe_cc"].astype(str)) == {"IR"}
    assert set(df["campaign"].astype(str)) == {"t1"}
    assert df["url"].nunique() == n_targets
    assert (df["schema_version"] == SCHEMA_VERSION).all()
    # the manifest lists exactly the files, with their hashes
    (manifest_path,) = (out / "runs").glob("*.json")
    man = json.loads(manifest_path.read_text())
    assert man["status"] == "complete"
    files = sorted(out.glob("measurements/**/*.parquet"))
    assert sorted(f["path"] for f in man["files"]) == sorted(str(f.relative_to(out)) for f in files)
    for f in man["files"]:
        assert sha256_file(out / f["path"]) == f["sha256"]
        md = pq.read_schema(out / f["path"]).metadata
        assert md[b"res64.schema_version"] == str(SCHEMA_VERSION).encode()
    # privacy: the vantage's source address is in no output file
    for f in out.rglob("*"):
        if f.is_file():
            assert v["source_ip"].encode() not in f.read_bytes(), f


def test_unreachable_resolvers_exit_0_with_dns_failures(demo_world_proc, tmp_path):
    w = demo_world_proc
    out = tmp_path / "out"
    flags = world_flags(w, _vantage(w, "us-1"))
    flags[flags.index("--resolver") + 1] = "127.0.0.9:9"
    flags[flags.index("--control-resolver") + 1] = "127.0.0.9:9"
    started = time.monotonic()
    p = run(
        ["measure", w["targets_csv"], "--out", str(out), "-q", "--timeout", "2"] + flags, tmp_path
    )
    assert p.returncode == 0, p.stderr
    assert time.monotonic() - started < 60
    df = pd.read_parquet(out / "measurements")
    assert (df["failure_step"] == "dns").all()
    assert set(df["dns_failure"]) <= {"generic_timeout_error", "connection_refused"}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["measure", "/nonexistent/targets.csv", "--out", "X"], "nonexistent"),
        (["measure", "BINARY", "--out", "X"], "BINARY"),
        (["measure", "https://a.test/", "--out", "X", "--resolver", "nonsense"], "--resolver"),
        (["measure", "https://a.test/", "--out", "X", "--country", "XYZ"], "--country"),
        (["measure", "https://a.test/", "--out", "X", "--concurrency", "0"], "concurrency"),
        (["measure", "https://a.test/", "--out", "X", "--proxy", "ftp://x"], "--proxy"),
        (["measure", "https://user:pw@a.test/", "--out", "X"], "user info"),
        (["targets", "check", "/nonexistent.csv"], "nonexistent"),
        (["measure", "https://a.test/", "--out", "X", "--bogus-flag"], "bogus-flag"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, args, needle):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"url\n\x00\x01\x02\xff\xfe" * 50)
    args = [str(binary) if a == "BINARY" else a for a in args]
    args = [str(tmp_path / "o") if a == "X" else a for a in args]
    p = run(args + ["--no-discover"] if args[0] == "measure" else args, tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert "Traceback" not in p.stderr
    if needle == "BINARY":
        needle = "binary"
    assert needle.lower() in p.stderr.lower(), p.stderr


def test_help_explains_every_command(tmp_path):
    for cmd in (
        ["--help"],
        ["measure", "--help"],
        ["targets", "check", "--help"],
        ["demo", "--help"],
    ):
        p = run(cmd, tmp_path)
        assert p.returncode == 0 and "Usage" in p.stdout, cmd


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)  # polling a condition with a deadline, not synchronising by sleep
    return False


def test_sigint_flushes_finished_measurements_and_exits_130(tmp_path):
    with lab_process(tmp_path / "bulk", world="bulk", bulk_n=300) as w:
        out = tmp_path / "out"
        flags = world_flags(w, w["vantages"][0])
        args = ["measure", w["targets_csv"], "--out", str(out), "-q", "--batch", "25",
                "--concurrency", "2", "--timeout", "3", *flags]  # fmt: skip
        proc = subprocess.Popen(
            res64_cmd() + args, env=child_env(tmp_path), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        files = lambda: list(out.glob("measurements/**/part-*.parquet"))  # noqa: E731
        assert _wait_for(lambda: len(files()) >= 1, 60), "no files written"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "--resume" in err
        df = pd.read_parquet(out / "measurements")
        # what was finished is on disk, listed in the manifest, and nothing twice
        assert 0 < len(df) < 300 and df["url"].is_unique
        (manifest_path,) = (out / "runs").glob("*.json")
        man = json.loads(manifest_path.read_text())
        assert man["status"] == "interrupted"
        assert sum(f["rows"] for f in man["files"]) == len(df)


def test_concurrency_is_lowered_to_fit_the_open_file_limit(demo_world_proc, tmp_path):
    import resource

    w = demo_world_proc

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (160, 160))

    out = tmp_path / "out"
    p = subprocess.run(
        [*res64_cmd(), "measure", w["targets_csv"], "--out", str(out), "-q", "--timeout", "3",
         "--concurrency", "1000", *world_flags(w, _vantage(w, "de-1"))],
        env=child_env(tmp_path), capture_output=True, text=True, timeout=120,
        preexec_fn=low_fd_limit,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "concurrency lowered from 1000 to 12" in p.stderr
    assert len(pd.read_parquet(out / "measurements")) == len(w["urls"])


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="traceroutes need root (raw sockets)")
def test_trace_failed_stores_hops_for_failed_measurements(demo_world_proc, tmp_path):
    w = demo_world_proc
    out = tmp_path / "out"
    p = run(
        ["measure", w["targets_csv"], "--out", str(out), "-q", "--timeout", "3",
         "--trace", "failed", *world_flags(w, _vantage(w, "ir-1"))],
        tmp_path,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    ms = pd.read_parquet(out / "measurements")
    hops = pd.read_parquet(out / "hops")
    failed = set(ms.loc[ms["failure_step"].notna() & ms["server_ip"].notna(), "measurement_id"])
    assert failed and set(hops["measurement_id"]) == failed
    assert (hops["proto"] == "tcp").all() and hops["hop_ip"].notna().any()


def test_trace_without_privileges_says_how_to_grant_them(demo_world_proc, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("running as root: raw sockets are available")
    w = demo_world_proc
    p = run(["measure", w["urls"][0], "--out", str(tmp_path / "o"), "-q", "--trace", "all",
             *world_flags(w, _vantage(w, "us-1"))], tmp_path)  # fmt: skip
    assert p.returncode == 0 and "cap_net_raw" in p.stderr


def test_analyze_bad_parquet_and_campaign_toml_are_one_line_errors(tmp_path):
    ds_dir = tmp_path / "ds" / "measurements" / "campaign=c" / "probe_cc=DE" / "date=2026-01-01"
    ds_dir.mkdir(parents=True)
    bad = ds_dir / "part-x-00000.parquet"
    bad.write_bytes(b"PAR1" + b"\x00" * 100)  # truncated
    p = run(["analyze", str(tmp_path / "ds"), "--out", str(tmp_path / "a")], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "part-x-00000.parquet" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    toml = tmp_path / "c.toml"
    toml.write_text('name = "x"\ntargets = ["t.csv"]\n[schedule]\ninterval = "soon"\n')
    p = run(["campaign", "status", str(toml)], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "c.toml:" in p.stderr


def test_fingerprints_check_names_the_matching_signature(tmp_path):
    from probe.lab.pages import cloudflare_1009

    page = tmp_path / "page.html"
    page.write_bytes(cloudflare_1009("shop.test", "IR", "abc-FRA").body)
    p = run(["fingerprints", "check", str(page), "--status", "403"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "geoblock" in p.stdout and "IR" in p.stdout


def test_demo_then_report_in_french_from_the_command_line(tmp_path):
    p = run(["demo", "--out", str(tmp_path / "d"), "-q"], tmp_path)
    assert p.returncode == 0, p.stderr
    assert "Evidence per country pair" in p.stderr and "report:" in p.stderr
    for f in ("report.html", "report.docx", "report.xlsx", "report.md"):
        assert (tmp_path / "d" / "report" / f).is_file()
    p = run(["report", str(tmp_path / "d" / "analysis"), "--out", str(tmp_path / "fr"),
             "--format", "md,csv", "--lang", "fr", "--title", "Annexe"], tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    md = (tmp_path / "fr" / "report.md").read_text()
    assert "Annexe" in md and "Tableau 1" in md
    p = run(["report", str(tmp_path / "d" / "analysis"), "--out", str(tmp_path / "x"),
             "--lang", "de"], tmp_path)  # fmt: skip
    assert p.returncode == 2 and "--lang" in p.stderr
