"""``probe.upload`` against a real S3-compatible server (SeaweedFS) on 127.0.0.1.

Only files listed in run manifests are copied, each once (SHA-256 in the object metadata); a
server stopped in the middle of an upload costs nothing but a retry; pyarrow reads the uploaded
dataset straight from S3.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from probe.errors import ConfigError
from probe.store import sha256_file
from probe.upload import (
    UploadError,
    format_upload_result,
    open_dataset_filesystem,
    plan_upload,
    upload_dataset,
)
from tests.conftest import child_env, lab_process, res64_cmd, world_flags
from tests.s3server import BUCKET, S3Server, s3_server, use_server_env


@pytest.fixture(scope="module")
def dataset_template(tmp_path_factory) -> Path:
    """A dataset of two runs (two vantages of the demo world), measured by ``res64 measure``."""
    tmp = tmp_path_factory.mktemp("dataset")
    out = tmp / "out"
    with lab_process(tmp / "world") as w:
        for v in w["vantages"][:2]:
            p = subprocess.run(
                [*res64_cmd(), "measure", w["targets_csv"], "--out", str(out), "-q",
                 "--timeout", "3", "--batch", "5", *world_flags(w, v)],
                capture_output=True, text=True, env=child_env(tmp), timeout=120,
            )  # fmt: skip
            assert p.returncode == 0, p.stderr
    return out


@pytest.fixture
def dataset(dataset_template: Path, tmp_path: Path) -> Path:
    out = tmp_path / "ds"
    shutil.copytree(dataset_template, out)
    return out


@pytest.fixture(scope="module")
def shared_s3(tmp_path_factory) -> Iterator[S3Server]:
    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.fixture
def s3(shared_s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    use_server_env(monkeypatch, shared_s3)
    return shared_s3


def _manifest_files(out: Path) -> dict[str, str]:
    """rel path -> sha256 of every file the manifests list, plus the manifests."""
    files = {}
    for m in sorted((out / "runs").glob("*.json")):
        for f in json.loads(m.read_text())["files"]:
            files[f["path"]] = f["sha256"]
        files[f"runs/{m.name}"] = sha256_file(m)
    return files


def _no_sleep(_seconds: float) -> None:
    pass


def test_only_manifest_files_are_uploaded_then_skipped(s3, dataset):
    listed = _manifest_files(dataset)
    assert len([p for p in listed if p.startswith("runs/")]) == 2
    part_dir = next(dataset.glob("measurements/campaign=*/probe_cc=*/date=*"))
    (part_dir / "part-stray-00000.parquet").write_bytes(b"not listed in any manifest")
    (part_dir / ".part-x-00001.parquet.tmp").write_bytes(b"in flight")

    res = upload_dataset(dataset, f"s3://{BUCKET}/t1")
    assert sorted(res.uploaded) == sorted(listed)
    assert res.skipped == [] and res.complete and len(res.runs) == 2
    remote = s3.keys("t1/")
    assert {k.removeprefix("t1/") for k in remote} == set(listed)
    for key, info in remote.items():
        rel = key.removeprefix("t1/")
        assert info["sha256"] == listed[rel]
        assert hashlib.sha256(s3.get(key)).hexdigest() == listed[rel]

    again = upload_dataset(dataset, f"s3://{BUCKET}/t1")
    assert again.uploaded == [] and sorted(again.skipped) == sorted(listed)
    assert sorted(again.runs) == sorted(res.runs)
    assert "0 files uploaded" in format_upload_result(again)[0]


def test_a_changed_remote_object_is_replaced(s3, dataset):
    upload_dataset(dataset, f"s3://{BUCKET}/t2")
    rel = next(p for p in _manifest_files(dataset) if p.endswith(".parquet"))
    s3.put(f"t2/{rel}", b"garbage")  # no sha256 metadata, wrong size
    res = upload_dataset(dataset, f"s3://{BUCKET}/t2")
    assert res.uploaded == [rel]
    assert hashlib.sha256(s3.get(f"t2/{rel}")).hexdigest() == sha256_file(dataset / rel)
    # the same bytes without metadata (copied by another tool) count as present
    s3.put(f"t2/{rel}", (dataset / rel).read_bytes())
    assert upload_dataset(dataset, f"s3://{BUCKET}/t2").uploaded == []


def test_a_local_file_that_differs_from_its_manifest_is_not_uploaded(s3, dataset):
    rel = next(p for p in _manifest_files(dataset) if p.endswith(".parquet"))
    (dataset / rel).write_bytes(b"corrupted")
    res = upload_dataset(dataset, f"s3://{BUCKET}/t3")
    assert res.mismatched == [rel] and not res.complete
    assert len(res.runs) == 1  # the other run is complete at the destination
    remote = s3.keys("t3/")
    assert f"t3/{rel}" not in remote
    bad_run = next(m.stem for m in (dataset / "runs").glob("*.json") if m.stem not in res.runs)
    assert f"t3/runs/{bad_run}.json" not in remote  # no manifest without all its files
    assert any("differs from its manifest" in line for line in format_upload_result(res))


def test_only_the_requested_runs(s3, dataset):
    run = sorted(m.stem for m in (dataset / "runs").glob("*.json"))[0]
    res = upload_dataset(dataset, f"s3://{BUCKET}/t4", runs=[run])
    assert res.runs == [run]
    assert {k.split("/")[-1] for k in s3.keys("t4/runs/")} == {f"{run}.json"}
    res = upload_dataset(dataset, f"s3://{BUCKET}/t4", runs=["nope"])
    assert res.problems and "no manifest for run nope" in res.problems[0]


def test_wrong_credentials_stop_at_once(s3, dataset, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    sleeps: list[float] = []
    with pytest.raises(UploadError, match=r"access refused|SignatureDoesNotMatch") as ei:
        upload_dataset(dataset, f"s3://{BUCKET}/t5", sleep=sleeps.append)
    assert sleeps == []  # not retried: retrying cannot help
    assert ei.value.result.uploaded == []


def test_missing_bucket_is_reported(s3, dataset):
    with pytest.raises(UploadError, match=r"does the bucket exist|NoSuchBucket"):
        upload_dataset(dataset, "s3://no-such-bucket/x", sleep=_no_sleep)


def test_pyarrow_reads_the_uploaded_dataset(s3, dataset):
    upload_dataset(dataset, f"s3://{BUCKET}/t6")
    fs, root = open_dataset_filesystem(f"s3://{BUCKET}/t6")
    assert root == f"{BUCKET}/t6"
    remote = ds.dataset(f"{root}/measurements", filesystem=fs, format="parquet",
                        partitioning="hive").to_table()  # fmt: skip
    local = ds.dataset(dataset / "measurements", format="parquet", partitioning="hive").to_table()
    assert remote.num_rows == local.num_rows > 0
    key = "measurement_id"
    r = remote.sort_by(key).select(local.schema.names)
    assert r.equals(local.sort_by(key))


def test_server_stopped_mid_upload_then_restarted(tmp_path, dataset, monkeypatch):
    listed = _manifest_files(dataset)
    with s3_server(tmp_path / "s3") as server:
        use_server_env(monkeypatch, server)
        done: list[str] = []

        def on_file(rel: str, outcome: str) -> None:
            done.append(rel)
            if len(done) == 3:
                server.stop()  # the server dies in the middle of the upload

        with pytest.raises(UploadError, match="unreachable") as ei:
            upload_dataset(dataset, f"s3://{BUCKET}/mid", retries=2, sleep=_no_sleep,
                           on_file=on_file)  # fmt: skip
        first = ei.value.result
        assert len(first.uploaded) == 3 and first.runs == []

        server.start()  # same ports, same data
        res = upload_dataset(dataset, f"s3://{BUCKET}/mid", sleep=_no_sleep)
        assert sorted(res.skipped) == sorted(first.uploaded)
        assert sorted(res.uploaded) == sorted(set(listed) - set(first.uploaded))
        assert len(res.runs) == 2
        remote = server.keys("mid/")
        assert {k.removeprefix("mid/") for k in remote} == set(listed)
        for key, info in remote.items():
            assert hashlib.sha256(server.get(key)).hexdigest() == info["sha256"]


def test_upload_to_a_directory(tmp_path, dataset):
    dest = tmp_path / "mirror"
    res = upload_dataset(dataset, str(dest))
    listed = _manifest_files(dataset)
    assert sorted(res.uploaded) == sorted(listed)
    got = {str(p.relative_to(dest)): sha256_file(p) for p in dest.rglob("*") if p.is_file()}
    assert got == listed  # no temporary files left behind
    assert upload_dataset(dataset, f"file://{dest}").uploaded == []


def test_plan_reports_unreadable_manifests(tmp_path, dataset):
    (dataset / "runs" / "broken.json").write_text("{")
    items, problems = plan_upload(dataset)
    assert any("broken.json: unreadable run manifest" in p for p in problems)
    assert {i.kind for i in items} == {"data", "manifest"}
    _, problems = plan_upload(tmp_path / "empty")
    assert problems and "nothing to upload" in problems[0]


@pytest.mark.parametrize(
    ("url", "env", "message"),
    [
        ("s3://b/p", {"AWS_ENDPOINT_URL_S3": "http://10.1.2.3:9000"}, "only a loopback"),
        ("s3://b/p", {}, "only a loopback"),
        ("s3://b/p", {"AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1"}, "AWS_ACCESS_KEY_ID"),
        ("gcs://b/p", {}, "only local paths and s3://"),
        ("s3:///p", {}, "no bucket name"),
    ],
)
def test_loopback_only_guard(monkeypatch, url, env, message):
    for k in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError, match=message):
        open_dataset_filesystem(url, loopback_only=True)


def test_local_paths_resolve(tmp_path):
    fs, path = open_dataset_filesystem(str(tmp_path))
    assert path == str(tmp_path.resolve()) and fs.isdir(path)
    fs, path = open_dataset_filesystem(f"file://{tmp_path}")
    assert path == str(tmp_path.resolve())
