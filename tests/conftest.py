"""Test-wide safety net and shared fixtures.

Every test runs with ``RES64_LOOPBACK_ONLY=1``: the probe refuses any destination outside
127.0.0.0/8 and ::1 and never asks IP-echo services, so no test can reach a public address.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"

os.environ["RES64_LOOPBACK_ONLY"] = "1"
os.environ.setdefault("RES64_CONFIG_DIR", str(REPO / ".pytest_cache" / "res64-config"))


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"shared corpus not present at {CORPUS}")
    return CORPUS


def res64_cmd() -> list[str]:
    return [sys.executable, "-m", "probe.cli"]


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["RES64_LOOPBACK_ONLY"] = "1"
    env["RES64_CONFIG_DIR"] = str(tmp / "config")
    env.pop("RES64_DEBUG", None)
    return env


@contextlib.contextmanager
def lab_process(workdir: Path, world: str = "demo", bulk_n: int = 0) -> Iterator[dict]:
    """Run ``python -m probe.lab serve`` in its own process; yield its world.json."""
    args = [sys.executable, "-m", "probe.lab", "serve", "--workdir", str(workdir), "--world", world]
    if bulk_n:
        args += ["--bulk-n", str(bulk_n)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            proc.kill()
            raise RuntimeError(f"lab world did not start: {line!r} {proc.stderr.read()[-2000:]}")
        yield json.loads(Path(line.split(" ", 1)[1].strip()).read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def world_flags(w: dict, vantage: dict) -> list[str]:
    """The measure flags that point the probe at a lab world from one vantage."""
    return [
        "--resolver", w["resolver"],
        "--control-resolver", w["control_resolver"],
        "--ca-bundle", w["ca_bundle"],
        "--geoip-overrides", w["overrides_csv"],
        "--source-address", vantage["source_ip"],
        "--no-discover",
        "--vantage-id", "t-" + vantage["name"],
    ]  # fmt: skip
