"""``analyze()`` on datasets written to disk in the real hive layout.

Small datasets are written with pyarrow exactly as the store lays them out
(``measurements/campaign=<c>/probe_cc=<CC>/date=<day>/part-*.parquet``, the file schema
without the partition columns, the ``res64.*`` schema metadata).  The outputs are read back;
``analysis.json`` must name every input with its true SHA-256; broken inputs must fail with a
one-line :class:`probe.errors.DatasetError` naming the file, or be listed with ``skip_bad``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis.load import _Deferred, read_dataset
from analysis.pipeline import OUTPUTS, analyze
from analysis.rules import RULES_VERSION
from probe._version import __version__
from probe.errors import DatasetError
from probe.records import Measurement
from probe.schema import MEASUREMENTS, SCHEMA_VERSION, file_schema

T0 = datetime(2025, 5, 1, 8, 0, tzinfo=UTC)
CLOUDFRONT = (
    b"<html><head><title>ERROR: The request could not be satisfied</title></head><body>"
    b"<p>The Amazon CloudFront distribution is configured to block access from your "
    b"country.</p></body></html>"
)
HOME = b"<html><head><title>Docs home</title></head><body>Welcome to the docs</body></html>"


def _m(i: int, cc: str, url: str, minutes: float, body: bytes = HOME, status: int = 200,
       **kw) -> Measurement:  # fmt: skip
    return Measurement(
        measurement_id=f"it{i:06d}",
        schema_version=SCHEMA_VERSION,
        software_version="test",
        campaign="it",
        run_id="run1",
        started_at=T0 + timedelta(minutes=minutes),
        vantage_id=f"vant-{cc.lower()}",
        probe_cc=cc,
        probe_asn={"US": 7018, "DE": 3320, "IR": 58224}.get(cc, 64500),
        probe_as_name=f"AS of {cc}",
        url=url,
        hostname=url.split("/")[2],
        category_code=kw.pop("category_code", "COMT"),
        operator_cc="US",
        dns_answers=("52.85.1.1",),
        dns_control_answers=("52.85.1.1",),
        server_ip="52.85.1.1",
        server_port=443,
        server_cc="US",
        server_asn=16509,
        tls_cert_valid=True,
        http_status=status,
        http_headers=json.dumps([["content-type", "text/html"]]),
        http_title=None,
        http_body_length=len(body),
        http_body_sha256=hashlib.sha256(body).hexdigest(),
        http_body_prefix=body,
        http_verified=True,
        **kw,
    )


def rows() -> list[Measurement]:
    url = "https://docs.example/"
    out = []
    i = 0
    for day in range(2):
        for cc in ("US", "DE"):
            out.append(_m(i, cc, url, day * 1440 + 10))
            i += 1
        for k in range(2):
            out.append(_m(i, "IR", url, day * 1440 + 20 + k * 60, CLOUDFRONT, 403))
            i += 1
    out.append(_m(i, "IR", "https://fine.example/", 30, category_code="=SUM(A1)"))
    out.append(_m(i + 1, "US", "https://fine.example/", 31, category_code="=SUM(A1)"))
    return out


def write_dataset(root: Path, measurements: list[Measurement]) -> list[Path]:
    """Write ``measurements`` under ``root`` in the hive layout; return the files."""
    table = pa.Table.from_pylist([m.as_row() for m in measurements], schema=MEASUREMENTS)
    files = []
    keys = sorted({(m.campaign, m.probe_cc, m.started_at.date().isoformat()) for m in measurements})
    for campaign, cc, day in keys:
        mask = [
            (m.campaign, m.probe_cc, m.started_at.date().isoformat()) == (campaign, cc, day)
            for m in measurements
        ]
        part = table.filter(pa.array(mask)).drop_columns(["campaign", "probe_cc"])
        part = part.cast(file_schema("measurements"))
        d = root / "measurements" / f"campaign={campaign}" / f"probe_cc={cc}" / f"date={day}"
        d.mkdir(parents=True, exist_ok=True)
        path = d / "part-run1-0.parquet"
        pq.write_table(part, path, compression="zstd")
        files.append(path)
    return files


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def dataset(tmp_path) -> tuple[Path, list[Path]]:
    root = tmp_path / "data"
    return root, write_dataset(root, rows())


def test_analyze_writes_every_output(dataset, tmp_path):
    root, files = dataset
    out = tmp_path / "analysis"
    res = analyze([root], out, command=["res64", "analyze", str(root)])
    for name in OUTPUTS:
        assert (out / name).is_file(), name
        assert res.paths[name] == out / name
    assert not list(out.glob(".*tmp*"))  # no temporary file left behind

    verdicts = pq.read_table(out / "verdicts.parquet")
    assert verdicts.num_rows == len(rows())
    assert verdicts.schema.metadata[b"res64.table"] == b"verdicts"
    assert {"measurement_id", "rule_id", "status", "locus", "responsible_cc"} <= set(
        verdicts.column_names
    )
    targets = pq.read_table(out / "targets.parquet").to_pandas()
    pairs = pq.read_table(out / "pairs.parquet").to_pandas()
    t = targets.set_index(["affected_cc", "url"]).loc[("IR", "https://docs.example/")]
    assert (t["status"], t["mechanism"], t["locus"], t["responsible_cc"], t["confidence"]) == (
        "denied",
        "http_geoblock",
        "server",
        "US",
        "confirmed",
    )
    assert list(t["control_ccs"]) == ["DE", "US"]
    assert len(pairs) == 1 and pairs.loc[0, "affected_cc"] == "IR"
    assert res.pairs.loc[0, "targets_denied"] == 1

    meta = json.loads((out / "analysis.json").read_text())
    assert meta["rules_version"] == RULES_VERSION
    assert isinstance(meta["fingerprints_version"], int)
    assert meta["software_version"] == __version__
    assert meta["window"]["seconds"] == 86400
    assert meta["command"] == ["res64", "analyze", str(root)]
    assert datetime.fromisoformat(meta["generated_at"].replace("Z", "+00:00"))
    assert meta["period"]["first"].startswith("2025-05-01T08:10")
    assert meta["counts"]["measurements"] == len(rows())
    assert meta["counts"]["status"]["denied"] == 4
    assert meta["counts"]["confidence"] == {"confirmed": 4}
    assert meta["vantages"]["count"] == 3
    assert meta["vantages"]["countries"] == {"DE": 1, "IR": 1, "US": 1}
    assert meta["vantages"]["asns"] == {"3320": 1, "58224": 1, "7018": 1}
    assert "52.85.1.1" not in json.dumps(meta)  # never an address
    assert meta["skipped"] == []
    # every input, with its true size and SHA-256
    got = {f["path"]: (f["size"], f["sha256"]) for f in meta["inputs"]}
    assert got == {str(p): (p.stat().st_size, sha(p)) for p in files}
    for name, info in meta["outputs"].items():
        assert info["sha256"] == sha(out / name)


def test_csv_outputs_are_neutralised(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "a"
    analyze([root], out)
    rows_ = list(csv.DictReader(io.StringIO((out / "targets.csv").read_text(encoding="utf-8"))))
    cats = {r["category_code"] for r in rows_}
    assert "'=SUM(A1)" in cats and "=SUM(A1)" not in cats
    pairs = list(csv.DictReader(io.StringIO((out / "pairs.csv").read_text(encoding="utf-8"))))
    assert pairs[0]["responsible_cc"] == "US"
    assert json.loads(pairs[0]["mechanisms"]) == {"http_geoblock": 1}


def test_input_forms_agree(dataset, tmp_path):
    root, files = dataset
    whole = analyze([root], tmp_path / "a").counts["measurements"]
    assert analyze([root / "measurements"], tmp_path / "b").counts["measurements"] == whole
    assert analyze([str(f) for f in files], tmp_path / "c").counts["measurements"] == whole
    # two roots: a second dataset adds its rows
    other = tmp_path / "other"
    write_dataset(other, [_m(900, "FR", "https://docs.example/", 15)])
    assert analyze([root, other], tmp_path / "d").counts["measurements"] == whole + 1


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_file_names_the_file(dataset, tmp_path):
    root, files = dataset
    _truncate(files[0])
    with pytest.raises(DatasetError) as exc:
        analyze([root], tmp_path / "a")
    msg = str(exc.value)
    assert str(files[0]) in msg and "\n" not in msg


def test_foreign_parquet_is_rejected(dataset, tmp_path):
    root, files = dataset
    foreign = files[0].parent / "part-foreign.parquet"
    pq.write_table(pa.table({"a": [1, 2]}), foreign)
    with pytest.raises(DatasetError, match=r"part-foreign\.parquet: not a res64 measurements file"):
        analyze([root], tmp_path / "a")


def test_other_res64_table_is_rejected(dataset, tmp_path):
    root, files = dataset
    hops = files[0].parent / "part-hops.parquet"
    schema = pa.schema([("trace_id", pa.string())], metadata={
        b"res64.table": b"hops", b"res64.schema_version": b"1"})  # fmt: skip
    pq.write_table(pa.table({"trace_id": ["x"]}, schema=schema), hops)
    with pytest.raises(DatasetError, match="'hops', not 'measurements'"):
        analyze([root], tmp_path / "a")


def test_newer_schema_version_is_rejected(dataset, tmp_path):
    root, files = dataset
    t = pq.read_table(files[0])
    meta = dict(t.schema.metadata)
    meta[b"res64.schema_version"] = str(SCHEMA_VERSION + 1).encode()
    pq.write_table(t.replace_schema_metadata(meta), files[0])
    with pytest.raises(DatasetError, match="newer than this software"):
        analyze([root], tmp_path / "a")


def test_skip_bad_lists_the_skipped_files(dataset, tmp_path):
    root, files = dataset
    lost = pq.read_metadata(files[0]).num_rows
    _truncate(files[0])
    foreign = files[1].parent / "part-foreign.parquet"
    pq.write_table(pa.table({"a": [1]}), foreign)
    out = tmp_path / "a"
    res = analyze([root], out, skip_bad=True)
    meta = json.loads((out / "analysis.json").read_text())
    skipped = {s["path"] for s in meta["skipped"]}
    assert skipped == {str(files[0]), str(foreign)}
    assert all(s["error"] for s in meta["skipped"])
    assert {s["path"] for s in res.skipped} == skipped
    assert str(files[0]) not in {f["path"] for f in meta["inputs"]}
    assert meta["counts"]["measurements"] == len(rows()) - lost


def test_missing_input_and_empty_directory(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        analyze([tmp_path / "nope"], tmp_path / "a")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no measurement files"):
        analyze([tmp_path / "empty"], tmp_path / "a")


def test_all_inputs_bad_is_an_error_even_with_skip_bad(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"a": [1]}), d / "x.parquet")
    with pytest.raises(DatasetError, match="no readable measurement files"):
        analyze([d], tmp_path / "a", skip_bad=True)


def test_window_and_progress(dataset, tmp_path):
    root, _ = dataset
    seen: list[str] = []
    res = analyze(
        [root], tmp_path / "a", window=timedelta(minutes=1), progress=lambda s, d, t: seen.append(s)
    )
    # with a one-minute window the IR measurements have no control left
    assert res.counts["status"].get("denied", 0) == 0
    assert {"read", "write"} <= set(seen)
    assert res.meta["window"] == {"seconds": 60.0, "text": "1m"}


def test_wrong_column_type_is_rejected(dataset, tmp_path):
    root, files = dataset
    t = pq.read_table(files[0])
    i = t.schema.get_field_index("url")
    t = t.set_column(i, "url", pa.array(range(t.num_rows), pa.int64()))
    pq.write_table(t, files[0])
    with pytest.raises(DatasetError, match="column 'url' has type int64"):
        analyze([root], tmp_path / "a")


def test_hidden_and_temporary_files_are_ignored(dataset, tmp_path):
    root, files = dataset
    (files[0].parent / "_SUCCESS").write_text("")
    (files[0].parent / ".part-x.parquet").write_bytes(b"partial")
    (files[0].parent / "part-y.parquet.tmp").write_bytes(b"partial")
    res = analyze([root], tmp_path / "a")
    assert res.counts["files"] == len(files)


def _columns_equal(a, b) -> None:
    """Two :class:`analysis.load.Columns` hold the same values (codes may differ)."""
    assert a.n == b.n
    assert a.measurement_id.to_pylist() == b.measurement_id.to_pylist()
    for name in ("started_at", "is_control", "probe_asn", "server_asn", "http_status",
                 "tls_cert_valid", "http_verified", "dns_offsets"):  # fmt: skip
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert sorted(a.cats) == sorted(b.cats)
    for name in a.cats:
        assert a.cats[name].decode() == b.cats[name].decode(), name
    assert a.dns_answers.decode() == b.dns_answers.decode()


def test_deferred_pass_reads_the_same_columns(dataset):
    """The pass-through columns read in the background equal those of a single pass."""
    root, _files = dataset
    one = read_dataset([root])
    two = read_dataset([root], defer_pass=True)
    assert two.columns.pending is not None
    assert "vantage_id" not in two.columns.cats  # not joined in yet
    _columns_equal(one.columns, two.columns.complete())
    assert two.columns.pending is None
    assert two.columns.cats["vantage_id"].decode()[0] in {"vant-us", "vant-de", "vant-ir"}


def test_deferred_pass_notices_a_changed_file(dataset):
    """A file that changed after the first pass is an error naming it, not mixed rows."""
    root, files = dataset
    ds = read_dataset([root])
    stale = replace(ds.files[1], mtime_ns=ds.files[1].mtime_ns - 1)
    reader = _Deferred([ds.files[0], stale], ds.files[0].rows + stale.rows)
    reader.start()
    with pytest.raises(DatasetError, match=f"{files[1].name}: the file changed"):
        reader()
    # the same through Columns.complete(), for a file rewritten with other rows
    cols = read_dataset([root], defer_pass=True)
    cols.columns.pending.join()
    assert cols.columns.complete().n == sum(f.rows for f in cols.files)
    shorter = _Deferred([replace(ds.files[0], rows=ds.files[0].rows + 1)], 1)
    shorter.start()
    with pytest.raises(DatasetError, match="the file changed"):
        shorter()


def test_lists_written_by_another_tool_are_read(dataset):
    """A file whose list element is named ``item`` (older writers, other tools) and one
    without the optional columns read like the store's own files."""
    root, files = dataset
    before = read_dataset([root]).columns
    table = pq.read_table(files[0])
    schema = pa.schema(
        [
            f.with_type(pa.list_(pa.string())) if pa.types.is_list(f.type) else f
            for f in table.schema
        ],
        metadata=table.schema.metadata,
    )  # lists of "item" (pyarrow's default name)
    table = table.cast(schema)
    pq.write_table(table, files[0], compression="zstd", use_compliant_nested_type=False)
    md = pq.read_metadata(files[0])
    assert "dns_answers.list.item" in {md.schema.column(i).path for i in range(md.num_columns)}
    _columns_equal(before, read_dataset([root], defer_pass=True).columns.complete())


@pytest.mark.parametrize("defer", [False, True])
def test_a_batch_of_files_reads_as_its_files_one_by_one(dataset, defer):
    """Files scanned together (one batch: several countries, one file without optional
    columns, one broken file skipped) give the values of each file read on its own."""
    from analysis.columns import SCAN_COLUMNS, _Builder
    from analysis.load import scan_file

    root, files = dataset
    older = pq.read_table(files[1]).drop_columns(["server_cc", "category_code", "http_verified"])
    pq.write_table(older, files[1], compression="zstd")
    files[3].write_bytes(files[3].read_bytes()[:300])  # truncated
    ds = read_dataset([root], skip_bad=True, defer_pass=defer)
    assert [s["path"] for s in ds.skipped] == [str(files[3])]
    good = [f for f in files if f != files[3]]
    builder = _Builder(64, SCAN_COLUMNS)
    for f in good:
        builder.add(scan_file(f).piece)
    _columns_equal(builder.finish(), ds.columns.complete())
    assert ds.columns.cats["server_cc"].decode().count(None) == pq.read_metadata(files[1]).num_rows


def test_hashing_follows_the_background_pass_and_notices_a_change(dataset, monkeypatch):
    """With the pass deferred, the files are hashed after it (not during the first pass);
    a file that changes before it is hashed is an error naming it."""
    import os

    import analysis.load as load

    root, files = dataset
    calls: list[str] = []
    begin = load._Hasher.begin
    monkeypatch.setattr(load._Hasher, "begin", lambda self: calls.append("begin"))
    ds = read_dataset([root], defer_pass=True, defer_hash=True)
    assert calls == []  # nothing hashed while the first pass ran
    ds.columns.complete()
    assert calls == ["begin"]  # the background pass started it when done
    st = files[0].stat()
    os.utime(files[0], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    monkeypatch.setattr(load._Hasher, "begin", begin)
    with pytest.raises(DatasetError, match=f"{files[0].name}: the file changed"):
        ds.wait_hashes()


def test_an_error_stops_the_background_reader(dataset, tmp_path, monkeypatch):
    """An analysis that fails leaves no reading thread behind (one still inside Arrow at
    interpreter exit would abort the process)."""
    import threading

    import analysis.load as load
    import analysis.pipeline as pipeline

    root, _files = dataset
    gate = threading.Event()  # holds the background reader until it is told to stop
    unchanged, cancel = load._unchanged, load._Deferred.cancel

    def held(info):
        gate.wait()
        return unchanged(info)

    def cancelled(self):
        gate.set()
        cancel(self)

    def boom(cols, **kwargs):
        assert cols.pending is not None and cols.pending.is_alive()
        raise RuntimeError("verdicts failed")

    monkeypatch.setattr(load, "_unchanged", held)
    monkeypatch.setattr(load._Deferred, "cancel", cancelled)
    monkeypatch.setattr(pipeline, "compute_verdicts", boom)
    try:
        with pytest.raises(RuntimeError, match="verdicts failed"):
            analyze([root], tmp_path / "a")
        alive = [t.name for t in threading.enumerate() if t.name in {"res64-pass", "res64-sha256"}]
        assert alive == []
    finally:
        gate.set()
