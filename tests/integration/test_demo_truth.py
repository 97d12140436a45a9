"""The demo world declares its ground truth; the analysis must reproduce it exactly.

Every (vantage country, site): status, mechanism, locus and responsible country — including
no denial for the site that is down everywhere and none for the bot-challenge page.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from probe.demo import measure_world
from probe.lab import demo_world, run_world

analysis_pipeline = pytest.importorskip("analysis.pipeline")


@pytest.fixture(scope="module")
def demo_analysis(tmp_path_factory) -> tuple[pd.DataFrame, list, Path]:
    import trio

    tmp = tmp_path_factory.mktemp("demo")
    state: dict = {}

    async def main() -> None:
        async with run_world(demo_world(), tmp / "world") as world:
            await measure_world(world, tmp / "dataset")
            state["expectations"] = world.expectations()

    trio.run(main)
    res = analysis_pipeline.analyze([str(tmp / "dataset")], tmp / "analysis")
    return res.targets, state["expectations"], tmp


def _none(v):
    return None if v is None or (isinstance(v, float) and v != v) or v is pd.NA else v


def test_analysis_reproduces_the_ground_truth_exactly(demo_analysis):
    targets, expectations, _ = demo_analysis
    got = {
        (r["affected_cc"], r["url"]): (
            r["status"],
            r["mechanism"],
            r["locus"],
            _none(r["responsible_cc"]),
        )
        for r in targets.to_dict("records")
    }
    want = {
        (e.probe_cc, e.url): (e.status, e.mechanism, e.locus, e.responsible_cc)
        for e in expectations
    }
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    assert not wrong, "\n".join(f"{k}: got {g}, want {w}" for k, (g, w) in sorted(wrong.items()))
    assert set(got) == set(want)


def test_no_false_accusations(demo_analysis):
    targets, expectations, _ = demo_analysis
    truth = {(e.probe_cc, e.url): e for e in expectations}
    denied = targets[targets["status"] == "denied"]
    for r in denied.to_dict("records"):
        e = truth[(r["affected_cc"], r["url"])]
        assert e.status == "denied", f"false accusation: {r['affected_cc']} {r['url']}"
        assert r["n_controls_ok"] >= 1
    down = [e for e in expectations if e.site == "defunct-shop"]
    challenge = [e for e in expectations if e.site == "bot-guarded"]
    for e in down + challenge:
        row = targets[(targets["affected_cc"] == e.probe_cc) & (targets["url"] == e.url)]
        assert (row["status"] != "denied").all()
