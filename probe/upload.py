"""Copy a dataset's complete files to a destination, idempotently (``res64 upload``).

What is copied: every file listed in a run manifest (``OUT/runs/*.json``, see
:class:`probe.store.Manifest`) — files are listed only once complete — and then the manifest
itself, so a manifest at the destination means its run's files are there.  Files in flight
(``.part-*.tmp``) or not in a manifest are never copied.  The destination keeps the dataset
layout (``DEST/measurements/campaign=.../part-....parquet``, ``DEST/runs/<run_id>.json``), so any
reader of the local dataset reads the remote one (SPEC §7).

Idempotence: each object carries its SHA-256 (S3 object metadata ``sha256``; other filesystems
are compared by hashing the remote file).  A file already present with the same SHA-256 is
skipped; a local file that no longer matches its manifest is reported, never uploaded.

Failures: each file is retried with exponential back-off; a destination that stays unreachable
stops the upload with :class:`UploadError` (what was copied stays copied, the rest is copied by
the next attempt).  Credentials come from the environment or the standard AWS configuration
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``), never from a
spec file; an S3-compatible server is named with ``endpoint_url`` or ``AWS_ENDPOINT_URL_S3``.

:func:`open_dataset_filesystem` gives the analysis an fsspec filesystem for ``s3://`` (or any
fsspec) dataset URLs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from probe.config import is_loopback, loopback_only_from_env
from probe.errors import ConfigError, StoreError
from probe.store import sha256_file

T = TypeVar("T")

MAX_MANIFEST_BYTES = 64 << 20
S3_CONFIG: dict[str, Any] = {
    "connect_timeout": 10,
    "read_timeout": 60,
    "retries": {"max_attempts": 1, "mode": "standard"},  # retried by upload_dataset
}
S3_PROTOCOLS = ("s3", "s3a")
LOCAL_PROTOCOLS = ("file", "local")
PERMANENT_S3_CODES = {
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "NoSuchBucket",
    "InvalidBucketName",
    "AllAccessDisabled",
    "ExpiredToken",
}


class UploadError(StoreError):
    """The upload stopped: destination unreachable, access refused, bucket missing.

    :attr:`result` tells what was copied before it stopped.
    """

    def __init__(self, message: str, result: UploadResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(frozen=True, slots=True)
class UploadItem:
    """One file to copy: a data file listed in a manifest, or the manifest itself."""

    rel: str  # path relative to the dataset root, '/'-separated
    run_id: str
    kind: str  # data | manifest
    sha256: str
    size: int
    data: bytes | None = None  # a manifest's bytes, read once


@dataclass
class UploadResult:
    dest: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already there, same SHA-256
    missing: list[str] = field(default_factory=list)  # listed, but neither local nor remote
    mismatched: list[str] = field(default_factory=list)  # local file differs from manifest
    problems: list[str] = field(default_factory=list)  # unreadable manifests, unknown runs
    runs: list[str] = field(default_factory=list)  # runs whose files and manifest are there
    bytes: int = 0

    @property
    def complete(self) -> bool:
        return not (self.missing or self.mismatched or self.problems)


# --------------------------------------------------------------------------------------------
# Filesystems


def _endpoint(explicit: str | None) -> str | None:
    return (
        explicit
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def _split_protocol(url: str) -> tuple[str, str]:
    if "://" not in url:
        return "file", url
    proto, rest = url.split("://", 1)
    return proto.lower(), rest


def open_dataset_filesystem(
    url: str,
    *,
    endpoint_url: str | None = None,
    profile: str | None = None,
    loopback_only: bool | None = None,
) -> tuple[Any, str]:
    """An fsspec filesystem and the path inside it for a dataset at ``url``.

    ``url`` is a local path, ``file://...``, ``s3://bucket/prefix`` (s3fs; endpoint from
    ``endpoint_url`` or ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL``) or any URL fsspec knows.
    With ``RES64_LOOPBACK_ONLY`` set, only local paths and loopback S3 endpoints are allowed.

    Use with pyarrow: ``pyarrow.dataset.dataset(path + "/measurements", filesystem=fs,
    format="parquet", partitioning="hive")``.
    """
    try:
        import fsspec
    except ImportError:
        raise ConfigError(f"{url}: uploads and remote datasets need the fsspec package") from None

    loopback_only = loopback_only_from_env() if loopback_only is None else loopback_only
    proto, rest = _split_protocol(url)
    if proto in LOCAL_PROTOCOLS:
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(Path(rest).expanduser().resolve())
    if proto in S3_PROTOCOLS:
        try:
            import s3fs
        except ImportError:
            raise ConfigError(f"{url}: reading or writing s3:// needs the s3fs package") from None
        bucket = rest.split("/", 1)[0]
        if not bucket:
            raise ConfigError(f"{url}: no bucket name (s3://BUCKET/PREFIX)")
        endpoint = _endpoint(endpoint_url)
        if loopback_only:
            host = urlsplit(endpoint).hostname if endpoint else None
            if not host or not (is_loopback(host) or host == "localhost"):
                raise ConfigError(
                    f"{url}: only a loopback S3 endpoint is allowed in loopback-only mode "
                    "(set AWS_ENDPOINT_URL_S3=http://127.0.0.1:PORT)"
                )
            if not os.environ.get("AWS_ACCESS_KEY_ID"):
                raise ConfigError(
                    f"{url}: loopback-only mode needs AWS_ACCESS_KEY_ID in the environment "
                    "(no other credential source is consulted)"
                )
        kwargs: dict[str, Any] = {
            "skip_instance_cache": True,
            "config_kwargs": dict(S3_CONFIG),
        }
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if profile:
            kwargs["profile"] = profile
        fs = s3fs.S3FileSystem(**kwargs)
        fs.retries = 2
        return fs, rest.rstrip("/")
    if loopback_only and proto != "memory":
        raise ConfigError(f"{url}: only local paths and s3:// are allowed in loopback-only mode")
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ConfigError(f"{url}: no filesystem for {proto}:// ({exc})") from None
    return fs, str(path).rstrip("/")


def _is_s3(fs: Any) -> bool:
    protocol = getattr(fs, "protocol", ())
    protos = (protocol,) if isinstance(protocol, str) else tuple(protocol)
    return any(p in S3_PROTOCOLS for p in protos)


# --------------------------------------------------------------------------------------------
# What to copy (reads the local manifests)


def plan_upload(
    dataset: Path, runs: Iterable[str] | None = None
) -> tuple[list[UploadItem], list[str]]:
    """Files to copy, run by run (data files, then the manifest), and problems found."""
    wanted = set(runs) if runs is not None else None
    items: list[UploadItem] = []
    problems: list[str] = []
    rundir = dataset / "runs"
    paths = sorted(rundir.glob("*.json")) if rundir.is_dir() else []
    if not paths and wanted is None:
        problems.append(f"{dataset}: no run manifests (runs/*.json): nothing to upload")
    seen: set[str] = set()
    for p in paths:
        run_id = p.stem
        if wanted is not None and run_id not in wanted:
            continue
        try:
            if p.stat().st_size > MAX_MANIFEST_BYTES:
                raise ValueError("manifest too large")
            data = p.read_bytes()
            man = json.loads(data)
            files = man.get("files", [])
            if man.get("run_id") != run_id or not isinstance(files, list):
                raise ValueError("not a run manifest")
        except (OSError, ValueError) as exc:
            problems.append(f"{p}: unreadable run manifest ({exc})")
            continue
        seen.add(run_id)
        for f in files:
            try:
                rel = str(f["path"]).replace(os.sep, "/")
                entry = UploadItem(rel, run_id, "data", str(f["sha256"]), int(f["bytes"]))
            except (KeyError, TypeError, ValueError):
                problems.append(f"{p}: bad file entry {f!r}")
                continue
            if rel.startswith("/") or ".." in rel.split("/"):
                problems.append(f"{p}: file path outside the dataset: {rel!r}")
                continue
            items.append(entry)
        sha = hashlib.sha256(data).hexdigest()
        items.append(UploadItem(f"runs/{p.name}", run_id, "manifest", sha, len(data), data))
    if wanted is not None:
        for r in sorted(wanted - seen):
            problems.append(f"{dataset}: no manifest for run {r}")
    return items, problems


# --------------------------------------------------------------------------------------------
# Copying


def _classify(exc: BaseException) -> str | None:
    """A message if ``exc`` will not go away by retrying, else None (retry)."""
    if isinstance(exc, PermissionError):
        return f"access refused ({exc}): check the credentials (environment or AWS profile)"
    if isinstance(exc, FileNotFoundError):
        return f"destination not found ({exc}): does the bucket exist?"
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "ProfileNotFound"):
        return f"no usable credentials ({exc}): set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        if code in PERMANENT_S3_CODES:
            return f"{code}: {exc}"
    if isinstance(exc, OSError | TimeoutError | ConnectionError):
        return None
    module = type(exc).__module__ or ""
    if module.startswith(("botocore", "aiobotocore", "aiohttp", "urllib3", "asyncio", "fsspec")):
        return None
    return f"{name}: {exc}"


def _remote_sha256(fs: Any, path: str, size: int) -> str | None:
    """The SHA-256 of the object at ``path``, or None if absent."""
    try:
        if _is_s3(fs):
            meta = fs.metadata(path)
            if meta.get("sha256"):
                return str(meta["sha256"])
        info = fs.info(path)
    except FileNotFoundError:
        return None
    if info.get("type") == "directory":
        return None
    if int(info.get("size") or -1) != size:
        return "size-differs"
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        remaining = size + 1
        while remaining > 0:
            chunk = f.read(min(1 << 20, remaining))
            if not chunk:
                break
            h.update(chunk)
            remaining -= len(chunk)
    return h.hexdigest()


def _put(fs: Any, item: UploadItem, local: Path | None, rpath: str) -> None:
    if _is_s3(fs):
        meta = {"Metadata": {"sha256": item.sha256}}
        if item.data is not None:
            fs.pipe_file(rpath, item.data, ContentType="application/json", **meta)
        else:
            fs.put_file(str(local), rpath, **meta)
        return
    parent = rpath.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{rpath.rsplit('/', 1)[1]}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        if item.data is not None:
            fs.pipe_file(tmp, item.data)
        else:
            fs.put_file(str(local), tmp)
        fs.mv(tmp, rpath)
    except BaseException:
        with contextlib.suppress(Exception):  # best effort: a temporary name is never read
            fs.rm(tmp)
        raise


class _Stop(Exception):
    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _retrying(
    op: Callable[[], T],
    what: str,
    retries: int,
    base: float,
    cap: float,
    sleep: Callable[[float], None],
) -> T:
    for attempt in range(retries + 1):
        try:
            return op()
        except Exception as exc:
            permanent = _classify(exc)
            if permanent is not None:
                raise _Stop(f"{what}: {permanent}", True) from exc
            if attempt == retries:
                msg = f"{what}: destination unreachable after {retries + 1} attempts ({exc})"
                raise _Stop(msg, False) from exc
            sleep(min(cap, base * 2**attempt) * (0.5 + random.random() / 2))
    raise AssertionError("unreachable")


def upload_dataset(
    dataset: str | Path,
    dest: str,
    *,
    runs: Iterable[str] | None = None,
    endpoint_url: str | None = None,
    profile: str | None = None,
    retries: int = 4,
    retry_base: float = 0.5,
    retry_cap: float = 30.0,
    fs: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    on_file: Callable[[str, str], None] | None = None,
) -> UploadResult:
    """Copy the complete files of ``dataset`` (all runs, or ``runs``) to ``dest``.

    Blocking (run it in a worker thread from async code).  Returns what was done; raises
    :class:`UploadError` when the destination refuses or stays unreachable.  ``on_file(rel,
    outcome)`` is called after each file (outcome: uploaded, skipped, missing, mismatched).
    """
    root_local = Path(dataset)
    if not root_local.is_dir():
        raise ConfigError(f"{dataset}: no such dataset directory")
    items, problems = plan_upload(root_local, runs)
    result = UploadResult(dest=dest, problems=problems)
    if fs is None:
        fs, root = open_dataset_filesystem(dest, endpoint_url=endpoint_url, profile=profile)
    else:
        root = _split_protocol(dest)[1].rstrip("/")
    run_ok: dict[str, bool] = {}
    for item in items:
        run_ok.setdefault(item.run_id, True)
        rpath = f"{root}/{item.rel}"
        local = root_local / item.rel if item.kind == "data" else None
        if item.kind == "manifest" and not run_ok[item.run_id]:
            continue  # never a manifest whose files are not all there
        try:
            remote = _retrying(
                lambda rp=rpath, it=item: _remote_sha256(fs, rp, it.size),
                f"{dest}/{item.rel}",
                retries,
                retry_base,
                retry_cap,
                sleep,
            )
            if remote == item.sha256:
                outcome = "skipped"
            elif local is not None and not local.is_file():
                outcome = "missing"
            elif local is not None and sha256_file(local) != item.sha256:
                outcome = "mismatched"
            else:
                _retrying(
                    lambda it=item, lp=local, rp=rpath: _put(fs, it, lp, rp),
                    f"{dest}/{item.rel}",
                    retries,
                    retry_base,
                    retry_cap,
                    sleep,
                )
                outcome = "uploaded"
        except _Stop as stop:
            done = len(result.uploaded) + len(result.skipped)
            raise UploadError(
                f"upload to {dest} stopped: {stop} ({done} of {len(items)} files in place; "
                "run the upload again to copy the rest)",
                result,
            ) from stop.__cause__
        {
            "uploaded": result.uploaded,
            "skipped": result.skipped,
            "missing": result.missing,
            "mismatched": result.mismatched,
        }[outcome].append(item.rel)
        if outcome == "uploaded":
            result.bytes += item.size
        if outcome in ("missing", "mismatched"):
            run_ok[item.run_id] = False
        if item.kind == "manifest" and run_ok[item.run_id]:
            result.runs.append(item.run_id)
        if on_file is not None:
            on_file(item.rel, outcome)
    return result


def format_upload_result(result: UploadResult) -> list[str]:
    """Lines for the console after ``res64 upload``."""
    mib = result.bytes / (1 << 20)
    lines = [
        f"{result.dest}: {len(result.uploaded)} files uploaded ({mib:.1f} MiB), "
        f"{len(result.skipped)} already there; {len(result.runs)} runs complete at the destination"
    ]
    for rel in result.missing[:20]:
        lines.append(f"  missing (listed in a manifest, found neither here nor there): {rel}")
    for rel in result.mismatched[:20]:
        lines.append(f"  NOT uploaded, local file differs from its manifest SHA-256: {rel}")
    for p in result.problems[:20]:
        lines.append(f"  {p}")
    return lines
