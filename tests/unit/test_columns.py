"""Column building (analysis.columns): dictionary merging across pieces, code widths."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from analysis.columns import _Builder, _piece


def _table(urls: list[str | None], t0: int) -> pa.Table:
    n = len(urls)
    return pa.table(
        {
            "measurement_id": pa.array([f"m{t0 + i}" for i in range(n)]),
            "started_at": pa.array(np.arange(t0, t0 + n), pa.timestamp("us", tz="UTC")),
            "url": pa.array(urls, pa.string()).dictionary_encode(),
        }
    )


def test_codes_widen_when_a_dictionary_outgrows_int16():
    """More than 32,767 distinct strings: the codes built so far stay right when the
    merger widens its array, and every row decodes to its own string."""
    first = [f"https://a{i}.example/" for i in range(20_000)] + [None]
    second = [f"https://b{i}.example/" for i in range(25_000)] + first[:5]
    builder = _Builder(10)  # tiny capacity: the arrays grow too
    builder.add(_piece(_table(first, 0), {}, "one"))
    builder.add(_piece(_table(second, len(first)), {}, "two"))
    cols = builder.finish()
    url = cols.cats["url"]
    assert len(url.values) == 45_000
    assert url.codes.dtype == np.int32
    assert url.decode() == first + second


def test_small_dictionaries_keep_small_codes():
    urls = ["https://x.example/", None, "https://y.example/"] * 10
    builder = _Builder(4)
    builder.add(_piece(_table(urls, 0), {"probe_cc": "DE"}, "one"))
    builder.add(_piece(_table(urls[::-1], 100), {"probe_cc": "IR"}, "two"))
    cols = builder.finish()
    assert cols.cats["url"].codes.dtype == np.int8
    assert cols.cats["url"].decode() == urls + urls[::-1]
    assert cols.cats["probe_cc"].decode() == ["DE"] * 30 + ["IR"] * 30
