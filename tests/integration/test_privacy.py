"""Privacy: no output of a demo run names a vantage's own address.

Every file the demo writes — dataset, run manifests, analysis, every report format — is scanned
for the vantages' source addresses (what the probe knows about itself).  Compressed formats
(Parquet pages, XLSX, DOCX) are checked after decompression.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from probe.demo import run_demo
from probe.lab import demo_world

pytest.importorskip("analysis.pipeline")


def _texts(path: Path) -> list[bytes]:
    """The file's bytes, plus its decompressed content for containers."""
    data = path.read_bytes()
    out = [data]
    if path.suffix == ".parquet":
        t = pq.read_table(path)
        out.append(str(t.to_pylist()).encode())
    elif path.suffix in (".xlsx", ".docx"):
        with zipfile.ZipFile(path) as z:
            out += [z.read(n) for n in z.namelist()]
    return out


def test_demo_outputs_never_contain_vantage_addresses(tmp_path: Path):
    out = tmp_path / "demo"
    run_demo(out, quiet=True, console=Console(file=open("/dev/null", "w")))  # noqa: SIM115
    addresses = [v.source_ip.encode() for v in demo_world().vantages]
    files = [f for f in out.rglob("*") if f.is_file()]
    kinds = {f.suffix for f in files}
    assert {".parquet", ".json", ".csv", ".html", ".md", ".xlsx", ".docx", ".png"} <= kinds
    for f in files:
        for blob in _texts(f):
            for a in addresses:
                assert a not in blob, f"{a.decode()} found in {f.relative_to(out)}"
