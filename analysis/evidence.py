"""Evidence tables (SPEC §6): targets and country pairs, pure pandas/numpy.

``targets`` — one row per (affected_cc, url) measured by ordinary vantages (dedicated control
records serve as controls but get no rows):

- ``status``: ``denied`` when every measurement of the URL from that country is denied and at
  least one denial is confirmed or likely; ``accessible`` when all are accessible; ``down``
  when all are down; otherwise ``inconclusive`` (mixed results keep their counts and are
  never resolved either way);
- ``mechanism``, ``locus``, ``responsible_cc``: for denied targets the most frequent
  combination among the denied measurements (ties: more confirmed denials, then the more
  specific mechanism of :data:`analysis.rules.MECHANISM_PRIORITY`, then a known locus); for
  down targets the most frequent mechanism with locus ``none``; for inconclusive targets the
  most frequent mechanism of the measurements that were not accessible with locus
  ``unknown``; ``none``/``none`` for accessible targets; the responsible country only for
  denied targets;
- ``confidence``: the best among the denied measurements (confirmed > likely > possible) of a
  denied target, null otherwise;
- ``n_controls_ok`` / ``control_ccs``: the distinct accessible controls (and their countries)
  within the window of the target's measurements that were not accessible — the ones whose
  verdict needed controls; zero / empty for accessible targets;
- ``example_measurement_ids``: up to five, denied ones first, then other failures.

``pairs`` — one row per (affected_cc, responsible_cc) with at least one denied target;
``responsible_cc`` null is its own *unattributed* row.

- ``targets_denied``: denied targets attributed to the pair;
- ``targets_tested``: when ``responsible_cc`` is another country, the targets measured from
  ``affected_cc`` whose operator country (``operator_cc``, else the most frequent
  ``server_cc``) is ``responsible_cc``, together with the pair's denied targets (a block
  localised elsewhere may deny sites operated anywhere); when it is the affected country
  itself or null, every target measured from ``affected_cc``;
- ``share_denied`` = targets_denied / targets_tested;
- ``mechanisms``, ``categories``, ``confidence``: JSON objects of counts over the denied
  targets; ``measurements``: denied measurements of those targets, with their distinct
  ``vantages`` and ``asns``, ``first_seen`` and ``last_seen``.

:func:`write_csv` neutralises spreadsheet formulas: titles and URLs come from hostile
networks, so every text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return gets a leading ``'``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from analysis import rules as R
from analysis.controls import Controls
from analysis.report_safety import FORMULA_PREFIXES

TARGET_COLUMNS: tuple[str, ...] = (
    "affected_cc",
    "url",
    "status",
    "mechanism",
    "locus",
    "responsible_cc",
    "confidence",
    "n_measurements",
    "n_denied",
    "n_controls_ok",
    "control_ccs",
    "first_seen",
    "last_seen",
    "example_measurement_ids",
    # extras
    "n_accessible",
    "n_down",
    "n_inconclusive",
    "n_confirmed",
    "n_likely",
    "n_possible",
    "category_code",
    "operator_cc",
    "server_cc",
)
PAIR_COLUMNS: tuple[str, ...] = (
    "affected_cc",
    "responsible_cc",
    "targets_denied",
    "targets_tested",
    "share_denied",
    "mechanisms",
    "categories",
    "measurements",
    "vantages",
    "asns",
    "first_seen",
    "last_seen",
    "confidence",
    # extras
    "loci",
    "example_urls",
)
EXAMPLES = 5
_FORMULA_START = FORMULA_PREFIXES  # one definition, shared with the report writers


# -- helpers ----------------------------------------------------------------------------


def _factor(series: pd.Series) -> tuple[np.ndarray, list[Any]]:
    """Codes (-1 = null) and categories of any column (categoricals without copying: their
    codes keep pandas' small signed type, so arithmetic on them widens first)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.codes.to_numpy(), list(series.cat.categories)
    codes, uniq = pd.factorize(series, use_na_sentinel=True)
    return codes.astype(np.int32), list(uniq)


def epoch_us(series: pd.Series) -> np.ndarray:
    """Microseconds since the epoch (UTC) of a timestamp column."""
    naive = pd.to_datetime(series, utc=True).dt.tz_localize(None)
    return naive.to_numpy("datetime64[us]").view(np.int64)


def _codes_in(series: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    codes, cats = _factor(series)
    if [str(c) for c in cats] == list(vocab):  # already coded in ``vocab`` (verdict columns)
        return codes
    index = pd.Index(list(vocab), dtype=object)
    remap = np.append(index.get_indexer([str(c) for c in cats]), -1).astype(np.int32)
    return remap[codes]


def _counts_json(values: Sequence[Any]) -> str:
    c = Counter("unknown" if v is None else str(v) for v in values)
    return json.dumps(dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))


def _group_order(codes: np.ndarray) -> np.ndarray:
    """A stable order of ``codes`` (non-negative ints): LSD radix passes of 16 bits."""
    codes = np.asarray(codes, np.int64)
    order = np.arange(len(codes))
    top = int(codes.max()) if len(codes) else 0
    shift = 0
    while True:
        digit = ((codes[order] >> shift) & 0xFFFF).astype(np.uint16)
        order = order[np.argsort(digit, kind="stable")]
        shift += 16
        if top >> shift == 0:
            return order


def _mode_codes(
    groups: np.ndarray, values: np.ndarray, n_groups: int, rank: np.ndarray
) -> np.ndarray:
    """Per group the most frequent value (ties: the lowest ``rank[value]``); -1 when empty."""
    out = np.full(n_groups, -1, np.int64)
    if not len(groups):
        return out
    df = pd.DataFrame({"g": groups, "v": values})
    cnt = df.value_counts(sort=False).reset_index(name="n")
    cnt["r"] = rank[cnt["v"].to_numpy()]
    cnt = cnt.sort_values(["g", "n", "r"], ascending=[True, False, True])
    first = cnt.drop_duplicates("g")
    out[first["g"].to_numpy()] = first["v"].to_numpy()
    return out


# -- targets ----------------------------------------------------------------------------


def targets(verdicts: pd.DataFrame, controls: Controls | None = None) -> pd.DataFrame:
    """The targets table (see the module docstring) from attributed verdicts.

    ``controls`` are the window indices the verdicts were computed with (rows aligned with
    ``verdicts``); without them ``n_controls_ok`` and ``control_ccs`` are empty.
    """
    v = verdicts
    cc_codes, cc_names = _factor(v["probe_cc"])
    url_codes, url_names = _factor(v["url"])
    # the rows of ordinary vantages with a country and a URL (a mask: cheaper than indices)
    keep = (cc_codes >= 0) & (url_codes >= 0)
    if "is_control" in v:
        keep &= ~v["is_control"].fillna(False).to_numpy(bool)
    rows = np.flatnonzero(keep)
    cc_codes, url_codes = cc_codes[keep], url_codes[keep]
    if not len(rows):
        return _empty_targets()
    g = url_codes.astype(np.int64) * (len(cc_names) + 1) + cc_codes
    tid, uniq = pd.factorize(g)
    del g
    tid = tid.astype(np.int32)
    nt = len(uniq)
    first_row = _first_index(tid, nt)
    t_cc, t_url = cc_codes[first_row], url_codes[first_row]
    del first_row

    status = _codes_in(v["status"], R.STATUSES)[keep]
    conf = _codes_in(v["confidence"], R.CONFIDENCES)[keep]
    mech = _codes_in(v["mechanism"], R.MECHANISMS)[keep]
    locus = _codes_in(v["locus"], R.LOCI)[keep] if "locus" in v else np.full(len(rows), -1)
    resp_codes, resp_names = (
        _factor(v["responsible_cc"]) if "responsible_cc" in v else (np.full(len(v), -1), [])
    )
    resp = resp_codes[keep]
    if controls is not None and len(controls.t) == len(v):
        t = controls.t[keep]
    else:
        t = epoch_us(v["started_at"])[keep]

    def counts(codes: np.ndarray, vocab: Sequence[str]) -> dict[str, np.ndarray]:
        """Rows per target and code (one pass; codes -1, none, are left out)."""
        k = len(vocab) + 1
        table = np.bincount(tid.astype(np.int64) * k + codes + 1, minlength=nt * k)
        table = table.reshape(nt, k)
        return {name: table[:, i + 1] for i, name in enumerate(vocab)}

    n_meas = np.bincount(tid, minlength=nt)
    n_st = counts(status, R.STATUSES)
    n_conf = counts(conf, R.CONFIDENCES)
    # rows grouped by target (then denied, other, accessible; then row order): every target
    # has rows, so the groups are the targets 0 .. nt-1 in order
    prio = np.where(
        status == R.STATUSES.index("denied"),
        0,
        np.where(status == R.STATUSES.index("accessible"), 2, 1),
    ).astype(np.int64)
    order = _group_order(tid.astype(np.int64) * 3 + prio)
    del prio
    head = np.flatnonzero(np.r_[True, np.diff(tid[order]) != 0])
    t_sorted = t[order]
    first = np.minimum.reduceat(t_sorted, head)
    last = np.maximum.reduceat(t_sorted, head)
    del t_sorted

    t_status = np.full(nt, R.STATUSES.index("inconclusive"), np.int64)
    strong = (n_conf["confirmed"] + n_conf["likely"]) > 0
    t_status[(n_st["denied"] == n_meas) & strong] = R.STATUSES.index("denied")
    t_status[n_st["accessible"] == n_meas] = R.STATUSES.index("accessible")
    t_status[n_st["down"] == n_meas] = R.STATUSES.index("down")

    mech_rank = np.array([R.MECHANISM_PRIORITY.index(m) for m in R.MECHANISMS], np.int64)
    t_mech = np.full(nt, R.MECHANISMS.index("none"), np.int64)
    t_locus = np.full(nt, R.LOCI.index("none"), np.int64)
    t_resp = np.full(nt, -1, np.int64)
    t_conf = np.full(nt, -1, np.int64)

    # denied targets: the most frequent (mechanism, locus, responsible) among denials
    d = np.flatnonzero(status == R.STATUSES.index("denied"))
    d_target = t_status[tid[d]] == R.STATUSES.index("denied")
    d = d[d_target]
    if len(d):
        combo = pd.DataFrame(
            {
                "g": tid[d],
                "m": mech[d],
                "l": locus[d],
                "r": resp[d],
                "c": (conf[d] == R.CONFIDENCES.index("confirmed")).astype(np.int64),
            }
        )
        agg = combo.groupby(["g", "m", "l", "r"], sort=False).agg(n=("c", "size"), c=("c", "sum"))
        agg = agg.reset_index()
        agg["mr"] = mech_rank[agg["m"].to_numpy()]
        agg["lu"] = (agg["l"] == R.LOCI.index("unknown")).astype(int)
        agg = agg.sort_values(["g", "n", "c", "mr", "lu", "r"], ascending=[1, 0, 0, 1, 1, 1])
        best = agg.drop_duplicates("g")
        gi = best["g"].to_numpy()
        t_mech[gi] = best["m"].to_numpy()
        t_locus[gi] = best["l"].to_numpy()
        t_resp[gi] = best["r"].to_numpy()
        cd = pd.DataFrame({"g": tid[d], "c": conf[d]})
        cbest = cd[cd["c"] >= 0].groupby("g")["c"].min()
        t_conf[cbest.index.to_numpy()] = cbest.to_numpy()

    # down and inconclusive targets: the most frequent mechanism of what was not accessible
    other = np.flatnonzero(
        (status != R.STATUSES.index("accessible"))
        & ~np.isin(t_status[tid], [R.STATUSES.index("denied"), R.STATUSES.index("accessible")])
    )
    if len(other):
        mode = _mode_codes(tid[other], np.maximum(mech[other], 0), nt, mech_rank)
        has = mode >= 0
        t_mech[has] = mode[has]
    t_locus[t_status == R.STATUSES.index("inconclusive")] = R.LOCI.index("unknown")
    t_locus[np.isin(t_status, [R.STATUSES.index("down"), R.STATUSES.index("accessible")])] = (
        R.LOCI.index("none")
    )

    # controls consulted: windows of the measurements that were not accessible
    n_ctrl = np.zeros(nt, np.int64)
    ctrl_offsets, ctrl_codes = np.zeros(nt + 1, np.int64), np.zeros(0, np.int64)
    ctrl_vocab = _control_vocab(controls, cc_names)
    if controls is not None:
        need = np.flatnonzero(status != R.STATUSES.index("accessible"))
        by_name = np.array(sorted(range(len(ctrl_vocab)), key=ctrl_vocab.__getitem__), np.int64)
        n_ctrl, ctrl_offsets, ctrl_codes = controls.target_control_sets(
            rows[need], tid[need], nt, code_order=by_name
        )

    examples = _examples(v, rows, tid, nt, order, head)
    del order, head
    cat_codes, cat_names = _factor(v["category_code"]) if "category_code" in v else (None, [])
    t_cat = _target_mode(tid, cat_codes[keep], nt) if cat_codes is not None else np.full(nt, -1)
    op_codes, op_names = _factor(v["operator_cc"]) if "operator_cc" in v else (None, [])
    t_op = _target_mode(tid, op_codes[keep], nt) if op_codes is not None else np.full(nt, -1)
    sv_codes, sv_names = _factor(v["server_cc"]) if "server_cc" in v else (None, [])
    t_sv = _target_mode(tid, sv_codes[keep], nt) if sv_codes is not None else np.full(nt, -1)

    def names(codes: np.ndarray, vocab: Sequence[Any]) -> pd.Categorical:
        return pd.Categorical.from_codes(codes.astype(np.int32), categories=[str(x) for x in vocab])

    denied_t = t_status == R.STATUSES.index("denied")
    t_resp = np.where(denied_t, t_resp, -1)
    t_conf = np.where(denied_t, t_conf, -1)
    out = pd.DataFrame(
        {
            "affected_cc": [str(cc_names[c]) for c in t_cc.tolist()],
            "url": [str(url_names[u]) for u in t_url.tolist()],
            "status": names(t_status, R.STATUSES).astype(object),
            "mechanism": names(t_mech, R.MECHANISMS).astype(object),
            "locus": names(t_locus, R.LOCI).astype(object),
            "responsible_cc": names(t_resp, resp_names).astype(object),
            "confidence": names(t_conf, R.CONFIDENCES).astype(object),
            "n_measurements": n_meas,
            "n_denied": n_st["denied"],
            "n_controls_ok": n_ctrl,
            "control_ccs": _list_column(ctrl_offsets, ctrl_codes, ctrl_vocab),
            "first_seen": pd.to_datetime(first, unit="us", utc=True),
            "last_seen": pd.to_datetime(last, unit="us", utc=True),
            "example_measurement_ids": examples,
            "n_accessible": n_st["accessible"],
            "n_down": n_st["down"],
            "n_inconclusive": n_st["inconclusive"],
            "n_confirmed": n_conf["confirmed"],
            "n_likely": n_conf["likely"],
            "n_possible": n_conf["possible"],
            "category_code": names(t_cat, cat_names).astype(object),
            "operator_cc": names(t_op, op_names).astype(object),
            "server_cc": names(t_sv, sv_names).astype(object),
        }
    )
    for col in ("status", "mechanism", "locus", "responsible_cc", "confidence"):
        out[col] = _objects(out[col])
    return out.sort_values(["affected_cc", "url"], kind="stable").reset_index(drop=True)


def _control_vocab(controls: Controls | None, cc_names: Sequence[Any]) -> list[str]:
    names = getattr(controls, "cc_names", None)
    return [str(x) for x in (names if names is not None else cc_names)]


def _first_index(tid: np.ndarray, nt: int) -> np.ndarray:
    """Row of the first occurrence of each code (codes appear in order of first occurrence)."""
    grow = np.flatnonzero(np.diff(np.maximum.accumulate(tid), prepend=-1) > 0)
    out = np.zeros(nt, np.int64)
    out[tid[grow]] = grow
    return out


def _target_mode(tid: np.ndarray, codes: np.ndarray, nt: int) -> np.ndarray:
    """Per target the most frequent non-null code (ties: the lowest code); -1 when none."""
    nc = int(codes.max()) + 1 if len(codes) else 0
    if nc <= 0:  # no code at all
        return np.full(nt, -1)
    if nt * nc > 50_000_000:
        valid = codes >= 0
        return _mode_codes(tid[valid], codes[valid], nt, np.arange(nc))
    # column 0 counts the nulls (code -1) and is left out
    counts = np.bincount(tid.astype(np.int64) * (nc + 1) + codes + 1, minlength=nt * (nc + 1))
    counts = counts.reshape(nt, nc + 1)[:, 1:]
    best = counts.argmax(axis=1)
    return np.where(counts[np.arange(nt), best] > 0, best, -1)


def take_strings(chunked: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``chunked.take(rows)`` chunk by chunk (a take across many chunks is slow)."""
    rows = np.asarray(rows, np.int64)
    if chunked.num_chunks <= 1:
        return chunked.combine_chunks().take(pa.array(rows))
    bounds = np.cumsum([0, *(len(c) for c in chunked.chunks)])
    order = np.argsort(rows)  # equal rows are the same string: any order of ties
    srt = rows[order]
    which = np.searchsorted(bounds, srt, "right") - 1
    parts = []
    for k in np.unique(which).tolist():
        sel = srt[which == k] - bounds[k]
        parts.append(chunked.chunk(k).take(pa.array(sel)))
    taken = pa.concat_arrays(parts) if parts else pa.array([], chunked.type)
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    return taken.take(pa.array(inverse))


def _list_column(
    offsets: np.ndarray, codes: np.ndarray, vocab: Sequence[str]
) -> pd.arrays.ArrowExtensionArray:
    """A column of string lists (Arrow-backed): row ``k`` holds the names of
    ``codes[offsets[k]:offsets[k + 1]]``, in that order."""
    values = pa.array(list(vocab), pa.string()).take(pa.array(codes))
    offsets32 = pa.array(np.asarray(offsets, np.int32))
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(offsets32, values))


def _examples(
    v: pd.DataFrame,
    rows: np.ndarray,
    tid: np.ndarray,
    nt: int,
    order: np.ndarray,
    head: np.ndarray,
) -> pd.arrays.ArrowExtensionArray:
    """Up to :data:`EXAMPLES` measurement ids per target: denied first, then failures.

    ``order`` groups the rows by target, denied first, then failures, then accessible ones,
    each in row order; ``head`` is where each target's group starts."""
    rank = np.arange(len(order)) - np.repeat(head, np.diff(np.r_[head, len(order)]))
    pick = order[rank < EXAMPLES]  # grouped by target, targets in increasing order
    offsets = np.zeros(nt + 1, np.int32)
    np.cumsum(np.bincount(tid[pick], minlength=nt), out=offsets[1:])
    arr = v["measurement_id"].array
    if isinstance(arr, pd.arrays.ArrowExtensionArray):
        ids = take_strings(arr._pa_array, rows[pick])
    else:
        ids = pa.array(v["measurement_id"].astype(str).to_numpy(dtype=object)[rows[pick]])
    if not pa.types.is_string(ids.type):
        ids = ids.cast(pa.string())
    return pd.arrays.ArrowExtensionArray(pa.ListArray.from_arrays(pa.array(offsets), ids))


def _objects(s: pd.Series) -> pd.Series:
    """An object column with ``None`` (not NaN) for missing values."""
    values = s.astype(object).to_numpy()
    return pd.Series(
        [None if v is None or (isinstance(v, float) and v != v) else v for v in values],
        index=s.index,
        dtype=object,
    )


def _empty_targets() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in TARGET_COLUMNS})


# -- pairs ------------------------------------------------------------------------------


def pairs(targets_df: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """The country-pair table (see the module docstring)."""
    t = targets_df
    if not len(t):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS})
    denied = t[t["status"] == "denied"]
    if not len(denied):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_COLUMNS})
    owner = t["operator_cc"].where(t["operator_cc"].notna(), t["server_cc"])
    tested_by_cc = t.groupby("affected_cc").size().to_dict()
    owner_counts = (
        pd.DataFrame({"a": t["affected_cc"], "o": owner}).dropna().value_counts().to_dict()
    )
    # denied measurements of denied targets
    dm = _denied_measurements(verdicts, denied)
    dm_by_aff = {k: g for k, g in dm.groupby("_aff", sort=False)}
    rows = []
    keyed = denied.assign(
        _resp=denied["responsible_cc"].where(denied["responsible_cc"].notna(), None)
    )
    for (aff, resp), grp in keyed.groupby(["affected_cc", "_resp"], dropna=False, sort=True):
        resp_v = None if resp is None or (isinstance(resp, float) and resp != resp) else str(resp)
        n_denied = len(grp)
        if resp_v is not None and resp_v != aff:
            own = grp["operator_cc"].where(grp["operator_cc"].notna(), grp["server_cc"]) == resp_v
            tested = int(owner_counts.get((aff, resp_v), 0)) + int((~own).sum())
        else:
            tested = int(tested_by_cc.get(aff, 0))
        tested = max(tested, n_denied)
        m = dm_by_aff.get(aff, dm.iloc[:0])
        m = m[m["_url"].isin(set(grp["url"]))]
        rows.append(
            {
                "affected_cc": aff,
                "responsible_cc": resp_v,
                "targets_denied": n_denied,
                "targets_tested": tested,
                "share_denied": n_denied / tested if tested else None,
                "mechanisms": _counts_json(grp["mechanism"].tolist()),
                "categories": _counts_json(
                    [c if isinstance(c, str) else None for c in grp["category_code"].tolist()]
                ),
                "measurements": len(m),
                "vantages": int(m["_vantage"].nunique()) if len(m) else 0,
                "asns": int(m["_asn"].nunique()) if len(m) else 0,
                "first_seen": m["_t"].min() if len(m) else grp["first_seen"].min(),
                "last_seen": m["_t"].max() if len(m) else grp["last_seen"].max(),
                "confidence": _counts_json(grp["confidence"].tolist()),
                "loci": _counts_json(grp["locus"].tolist()),
                "example_urls": sorted(grp["url"].astype(str).tolist())[:EXAMPLES],
            }
        )
    out = pd.DataFrame(rows, columns=list(PAIR_COLUMNS))
    out["responsible_cc"] = _objects(out["responsible_cc"])
    out["_unattr"] = out["responsible_cc"].isna()
    out = out.sort_values(
        ["affected_cc", "_unattr", "targets_denied", "responsible_cc"],
        ascending=[True, True, False, True],
        kind="stable",
    )
    return out.drop(columns="_unattr").reset_index(drop=True)


def _denied_measurements(verdicts: pd.DataFrame, denied_targets: pd.DataFrame) -> pd.DataFrame:
    """The denied measurements (ordinary vantages) of the denied targets."""
    v = verdicts
    mask = (v["status"] == "denied").to_numpy(bool).copy()
    if "is_control" in v:
        mask &= ~v["is_control"].fillna(False).to_numpy(bool)
    idx = np.flatnonzero(mask)
    cc_codes, cc_names = _factor(v["probe_cc"])
    url_codes, url_names = _factor(v["url"])
    ncc = len(cc_names) + 1
    row_key = url_codes[idx].astype(np.int64) * ncc + cc_codes[idx]
    t_cc = pd.Index([str(c) for c in cc_names]).get_indexer(
        denied_targets["affected_cc"].astype(str)
    )
    t_url = pd.Index([str(u) for u in url_names]).get_indexer(denied_targets["url"].astype(str))
    wanted = t_url.astype(np.int64) * ncc + t_cc
    idx = idx[np.isin(row_key, wanted[(t_cc >= 0) & (t_url >= 0)])]
    # only the columns used below (taking every column of the verdicts costs seconds)
    sub = v[[c for c in ("vantage_id", "probe_asn", "started_at") if c in v]].iloc[idx]
    return pd.DataFrame(
        {
            "_aff": np.array([str(c) for c in cc_names], dtype=object)[cc_codes[idx]],
            "_url": np.array([str(u) for u in url_names], dtype=object)[url_codes[idx]],
            "_vantage": sub["vantage_id"].astype(object).to_numpy()
            if "vantage_id" in sub
            else None,
            "_asn": sub["probe_asn"].astype(object).to_numpy() if "probe_asn" in sub else None,
            "_t": pd.to_datetime(sub["started_at"], utc=True).array,  # no Python objects
        }
    )


# -- output helpers ---------------------------------------------------------------------


def neutralise(value: Any) -> Any:
    """A text cell that a spreadsheet would not evaluate (prefix ``'`` before a formula)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def _json_lists(values: list[Any] | pa.Array) -> pa.Array:
    """JSON arrays of strings for a column of lists (vectorised; same text as json.dumps)."""
    if isinstance(values, pa.Array):
        arr = values
        if not pa.types.is_string(arr.type.value_type):
            arr = arr.cast(pa.list_(pa.string()))
    else:
        lists = [None if v is None or (isinstance(v, float) and v != v) else [str(x) for x in v]
                 for v in values]  # fmt: skip
        arr = pa.array(lists, pa.list_(pa.string()))
    flat = arr.flatten()
    # few distinct values (country codes) are checked and escaped once each
    sample = flat.slice(0, 4096)
    few = len(flat) > 0 and 4 * len(pc.unique(sample)) <= len(sample)
    enc = pc.dictionary_encode(flat) if few else None
    distinct = enc.dictionary if enc is not None and 2 * len(enc.dictionary) <= len(flat) else flat
    if len(distinct) and pc.any(pc.match_substring_regex(distinct, r"[\x00-\x1f\x7f]")).as_py():
        return pa.array(
            [None if x is None else json.dumps(x, ensure_ascii=False) for x in arr.to_pylist()],
            pa.string(),
        )
    escaped = pc.replace_substring(distinct, "\\", "\\\\")
    escaped = pc.replace_substring(escaped, '"', '\\"')
    flat = escaped.take(enc.indices) if enc is not None and distinct is not flat else escaped
    offsets = arr.offsets
    if len(offsets) and offsets[0].as_py():
        offsets = pc.subtract(offsets, offsets[0])
    arr = pa.ListArray.from_arrays(offsets, flat, mask=arr.is_null())
    joined = pc.binary_join(arr, '", "')
    quoted = pc.binary_join_element_wise('["', joined, '"]', "")
    empty = pc.equal(pc.list_value_length(arr), 0)
    return pc.if_else(empty, pa.scalar("[]"), quoted)


def _text_column(values: pa.Array) -> pa.Array:
    """Neutralise the formula-looking cells of a string column (vectorised)."""
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    risky = pc.match_substring_regex(values, r"^[=+\-@\t\r]")
    fixed = pc.binary_join_element_wise(pa.scalar("'"), values, "")
    return pc.if_else(pc.fill_null(risky, False), fixed, values)


def _string_cells(s: pd.Series) -> pa.Array | None:
    """The cells of a column of strings and missing values as an Arrow string array, without
    a Python object per cell; ``None`` when the column holds anything else (the generic path
    then decides: lists, dicts, ``pd.NA`` and other objects are written as before)."""
    dtype = s.dtype
    if (
        isinstance(dtype, pd.StringDtype)
        and dtype.storage == "pyarrow"
        and dtype.na_value is not pd.NA  # a missing "string[pyarrow]" cell is written "<NA>"
    ):
        arr = s.array._pa_array.combine_chunks()
    elif isinstance(dtype, pd.CategoricalDtype):
        if not all(type(x) is str for x in dtype.categories):
            return None
        arr = pa.array(s.array).cast(pa.string())
    elif pd.api.types.is_object_dtype(dtype):
        values = s.to_numpy()
        try:
            arr = pa.array(values, from_pandas=True)
        except (pa.ArrowException, TypeError, ValueError):
            return None
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return None
        # only str, None and NaN (pd.NA is written as "<NA>", str subclasses as str(x))
        if not set(map(type, values)) <= {str, type(None), float}:
            return None
    else:
        return None
    return arr.cast(pa.string())


def csv_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table of CSV cells: lists as JSON, timestamps ISO 8601 (UTC),
    formula-looking text neutralised."""
    cols: dict[str, pa.Array] = {}
    for col in df.columns:
        s = df[col]
        name = neutralise(str(col))
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            ts = pa.array(pd.to_datetime(s, utc=True))
            cols[name] = pc.strftime(ts, format="%Y-%m-%dT%H:%M:%SZ")
        elif isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_list(s.dtype.pyarrow_dtype):
            cols[name] = _text_column(_json_lists(s.array._pa_array.combine_chunks()))
        elif pd.api.types.is_bool_dtype(s.dtype) or pd.api.types.is_numeric_dtype(s.dtype):
            cols[name] = pa.array(s)
        elif (fast := _string_cells(s)) is not None:
            cols[name] = _text_column(fast)
        else:
            objs = s.astype(object).tolist()
            if any(isinstance(x, list | tuple | np.ndarray) for x in objs):
                cols[name] = _text_column(_json_lists(objs))
                continue
            if any(isinstance(x, dict) for x in objs):
                objs = [json.dumps(x) if isinstance(x, dict) else x for x in objs]
            objs = [
                None if x is None or (isinstance(x, float) and x != x) else str(x) for x in objs
            ]
            cols[name] = _text_column(pa.array(objs, pa.string()))
    return pa.table(cols)


def csv_frame(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` ready for CSV as a pandas frame (see :func:`csv_table`)."""
    return csv_table(df).to_pandas()


#: Tables with more rows than this are converted to CSV cells by two threads, half each.
CSV_SPLIT_ROWS = 50_000


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """Write ``df`` as UTF-8 CSV with formulas neutralised (see :func:`csv_table`).

    Every cell depends on its own row only, so a large table is converted in two halves
    at once (Arrow does the work, without the interpreter lock); the text is the same.
    """
    table = None
    if len(df) > CSV_SPLIT_ROWS:
        half = len(df) // 2
        with ThreadPoolExecutor(1, thread_name_prefix="res64-csv") as pool:
            second = pool.submit(csv_table, df.iloc[half:])
            first = csv_table(df.iloc[:half])
            rest = second.result()
        if rest.schema.names == first.schema.names:
            try:
                table = pa.concat_tables([first, rest.cast(first.schema)])
            except (pa.ArrowException, ValueError):
                table = None  # a column typed differently in the halves: convert it whole
    pacsv.write_csv(table if table is not None else csv_table(df), str(path))


def pairs_for_display(pairs_df: pd.DataFrame) -> list[dict[str, str]]:
    """Short, readable rows of the pairs table (for the console)."""
    out = []
    for r in pairs_df.to_dict("records"):
        resp = r.get("responsible_cc")
        resp = "unattributed" if resp is None or resp != resp else str(resp)
        share = r.get("share_denied")
        first, last = r.get("first_seen"), r.get("last_seen")

        def day(x: Any) -> str:
            return pd.Timestamp(x).strftime("%Y-%m-%d") if x is not None and x == x else "?"

        out.append(
            {
                "affected": str(r.get("affected_cc")),
                "responsible": resp,
                "denied/tested": f"{r.get('targets_denied')}/{r.get('targets_tested')}",
                "share": f"{share:.0%}" if isinstance(share, float) else "",
                "mechanisms": _short_counts(r.get("mechanisms")),
                "confidence": _short_counts(r.get("confidence")),
                "measurements": str(r.get("measurements")),
                "period": f"{day(first)}..{day(last)}",
            }
        )
    return out


def _short_counts(value: Any) -> str:
    try:
        d = json.loads(value) if isinstance(value, str) else dict(value or {})
    except (TypeError, ValueError):
        return str(value)
    return ", ".join(f"{k} {v}" for k, v in d.items())


__all__ = [
    "PAIR_COLUMNS",
    "TARGET_COLUMNS",
    "csv_frame",
    "neutralise",
    "pairs",
    "pairs_for_display",
    "targets",
    "write_csv",
]
