"""RIPE Atlas traceroute import: the mapping (through ripe.atlas.sagan) and the hops dataset.

Results are built in the test in Atlas' result format; no corpus data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest

from probe.errors import ConfigError, DatasetError
from probe.imports import import_atlas_files
from probe.imports.atlas import AtlasConversion, ProbeInfo, convert, probes_from_json

PROBE_PUBLIC_IP = "198.51.100.99"
PROBE_LAN_IP = "192.168.77.2"


def result(**over: Any) -> dict[str, Any]:
    """A UDP Paris traceroute of probe 4242 to 192.0.2.1."""
    r: dict[str, Any] = {
        "type": "traceroute",
        "msm_id": 5001,
        "prb_id": 4242,
        "fw": 4790,
        "af": 4,
        "proto": "UDP",
        "paris_id": 3,
        "from": PROBE_PUBLIC_IP,
        "src_addr": PROBE_LAN_IP,
        "dst_addr": "192.0.2.1",
        "dst_name": "192.0.2.1",
        "timestamp": 1700000000,
        "endtime": 1700000003,
        "size": 48,
        "result": [
            {
                "hop": 1,
                "result": [
                    {"from": "10.0.0.1", "ttl": 64, "size": 76, "rtt": 1.0},
                    {"from": "10.0.0.1", "ttl": 64, "size": 76, "rtt": 3.0},
                    {"from": "10.0.0.1", "ttl": 64, "size": 76, "rtt": 2.0},
                ],
            },
            {"hop": 2, "result": [{"x": "*"}, {"x": "*"}, {"x": "*"}]},
            {
                "hop": 3,
                "result": [
                    {"from": "203.0.113.5", "ttl": 61, "size": 76, "rtt": 9.0},
                    {"from": "203.0.113.6", "ttl": 61, "size": 76, "rtt": 8.0},
                    {
                        "from": "203.0.113.6",
                        "ttl": 61,
                        "size": 76,
                        "rtt": 10.0,
                        "icmpext": {"version": 2, "rfc4884": 1, "obj": [{"class": 1, "type": 1}]},
                    },
                    {"from": "203.0.113.5", "ttl": 61, "size": 76, "rtt": 99.0, "late": 2},
                ],
            },
            {"hop": 4, "result": [{"from": "203.0.113.9", "ttl": 250, "rtt": 12.0, "err": "N"}]},
            {"hop": 5, "result": [{"from": "192.0.2.1", "ttl": 55, "size": 48, "rtt": 20.5}]},
        ],
    }
    r.update(over)
    return r


def hops_of(raw: object, **kw: Any) -> AtlasConversion:
    return convert(raw, campaign="c", run_id="r", **kw)


def test_one_row_per_ttl_with_majority_responder() -> None:
    c = hops_of(result())
    assert c.refused is None and c.problems == ()
    assert c.parser_hops == 5 and len(c.hops) == 5
    h1, h2, h3, h4, h5 = c.hops
    assert [h.ttl for h in c.hops] == [1, 2, 3, 4, 5]
    assert (h1.hop_ip, h1.rtt_ms, h1.reply_ttl, h1.reply_kind) == (
        "10.0.0.1",
        2.0,
        64,
        "time_exceeded",
    )
    assert (h2.hop_ip, h2.rtt_ms, h2.reply_kind) == (None, None, "none")
    # 203.0.113.6 answered twice (the late packet of .5 does not count), ICMP extension ignored
    assert (h3.hop_ip, h3.rtt_ms) == ("203.0.113.6", 9.0)
    assert h3.extra["responders"] == {"203.0.113.5": 1, "203.0.113.6": 2}
    assert h4.reply_kind == "unreachable"
    assert (h5.hop_ip, h5.reply_kind) == ("192.0.2.1", "unreachable")  # UDP: port unreachable
    assert {h.trace_id for h in c.hops} == {"atlas-5001-4242-1700000000-p3"}
    assert {(h.proto, h.dst_ip, h.vantage_id) for h in c.hops} == {
        ("udp", "192.0.2.1", "atlas-4242")
    }
    assert c.hops[0].started_at.isoformat() == "2023-11-14T22:13:20+00:00"


def test_probe_addresses_are_never_stored() -> None:
    for h in hops_of(result()).hops:
        row = repr(h.as_row())
        assert PROBE_PUBLIC_IP not in row and PROBE_LAN_IP not in row


def test_icmp_and_tcp_reply_kinds() -> None:
    icmp = hops_of(result(proto="ICMP"))
    assert icmp.hops[-1].reply_kind == "echo_reply"
    tcp = result(proto="TCP")
    tcp["result"][-1]["result"][0]["flags"] = "SA"
    tcp["result"].append(
        {"hop": 6, "result": [{"from": "192.0.2.1", "ttl": 55, "rtt": 1.0, "flags": "R"}]}
    )
    kinds = [h.reply_kind for h in hops_of(tcp).hops]
    assert kinds[-2:] == ["synack", "rst"]


def test_country_from_metadata_then_flag_then_zz() -> None:
    meta = {4242: ProbeInfo(4242, "DE", 3320)}
    assert {h.probe_cc for h in hops_of(result(), probes=meta, probe_cc="FR").hops} == {"DE"}
    assert {h.probe_cc for h in hops_of(result(), probe_cc="FR").hops} == {"FR"}
    assert {h.probe_cc for h in hops_of(result()).hops} == {"ZZ"}


def test_probe_metadata_shapes() -> None:
    p = {"id": 7, "country_code": "nl", "asn_v4": 1136}
    for shape in ({"results": [p]}, [p], p, {"probes": {"results": [p]}}):
        assert probes_from_json(shape) == {7: ProbeInfo(7, "NL", 1136)}
    assert probes_from_json({"results": [{"id": 8, "country_code": None}]})[8].cc is None
    assert probes_from_json("nonsense") == {}


def test_other_types_errors_and_malformed() -> None:
    assert hops_of({"type": "dns", "result": {}}).skipped == "dns"
    assert hops_of([1]).refused is not None
    err = result(result=[{"error": "name resolution failed: non-recoverable failure"}])
    del err["dst_addr"]
    c = hops_of(err)
    assert c.refused is not None and "name resolution failed" in c.refused
    bad = result(result="legacy text format")
    c = hops_of(bad)
    assert c.refused is None and c.malformed and c.hops == ()
    weird = result()
    weird["result"][0]["result"][0]["rtt"] = "fast"
    weird["result"].append({"result": [{"x": "*"}]})  # no hop number
    c = hops_of(weird)
    assert c.malformed and len(c.hops) == 5


def _hops(out: Path) -> list[dict[str, Any]]:
    return ds.dataset(out / "hops", format="parquet", partitioning="hive").to_table().to_pylist()


def test_import_files_dump_and_jsonl(tmp_path: Path) -> None:
    dump = {
        "meta_data": {"msm_id": 5001},
        "results": [result(), result(prb_id=17, timestamp=1700000100), {"type": "ping"}],
        "probes": {"results": [{"id": 4242, "country_code": "RU"}]},
    }
    (tmp_path / "dump.json").write_text(json.dumps(dump))
    (tmp_path / "more.jsonl").write_text(json.dumps(result(timestamp=1700009999)) + "\nnot json\n")
    s = import_atlas_files(
        [tmp_path / "dump.json", tmp_path / "more.jsonl"], tmp_path / "out", probe_cc="ua"
    )
    assert (s.traces, s.hops, s.skipped["ping"], s.refused) == (3, 15, 1, 1)
    rows = _hops(tmp_path / "out")
    assert len(rows) == 15
    by_trace = {r["trace_id"]: r["probe_cc"] for r in rows}
    assert by_trace == {
        "atlas-5001-4242-1700000000-p3": "RU",
        "atlas-5001-17-1700000100-p3": "UA",
        "atlas-5001-4242-1700009999-p3": "UA",  # no metadata in that file: --probe-cc
    }
    again = import_atlas_files([tmp_path / "dump.json"], tmp_path / "out")
    assert (again.traces, again.duplicates) == (0, 2)


def test_import_with_probe_meta_file(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(json.dumps(result()) + "\n")
    (tmp_path / "probes.json").write_text(
        json.dumps({"results": [{"id": 4242, "country_code": "KZ"}]})
    )
    s = import_atlas_files(
        [tmp_path / "r.jsonl"], tmp_path / "out", probe_meta=tmp_path / "probes.json"
    )
    assert s.traces == 1
    assert {r["probe_cc"] for r in _hops(tmp_path / "out")} == {"KZ"}


def test_user_errors(tmp_path: Path) -> None:
    f = tmp_path / "r.jsonl"
    f.write_text(json.dumps(result()) + "\n")
    with pytest.raises(ConfigError, match="two-letter"):
        import_atlas_files([f], tmp_path / "out", probe_cc="Ukraine")
    with pytest.raises(DatasetError, match="probe-metadata"):
        import_atlas_files([f], tmp_path / "out", probe_meta=tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DatasetError, match="no probe metadata"):
        import_atlas_files([f], tmp_path / "out", probe_meta=tmp_path / "empty.json")
