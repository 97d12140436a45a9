"""Run probe code inside a namespace of the lab world: ``python -m tests.lab.entry CMD ...``.

Prints one JSON document on stdout.  Commands:

* ``trace OUT OVERRIDES CC PPS PROTO PORT IP...`` — :func:`probe.tracing.run_trace`, then the
  hop lists read back from the written dataset;
* ``localise OVERRIDES CC KIND IP PORT NAME CONTROL`` — :func:`probe.tracing.localise_exchange`;
* ``blackhole OVERRIDES CC IP PORT`` — a trace and :func:`probe.steps.trace.locate_blackhole`;
* ``watch IP PORT NAME`` — a TLS handshake inside :func:`probe.tracing.ttl_watch`.
"""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import pyarrow.dataset as ds
import trio

from probe.config import Vantage
from probe.geo import open_geo
from probe.steps import trace as T
from probe.tracing import localise_exchange, make_specs, run_trace, trace_many, ttl_watch
from probe.transports.raw import RawTransport


def _hop_lists(out: Path) -> dict[str, list[list[object]]]:
    tbl = ds.dataset(out / "hops", format="parquet", partitioning="hive").to_table()
    rows = sorted(tbl.to_pylist(), key=lambda r: (r["dst_ip"], r["ttl"]))
    lists: dict[str, list[list[object]]] = {}
    for r in rows:
        lists.setdefault(r["dst_ip"], []).append(
            [r["ttl"], r["hop_ip"], r["reply_kind"], r["hop_cc"], r["hop_asn"]]
        )
    return lists


async def trace(argv: list[str]) -> dict[str, object]:
    out, overrides, cc, pps, proto, port, *ips = argv
    geo = open_geo(overrides=overrides, embedded=False)
    t0 = trio.current_time()
    summary = await run_trace(
        ips, out=Path(out), port=int(port), proto=proto, pps=int(pps),
        vantage=Vantage("v-lab", probe_cc=cc), geo=geo, campaign="lab",
    )  # fmt: skip
    wall = trio.current_time() - t0
    return {
        "wall_s": wall,
        "packets_sent": summary.packets_sent,
        "traces": summary.traces,
        "reached": summary.reached,
        "hops": _hop_lists(Path(out)),
    }


async def localise(argv: list[str]) -> dict[str, object]:
    overrides, cc, kind, ip, port, name, control = argv
    geo = open_geo(overrides=overrides, embedded=False)
    test, ctl, loc = await localise_exchange(
        ip, int(port), name=name, control_name=control, kind=kind, wait=1.0, pause=0.02
    )
    loc = loc.with_geo(geo.lookup)
    return {
        "rule_id": loc.rule_id, "kind": loc.kind, "hop_ttl": loc.hop_ttl, "hop_ip": loc.hop_ip,
        "hop_cc": loc.hop_cc, "hop_asn": loc.hop_asn, "at_endpoint": loc.at_endpoint,
        "locus": loc.locus(cc), "endpoint_ttl": loc.endpoint_ttl,
        "test": [[o.ttl, o.kind, o.ip, o.reply_ttl] for o in test],
        "control": [[o.ttl, o.kind, o.ip, o.reply_ttl] for o in ctl],
    }  # fmt: skip


async def blackhole(argv: list[str]) -> dict[str, object]:
    overrides, cc, ip, port = argv
    geo = open_geo(overrides=overrides, embedded=False)
    async with RawTransport() as tr:
        specs = make_specs([(ip, int(port))], proto="tcp", source_for=tr.source_for)
        (st,) = await trace_many(specs, tr, pps=100)
    loc = T.locate_blackhole([T.Obs(t, r.kind, r.src, r.reply_ttl) for t, r in st.replies.items()])
    loc = loc.with_geo(geo.lookup)
    return {"rule_id": loc.rule_id, "hop_ip": loc.hop_ip, "hop_cc": loc.hop_cc,
            "hop_ttl": loc.hop_ttl, "locus": loc.locus(cc), "reached": st.reached}  # fmt: skip


async def watch(argv: list[str]) -> dict[str, object]:
    ip, port, name = argv
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    failure = None
    async with ttl_watch(ip, int(port)) as w:
        try:
            stream = await trio.open_tcp_stream(ip, int(port))
            w.bind(stream.socket.getsockname()[1])
            tls = trio.SSLStream(stream, ctx, server_hostname=name)
            with trio.fail_after(5):
                await tls.do_handshake()
                await tls.send_all(f"GET / HTTP/1.1\r\nHost: {name}\r\n\r\n".encode())
                await tls.receive_some(4096)
            await tls.aclose()
        except (OSError, trio.BrokenResourceError, trio.TooSlowError, ssl.SSLError) as exc:
            failure = type(exc).__name__
    return {
        "available": w.available, "synack_ttl": w.synack_ttl, "rst_ttl": w.rst_ttl,
        "data_ttls": w.data_ttls, "inconsistent": w.inconsistent, "failure": failure,
    }  # fmt: skip


COMMANDS = {"trace": trace, "localise": localise, "blackhole": blackhole, "watch": watch}


def main() -> None:
    cmd, *argv = sys.argv[1:]
    result = trio.run(COMMANDS[cmd], argv)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
