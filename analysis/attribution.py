"""Locus and responsible country of each verdict (SPEC §5), pure pandas/numpy.

Only denied measurements are attributed.  The locus comes from the policy of the rule that
classified the measurement (:mod:`analysis.rules`):

- ``server`` (geoblock pages, 451, geo-redirects; error responses over TLS validated for the
  name): the responsible country is the target's ``operator_cc``, else the ``server_cc`` of
  the address measured;
- ``local`` (national/ISP block pages, DNS manipulation, invalid certificates): ``probe_cc``;
- ``transit``: the country where the block was localised — a national block page naming
  another country, or a localisation from the routing analysis;
- ``unknown`` (resets, timeouts, error responses without validated TLS): no responsible
  country.  It is reported as *unattributed* and never guessed.

Accessible and down measurements get locus ``none``, inconclusive ones ``unknown``; none of
them has a responsible country.  An unknown country (``ZZ``) is never responsible.

The seam for the routing analysis: :func:`attribute` takes ``localisations`` with columns
``measurement_id, locus, hop_cc, hop_asn, rule_id`` (:data:`LOCALISATION_COLUMNS`).  A row
there overrides the ``unknown`` locus of a denied measurement: ``transit`` makes ``hop_cc``
responsible, ``local`` the vantage's country, ``server`` the operator's (else the server's).
An optional ``mechanism`` column (e.g. ``route_blackhole``) replaces the mechanism too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from analysis import rules as R

LOCALISATION_COLUMNS: tuple[str, ...] = ("measurement_id", "locus", "hop_cc", "hop_asn", "rule_id")
REQUIRED_COLUMNS: tuple[str, ...] = (
    "measurement_id",
    "status",
    "rule_id",
    "probe_cc",
    "operator_cc",
    "server_cc",
)
UNKNOWN_CC = "ZZ"


def _codes(series: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    """Codes of ``series`` values in ``vocab`` (-1 for nulls and values not in it)."""
    index = pd.Index(list(vocab), dtype=object)
    if isinstance(series.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in series.cat.categories]
        remap = np.append(index.get_indexer(cats), -1).astype(np.int32)
        return remap[series.cat.codes.to_numpy()]
    values = series.astype(object).where(series.notna(), None).to_numpy()
    return index.get_indexer(values).astype(np.int32)


def _codes_at(series: pd.Series, vocab: Sequence[str], rows: np.ndarray) -> np.ndarray:
    """:func:`_codes` of the given rows only."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        index = pd.Index(list(vocab), dtype=object)
        cats = [str(c) for c in series.cat.categories]
        remap = np.append(index.get_indexer(cats), -1).astype(np.int32)
        return remap[series.cat.codes.to_numpy()[rows]]
    return _codes(series.iloc[rows], vocab)


def _countries(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        values = series.cat.categories
    else:
        values = series.dropna().unique()
    return [str(v).strip().upper() for v in values if str(v).strip()]


def _upper(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.cat.rename_categories([str(c).strip().upper() for c in series.cat.categories])
    return series.where(series.isna(), series.astype(str).str.strip().str.upper())


def _bool(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame.columns:
        return np.zeros(len(frame), bool)
    return frame[name].fillna(False).to_numpy(dtype=bool)


def _positions(ids: pd.Series, wanted: pd.Series) -> np.ndarray:
    """For each of ``ids`` its row in ``wanted`` (-1 when absent), without Python strings."""
    arr = ids.array
    values = (
        arr._pa_array
        if isinstance(arr, pd.arrays.ArrowExtensionArray)
        else pa.array(ids.astype(str).to_numpy(dtype=object))
    )
    value_set = pa.array(wanted.astype(str).to_numpy(dtype=object), pa.string())
    found = pc.index_in(values.cast(pa.string()), value_set=value_set)
    if isinstance(found, pa.ChunkedArray):
        found = found.combine_chunks()
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def attribute(verdicts: pd.DataFrame, localisations: pd.DataFrame | None = None) -> pd.DataFrame:
    """``verdicts`` with ``locus``, ``responsible_cc`` and ``locus_rule_id`` (a new frame)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in verdicts.columns]
    if missing:
        raise ValueError(f"verdicts lack column(s) {', '.join(missing)}")
    out = verdicts.copy(deep=False)
    n = len(out)
    probe = _upper(out["probe_cc"])
    operator = _upper(out["operator_cc"])
    server = _upper(out["server_cc"])
    fp_cc = _upper(out["fingerprint_cc"]) if "fingerprint_cc" in out.columns else None
    loc = None
    if localisations is not None and len(localisations):
        lmiss = [
            c for c in ("measurement_id", "locus", "hop_cc", "rule_id") if c not in localisations
        ]
        if lmiss:
            raise ValueError(f"localisations lack column(s) {', '.join(lmiss)}")
        loc = localisations.drop_duplicates("measurement_id", keep="first")
    vocab_set: dict[str, None] = {}
    for s in (probe, operator, server, fp_cc):
        if s is not None:
            vocab_set.update(dict.fromkeys(_countries(s)))
    if loc is not None:
        vocab_set.update(dict.fromkeys(_countries(_upper(loc["hop_cc"]))))
    vocab_set.pop(UNKNOWN_CC, None)
    vocab = sorted(vocab_set)
    status = _codes(out["status"].astype("category"), R.STATUSES)
    locus = np.full(n, R.LOCI.index("unknown"), np.int8)
    resp = np.full(n, -1, np.int32)
    why = np.full(n, LOCUS_RULES.index("locus.inconclusive"), np.int16)
    settled = np.isin(status, [R.STATUSES.index("accessible"), R.STATUSES.index("down")])
    locus[settled] = R.LOCI.index("none")
    why[settled] = LOCUS_RULES.index("locus.none")
    denied = status == R.STATUSES.index("denied")

    # only the denied rows get a locus and a country: everything below is about them
    d = np.flatnonzero(denied)
    probe_c = _codes_at(probe, vocab, d)
    oper_c = _codes_at(operator, vocab, d)
    serv_c = _codes_at(server, vocab, d)
    fp_c = _codes_at(fp_cc, vocab, d) if fp_cc is not None else np.full(len(d), -1, np.int32)
    server_resp = np.where(oper_c >= 0, oper_c, serv_c)
    rule = _codes_at(out["rule_id"].astype("category"), R.RULE_IDS, d)
    policy_of_rule = np.array([R.LOCUS_POLICIES.index(r.locus) for r in R.RULES] + [0], np.int8)
    policy = policy_of_rule[rule]  # rule -1 -> policy 'none'
    validated = (_bool(out, "http_verified") & _bool(out, "tls_cert_valid"))[d]

    def assign(mask: np.ndarray, locus_name: str, rcodes: np.ndarray | None, rule_id: str) -> None:
        rows = d[mask]
        locus[rows] = R.LOCI.index(locus_name)
        if rcodes is not None:
            resp[rows] = rcodes[mask]
        why[rows] = LOCUS_RULES.index(rule_id)

    p = {name: policy == R.LOCUS_POLICIES.index(name) for name in R.LOCUS_POLICIES}
    assign(p["none"] | p["unknown"], "unknown", None, "locus.unknown")
    assign(p["server"], "server", server_resp, "locus.server")
    assign(p["local"], "local", probe_c, "locus.local")
    assign(p["tls"] & validated, "server", server_resp, "locus.tls.validated")
    assign(p["tls"] & ~validated, "unknown", None, "locus.tls.unvalidated")
    named_other = (fp_c >= 0) & (fp_c != probe_c)
    assign(p["blockpage"] & ~named_other, "local", probe_c, "locus.blockpage.local")
    assign(p["blockpage"] & named_other, "transit", fp_c, "locus.blockpage.named_country")
    assign(p["weak_blockpage"] & ~named_other, "local", probe_c, "locus.weak_blockpage.local")
    assign(p["weak_blockpage"] & named_other, "unknown", None, "locus.weak_blockpage.other")

    extra: dict[str, object] = {}
    rule_names = list(LOCUS_RULES)
    if loc is not None:
        pos = _positions(out["measurement_id"], loc["measurement_id"])
        take = np.flatnonzero(denied & (locus == R.LOCI.index("unknown")) & (pos >= 0))
        lrow = pos[take]
        l_locus = loc["locus"].astype(object).to_numpy()[lrow]
        l_hop = _codes(_upper(loc["hop_cc"]), vocab)[lrow]
        l_rule = loc["rule_id"].astype(object).to_numpy()[lrow]
        applied = np.zeros(n, bool)
        at = np.searchsorted(d, take)  # the denied rows' places in the per-denial arrays
        for r, k, lc, hop, rid in zip(
            take.tolist(), at.tolist(), l_locus, l_hop.tolist(), l_rule, strict=True
        ):
            if lc == "transit" and hop >= 0:
                locus[r], resp[r] = R.LOCI.index("transit"), hop
            elif lc == "local":
                locus[r], resp[r] = R.LOCI.index("local"), probe_c[k]
            elif lc == "server":
                locus[r], resp[r] = R.LOCI.index("server"), server_resp[k]
            else:
                continue  # no country for a transit block: stays unknown, never guessed
            name = str(rid) if rid is not None else "localisation"
            if name not in rule_names:
                rule_names.append(name)
            why[r] = rule_names.index(name)
            applied[r] = True
        rows = np.flatnonzero(applied)
        if "hop_asn" in loc.columns:
            asn = pd.to_numeric(loc["hop_asn"], errors="coerce").to_numpy(dtype=float)
            values = np.full(n, np.nan)
            values[rows] = asn[pos[rows]]
            extra["hop_asn"] = pd.array(values, dtype="Int64")
        if "mechanism" in loc.columns and len(rows):
            l_mech = loc["mechanism"].astype(object).to_numpy()[pos[rows]]
            valid = np.isin(l_mech, R.MECHANISMS)
            if valid.any():
                mech = out["mechanism"].astype(object).to_numpy().copy()
                mech[rows[valid]] = l_mech[valid]
                out["mechanism"] = pd.Categorical(mech, categories=list(R.MECHANISMS))
    out["locus"] = pd.Categorical.from_codes(locus.astype(np.int32), categories=list(R.LOCI))
    out["responsible_cc"] = pd.Categorical.from_codes(resp.astype(np.int32), categories=vocab)
    out["locus_rule_id"] = pd.Categorical.from_codes(why.astype(np.int32), categories=rule_names)
    for k, v in extra.items():
        out[k] = v
    return out


LOCUS_RULES: tuple[str, ...] = (
    "locus.none",
    "locus.inconclusive",
    "locus.unknown",
    "locus.server",
    "locus.local",
    "locus.tls.validated",
    "locus.tls.unvalidated",
    "locus.blockpage.local",
    "locus.blockpage.named_country",
    "locus.weak_blockpage.local",
    "locus.weak_blockpage.other",
)

__all__ = ["LOCALISATION_COLUMNS", "LOCUS_RULES", "attribute"]
