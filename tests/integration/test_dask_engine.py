"""``analyze(..., engine="dask")`` gives exactly the pandas engine's results.

A :class:`distributed.LocalCluster` of two worker processes on 127.0.0.1 (no dashboard) runs
the analysis of the demo dataset and of a one-million-row synthetic dataset; targets, pairs,
verdicts and the counts and inputs of ``analysis.json`` must equal the pandas engine's.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from analysis.pipeline import analyze
from probe.errors import ConfigError

distributed = pytest.importorskip("distributed")
engine_dask = pytest.importorskip("analysis.engine_dask")

TARGET_KEYS = ["affected_cc", "url"]
PAIR_KEYS = ["affected_cc", "responsible_cc"]


@pytest.fixture(scope="module")
def scheduler() -> str:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def demo_dataset(tmp_path_factory) -> Path:
    import trio

    from probe.demo import measure_world
    from probe.lab import demo_world, run_world

    tmp = tmp_path_factory.mktemp("dask-demo")

    async def main() -> None:
        async with run_world(demo_world(), tmp / "world") as world:
            await measure_world(world, tmp / "dataset")

    trio.run(main)
    return tmp / "dataset"


@pytest.fixture(scope="session")
def synth_1m(tmp_path_factory) -> Path:
    from bench.synth import SynthConfig, ensure_dataset

    root = tmp_path_factory.mktemp("dask-synth") / "synth-1000000"
    ensure_dataset(root, SynthConfig(rows=1_000_000))
    return root


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.sort_values(keys, kind="stable", na_position="last").reset_index(drop=True)


def _assert_same(a_dir: Path, b_dir: Path) -> None:
    for name, keys in (("targets", TARGET_KEYS), ("pairs", PAIR_KEYS)):
        a = _sorted(pd.read_parquet(a_dir / f"{name}.parquet"), keys)
        b = _sorted(pd.read_parquet(b_dir / f"{name}.parquet"), keys)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        assert (a_dir / f"{name}.csv").read_bytes() == (b_dir / f"{name}.csv").read_bytes()
    va = pd.read_parquet(a_dir / "verdicts.parquet")
    vb = pd.read_parquet(b_dir / "verdicts.parquet")
    pd.testing.assert_frame_equal(va, vb, check_exact=True, check_categorical=False)
    ja = json.loads((a_dir / "analysis.json").read_text())
    jb = json.loads((b_dir / "analysis.json").read_text())
    assert ja["counts"] == jb["counts"]
    assert ja["inputs"] == jb["inputs"]
    assert all(len(i["sha256"]) == 64 for i in jb["inputs"])
    for key in ("vantages", "period", "window", "rules_version", "fingerprints_version"):
        assert ja[key] == jb[key], key
    assert jb["engine"] == "dask"


def test_demo_dataset_same_results_on_dask(demo_dataset, scheduler, tmp_path):
    a = analyze([demo_dataset], tmp_path / "pandas")
    b = analyze([demo_dataset], tmp_path / "dask", engine="dask", scheduler=scheduler)
    assert a.counts["status"].get("denied", 0) > 0  # the demo has denials to compare
    assert a.counts == b.counts
    _assert_same(tmp_path / "pandas", tmp_path / "dask")


def test_one_million_rows_same_results_on_dask(synth_1m, scheduler, tmp_path):
    a = analyze([synth_1m], tmp_path / "pandas")
    b = analyze([synth_1m], tmp_path / "dask", engine="dask", scheduler=scheduler)
    assert a.counts["measurements"] == 1_000_000
    assert a.counts == b.counts
    assert len(a.pairs) > 0
    _assert_same(tmp_path / "pandas", tmp_path / "dask")


def test_engine_options_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="--scheduler needs --engine dask"):
        analyze([tmp_path], tmp_path / "out", scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match="unknown engine"):
        analyze([tmp_path], tmp_path / "out", engine="spark")


def test_subset_columns_keeps_dns_answers_and_fetches_by_global_row():
    from analysis.load import TableFetcher, columns_from_table

    table = pa.table(
        {
            "measurement_id": ["m0", "m1", "m2", "m3"],
            "started_at": pa.array([0, 1, 2, 3], pa.timestamp("us", tz="UTC")),
            "url": ["https://a.example/", "https://b.example/x", None, "https://A.example/y"],
            "dns_answers": [["1.1.1.1"], ["2.2.2.2", "3.3.3.3"], [], ["4.4.4.4"]],
            "http_title": ["t0", "t1", "t2", "t3"],
        }
    )
    cols = columns_from_table(table)
    parts = engine_dask.hostname_parts(cols.cats["url"], 2)
    assert parts[0] == parts[3]  # same hostname, whatever the case and path
    rows = np.array([1, 3])
    sub = engine_dask.subset_columns(cols, rows)
    names = sub.dns_answers.names()
    answers = [
        [names[c] for c in sub.dns_answers.codes[sub.dns_offsets[i] : sub.dns_offsets[i + 1]]]
        for i in range(sub.n)
    ]
    assert answers == [["2.2.2.2", "3.3.3.3"], ["4.4.4.4"]]
    assert sub.measurement_id.to_pylist() == ["m1", "m3"]
    assert sub.cats["url"].decode() == ["https://b.example/x", "https://A.example/y"]
    fetched = engine_dask.SubsetFetcher(TableFetcher(table), rows).fetch(
        np.array([1, 0]), ["http_title"]
    )
    assert fetched.column("http_title").to_pylist() == ["t3", "t1"]
