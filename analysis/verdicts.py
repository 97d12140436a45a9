"""Per-measurement verdicts (pure numpy / pandas over :class:`analysis.load.Columns`).

:func:`compute_verdicts` turns the compact columns of a dataset into one verdict per
measurement:

1. features of each measurement: the step and kind of its first failure, the strongest
   fingerprint of its response (each *distinct* response is matched once: same body SHA-256,
   same headers once volatile values such as ``Date`` are masked, same status), DNS answers in
   known block-page ranges, redirects;
2. the accessible measurements (rule ``ok``) and the window indices of
   :class:`analysis.controls.Controls`;
3. DNS answers compared with the controls' (bogons, inconsistent answers) and error responses
   compared with the accessible controls' (status, then body/headers/title);
4. the first matching rule of :data:`analysis.rules.RULES` (``rule_id``, observation,
   mechanism);
5. status and confidence (SPEC §5):

   - ``accessible``: observation ``ok``;
   - ``denied``: an explicit, weak, failed or differing observation with at least one
     accessible control (another country's measurement of the URL within the window, or a
     dedicated control record); never for dedicated control records themselves;
   - ``down``: a failure while nothing reached the URL within the window, from anywhere, and
     at least one other country (or control) measured it;
   - ``inconclusive``: everything else (challenges, uninterpretable failures, no control);
   - confidence of a denial: ``confirmed`` with an explicit signal, ``likely`` when the
     country has two or more denied measurements of the URL at different times and this one
     has accessible controls from two or more other countries, else ``possible``.

Locus and responsible country are added by :mod:`analysis.attribution`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pyarrow as pa

from analysis import rules as R
from analysis.controls import (
    Controls,
    Page,
    dns_features,
    is_bogon,
    similar,
    title_words,
    uncommon_header_names,
)
from analysis.load import Cat, Columns, Fetcher

Progress = Callable[[str, int, int], None]

#: Header values that change with every response; masked before responses are compared.
VOLATILE_HEADERS: frozenset[str] = frozenset(
    """
    date expires last-modified age etag cf-ray x-request-id request-id x-amz-cf-id
    x-amz-request-id x-amz-id-2 x-timer x-served-by x-cache-hits server-timing report-to nel
    content-length x-runtime x-trace-id traceparent x-correlation-id
    """.split()
)
_BODY_BATCH = 1024


class FingerprintMatcher(Protocol):
    """What verdicts need from :class:`analysis.fingerprints.FingerprintSet`."""

    version: int

    def match_response(
        self, status: int | None, headers: Any, title: str | None, body: bytes | None
    ) -> list[Any]: ...

    def match_dns(self, answers: Sequence[str]) -> list[Any]: ...


# -- small helpers ----------------------------------------------------------------------


def _cat(values: Sequence[str | None]) -> tuple[np.ndarray, list[str]]:
    """Codes (-1 = None) and unique names of a small list of strings."""
    codes, uniq = pd.factorize(pd.Series(list(values), dtype=object), use_na_sentinel=True)
    return codes.astype(np.int32), [str(u) for u in uniq]


def categorical(codes: np.ndarray, names: Sequence[str]) -> pd.Categorical:
    """A categorical over ``names`` (codes are shared when already in pandas' code type)."""
    return pd.Categorical.from_codes(np.asarray(codes), categories=list(names))


def mask_headers(headers_json: str | None) -> str | None:
    """The headers JSON with the values of :data:`VOLATILE_HEADERS` (and cookie values)
    replaced by ``*``: equal for responses that differ only in those values."""
    if headers_json is None:
        return None
    try:
        pairs = json.loads(headers_json)
    except ValueError:
        return headers_json
    if not isinstance(pairs, list):
        return headers_json
    out = []
    for p in pairs:
        if isinstance(p, list | tuple) and len(p) == 2 and isinstance(p[0], str):
            name = p[0].lower()
            if name in VOLATILE_HEADERS:
                p = [p[0], "*"]
            elif name == "set-cookie" and isinstance(p[1], str):
                p = [p[0], p[1].split("=", 1)[0] + "=*"]
        out.append(p)
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def hostname_of(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


_FP_RANK = {  # lower is stronger
    ("censorship", False): (0, R.FP_CENSORSHIP),
    ("geoblock", False): (1, R.FP_GEOBLOCK),
    ("censorship", True): (2, R.FP_CENSORSHIP),
    ("geoblock", True): (3, R.FP_GEOBLOCK),
    ("challenge", False): (4, R.FP_CHALLENGE),
    ("challenge", True): (4, R.FP_CHALLENGE),
}


def strongest(matches: Sequence[Any]) -> Any | None:
    """The strongest match: explicit block pages, then geoblocks, then weak ones, challenges."""
    best, rank = None, (99, 0)
    for m in matches:
        r = _FP_RANK.get((getattr(m, "kind", None), bool(getattr(m, "needs_controls", False))))
        if r is not None and r < rank:
            best, rank = m, r
    return best


def _str_list(values: list[Any]) -> list[str]:
    return [v for v in values if isinstance(v, str)] if values else []


# -- results ----------------------------------------------------------------------------


@dataclass
class Verdicts:
    """Per-measurement verdicts and what evidence tables need besides them."""

    frame: pd.DataFrame
    controls: Controls
    cc_names: list[str]
    url_names: list[str]


# -- the computation --------------------------------------------------------------------


@dataclass
class _Responses:
    key: np.ndarray  # per row, -1 without a response
    fp: np.ndarray  # per key
    needs: np.ndarray
    fp_id: np.ndarray
    fp_cc: np.ndarray
    title: np.ndarray
    fp_names: list[str]
    cc_names: list[str]
    title_names: list[str]
    blocked_by: dict[int, str]


def _response_keys(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    """Per row the code of its distinct response (-1 without one), and one row per code.

    A response is (body SHA-256, headers with volatile values masked, status).
    """
    status = cols.http_status
    resp = np.flatnonzero(status >= 0)
    key = np.full(cols.n, -1, np.int32)
    if not len(resp):
        return key, np.zeros(0, np.int64)
    hdr = cols.cats["http_headers"]
    masked_codes, _ = _cat([mask_headers(h) for h in hdr.names()])
    hmask = np.append(masked_codes, -1)[hdr.codes[resp]].astype(np.int64) + 1
    sha = cols.cats["http_body_sha256"].codes[resp].astype(np.int64) + 1
    n_h = int(hmask.max()) + 1
    if (int(sha.max()) + 1) * n_h * 1000 < (1 << 62):
        code, _ = pd.factorize((sha * n_h + hmask) * 1000 + status[resp].clip(0, 999))
    else:  # pragma: no cover - astronomically many distinct bodies and headers
        c1, _ = pd.factorize(sha * n_h + hmask)
        code, _ = pd.factorize(c1.astype(np.int64) * 1000 + status[resp].clip(0, 999))
    del sha, hmask
    code = code.astype(np.int32)
    key[resp] = code
    # codes appear in order: the first row of each code is where the running maximum grows
    grow = np.flatnonzero(np.diff(np.maximum.accumulate(code), prepend=-1) > 0)
    return key, resp[grow]


def _match_responses(
    cols: Columns, fingerprints: FingerprintMatcher, fetch: Fetcher, progress: Progress | None
) -> _Responses:
    key, reps = _response_keys(cols)
    k = len(reps)
    # one spare entry: rows without a response read index 0 (masked), even when k == 0
    fp = np.zeros(k + 1, np.int8)
    needs = np.zeros(k + 1, bool)
    fp_id = np.full(k + 1, -1, np.int32)
    fp_cc = np.full(k + 1, -1, np.int32)
    titles: list[str | None] = [None] * (k + 1)
    ids: dict[str, int] = {}
    ccs: dict[str, int] = {}
    blocked_by: dict[int, str] = {}
    hdr = cols.cats["http_headers"]
    hdr_names = hdr.names()
    status = cols.http_status
    for b in range(0, k, _BODY_BATCH):
        rows = reps[b : b + _BODY_BATCH]
        got = fetch.fetch(rows, ["http_body_prefix", "http_title"])
        bodies = got.column("http_body_prefix").to_pylist()
        tls = got.column("http_title").to_pylist()
        for j, r in enumerate(rows.tolist()):
            i = b + j
            h = hdr_names[hdr.codes[r]] if hdr.codes[r] >= 0 else None
            titles[i] = tls[j]
            best = strongest(fingerprints.match_response(int(status[r]), h, tls[j], bodies[j]))
            if best is None:
                continue
            rank = _FP_RANK[(best.kind, bool(best.needs_controls))]
            fp[i] = rank[1]
            needs[i] = bool(best.needs_controls)
            fp_id[i] = ids.setdefault(best.fingerprint_id, len(ids))
            if best.country:
                fp_cc[i] = ccs.setdefault(best.country, len(ccs))
            if getattr(best, "detail", None) and int(status[r]) == 451:
                blocked_by[i] = str(best.detail)[:500]
        if progress is not None:
            progress("fingerprints", min(b + _BODY_BATCH, k), k)
    title_codes, title_names = _cat(titles)
    return _Responses(
        key,
        fp,
        needs,
        fp_id,
        fp_cc,
        title_codes,
        list(ids),
        list(ccs),
        title_names,
        blocked_by,
    )


@dataclass
class _DnsFlags:
    blockpage: np.ndarray
    blockpage_bogon: np.ndarray
    ip_bogon: np.ndarray
    fp_id: np.ndarray  # per row: fingerprint of the block-page answer (-1)
    fp_cc: np.ndarray
    fp_names: list[str]
    cc_names: list[str]


def _dns_flags(cols: Columns, fingerprints: FingerprintMatcher) -> _DnsFlags:
    n = cols.n
    ips = cols.dns_answers.names()
    ip_bogon = np.array([is_bogon(ip) for ip in ips], bool)
    bp = np.zeros(len(ips), bool)
    ip_fp = np.full(len(ips), -1, np.int32)
    ip_cc = np.full(len(ips), -1, np.int32)
    ids: dict[str, int] = {}
    ccs: dict[str, int] = {}
    for i, ip in enumerate(ips):
        matches = [m for m in fingerprints.match_dns([ip]) if m.kind == "censorship"]
        if matches:
            bp[i] = True
            ip_fp[i] = ids.setdefault(matches[0].fingerprint_id, len(ids))
            if matches[0].country:
                ip_cc[i] = ccs.setdefault(matches[0].country, len(ccs))
    blockpage = np.zeros(n, bool)
    blockpage_bogon = np.zeros(n, bool)
    fp_id = np.full(n, -1, np.int32)
    fp_cc = np.full(n, -1, np.int32)
    codes = cols.dns_answers.codes
    hit = np.flatnonzero(bp[np.maximum(codes, 0)] & (codes >= 0))
    if len(hit):
        rows = np.searchsorted(cols.dns_offsets, hit, "right") - 1
        # a certificate valid for the name at that address: the site itself, not a block page
        keep = cols.tls_cert_valid[rows] != 1
        rows, hit = rows[keep], hit[keep]
        blockpage[rows] = True
        blockpage_bogon[rows[ip_bogon[codes[hit]]]] = True
        fp_id[rows] = ip_fp[codes[hit]]
        fp_cc[rows] = ip_cc[codes[hit]]
    return _DnsFlags(blockpage, blockpage_bogon, ip_bogon, fp_id, fp_cc, list(ids), list(ccs))


def _redirected(cols: Columns, rows: np.ndarray, fetch: Fetcher) -> np.ndarray:
    out = np.zeros(cols.n, bool)
    if len(rows):
        got = fetch.fetch(rows, ["http_redirects"]).column("http_redirects")
        lengths = pa.compute.list_value_length(got).fill_null(0).to_numpy(zero_copy_only=False)
        out[rows] = lengths > 0
    return out


def _compare_pages(
    cols: Columns,
    rows: np.ndarray,
    controls: Controls,
    responses: _Responses,
    fetch: Fetcher,
    cap: int = 2000,
) -> tuple[np.ndarray, np.ndarray]:
    """``(ctrl_2xx, body_differs)`` for error responses ``rows`` with accessible controls."""
    n = cols.n
    ctrl_2xx = np.zeros(n, bool)
    differs = np.zeros(n, bool)
    if not len(rows):
        return ctrl_2xx, differs
    windows = controls.accessible_in_window(rows)
    status = cols.http_status
    need_body: list[int] = []
    for r, ctrl in zip(rows.tolist(), windows, strict=True):
        if len(ctrl) and ((status[ctrl] >= 200) & (status[ctrl] < 300)).any():
            ctrl_2xx[r] = True
        elif 0 < len(ctrl) <= cap:
            need_body.append(r)
    if not need_body:
        return ctrl_2xx, differs
    by_row = dict(zip(rows.tolist(), windows, strict=True))
    all_rows = np.unique(np.concatenate([np.array(need_body), *(by_row[r] for r in need_body)]))
    lengths = dict(
        zip(
            all_rows.tolist(),
            fetch.fetch(all_rows, ["http_body_length"]).column("http_body_length").to_pylist(),
            strict=True,
        )
    )
    hdr = cols.cats["http_headers"]
    hdr_names = hdr.names()

    def page(r: int) -> Page:
        h = hdr_names[hdr.codes[r]] if hdr.codes[r] >= 0 else None
        k = responses.key[r]
        t = responses.title[k] if k >= 0 else -1
        title = responses.title_names[t] if t >= 0 else None
        return Page(lengths.get(r), uncommon_header_names(h), title_words(title))

    for r in need_body:
        mine = page(r)
        differs[r] = not any(similar(mine, page(c)) for c in by_row[r].tolist())
    return ctrl_2xx, differs


def _prefer(
    codes: np.ndarray, names: list[str], other: np.ndarray, other_names: list[str]
) -> tuple[np.ndarray, list[str]]:
    """``codes`` over ``names``, with ``other`` (over ``other_names``) where ``codes`` is null."""
    fill = np.flatnonzero((codes < 0) & (other >= 0))
    if not len(fill):
        return codes, names
    merged = list(dict.fromkeys([*names, *other_names]))
    remap = np.array([merged.index(x) for x in other_names], np.int32)
    codes = codes.copy()
    codes[fill] = remap[other[fill]]
    return codes, merged


def _step_and_kind(cols: Columns) -> tuple[np.ndarray, np.ndarray]:
    fs = cols.cats["failure_step"]
    step_of = np.array([R.STEP_CODES.get(v, 0) for v in fs.names()] + [0], np.int8)
    step = step_of[fs.codes]  # code -1 picks the trailing 0
    fl = cols.cats["failure"]
    kind_of = np.array([R.failure_kind(v) for v in fl.names()] + [R.FK_NONE], np.int8)
    kind = kind_of[fl.codes]
    return step, kind


def _country_codes(cat: Cat) -> tuple[np.ndarray, list[str]]:
    """Country codes of every row with nulls (and blanks) as ``ZZ``."""
    names = [str(v).strip().upper() or "ZZ" for v in cat.names()]
    codes, uniq = _cat([*names, "ZZ"])
    out = codes[: len(names)]
    zz = codes[len(names)]
    mapped = np.append(out, zz)[cat.codes]  # -1 -> ZZ
    return mapped.astype(np.int32), uniq


def compute_verdicts(
    cols: Columns,
    *,
    fingerprints: FingerprintMatcher,
    fetch: Fetcher,
    window: timedelta = timedelta(hours=24),
    progress: Progress | None = None,
) -> Verdicts:
    """Verdicts for every measurement of ``cols`` (see the module docstring)."""
    n = cols.n
    window_us = int(window.total_seconds() * 1_000_000)
    if window_us <= 0:
        raise ValueError("window must be positive")
    step, fkind = _step_and_kind(cols)
    url_cat = cols.cats["url"]
    url_names = [str(u) for u in url_cat.names()]
    url = url_cat.codes  # pandas' small code type: the verdict frame shares it
    if (url < 0).any():  # no URL at all: give such rows their own (empty) URL
        url_names = [*url_names, ""]
        url = np.where(url < 0, len(url_names) - 1, url.astype(np.int32))
    host_codes, _ = _cat([hostname_of(u) for u in url_names])
    host = host_codes[url]
    cc, cc_names = _country_codes(cols.cats["probe_cc"])
    status = cols.http_status

    responses = _match_responses(cols, fingerprints, fetch, progress)
    has = responses.key >= 0
    kk = np.maximum(responses.key, 0)  # int32
    fp = np.where(has, responses.fp[kk], 0).astype(np.int8)
    fp_needs = has & responses.needs[kk]
    dnsf = _dns_flags(cols, fingerprints)
    redirected = _redirected(cols, np.flatnonzero(fp == R.FP_GEOBLOCK), fetch)

    zeros = np.zeros(n, bool)
    features = R.Features(
        step=step,
        fkind=fkind,
        status=status,
        fp=fp,
        fp_needs=fp_needs,
        redirected=redirected,
        dns_blockpage=dnsf.blockpage,
        dns_blockpage_bogon=dnsf.blockpage_bogon,
        dns_bogon=zeros,
        dns_inconsistent=zeros,
        ctrl_2xx=zeros,
        body_differs=zeros,
    )
    ok = np.asarray(R.RULES_BY_ID["ok"].when(features), bool)
    if progress is not None:
        progress("controls", 0, 1)
    controls = Controls(
        url,
        cc,
        cols.started_at,
        ok,
        cols.is_control,
        window_us,
        len(url_names),
        len(cc_names),
        cc_names,
    )

    # accessible controls of what was not accessible
    if progress is not None:
        progress("dns", 0, 1)
    nonok = np.flatnonzero(~ok)
    counts = controls.counts(nonok)
    n_ok = np.zeros(n, np.int32)
    n_ok[nonok] = counts.n_ok

    # DNS answers against the controls' (only where a denial is possible at all)
    lengths = np.diff(cols.dns_offsets)
    candidates = (
        ~ok
        & (n_ok > 0)
        & (step != R.STEP_DNS)
        & (lengths > 0)
        & (cols.tls_cert_valid != 1)
        & ~dnsf.blockpage  # already explicit
    )
    del lengths

    def control_answers(rows: np.ndarray) -> list[list[str]]:
        got = fetch.fetch(rows, ["dns_control_answers"]).column("dns_control_answers")
        return [_str_list(v) for v in got.to_pylist()]

    dns_bogon, dns_incons = dns_features(
        host=host,
        cc=cc,
        is_control=cols.is_control,
        ok=ok,
        offsets=cols.dns_offsets,
        answers=np.maximum(cols.dns_answers.codes, 0),
        ip_bogon=dnsf.ip_bogon if len(dnsf.ip_bogon) else np.zeros(1, bool),
        server_asn=cols.server_asn,
        candidates=candidates,
        n_cc=len(cc_names),
        ip_values=cols.dns_answers.names() or [""],
        control_answers=control_answers,
    )

    # error responses against the accessible controls'
    error_resp = (
        (step == R.STEP_NONE)
        & (status >= 0)
        & ~((status >= 200) & (status < 400))
        & (fp == R.FP_NONE)
        & (n_ok > 0)
    )
    ctrl_2xx, body_differs = _compare_pages(
        cols, np.flatnonzero(error_resp), controls, responses, fetch
    )
    features = replace(
        features,
        dns_bogon=dns_bogon,
        dns_inconsistent=dns_incons,
        ctrl_2xx=ctrl_2xx,
        body_differs=body_differs,
    )
    if progress is not None:
        progress("rules", 0, 1)
    # the rules only need to run where the measurement was not accessible
    rule_idx = np.full(n, R.RULE_IDS.index("ok"), np.int16)
    rule_idx[nonok] = R.classify(features.take(nonok))
    obs_of_rule = np.array([R.OBSERVATIONS.index(r.observation) for r in R.RULES], np.int8)
    obs = obs_of_rule[rule_idx]
    explicit = features.explicit() & ~ok

    # status
    st = np.full(n, R.STATUSES.index("inconclusive"), np.int8)
    accusing_obs = np.array(
        [o in ("explicit", "weak", "failed", "differs") for o in R.OBSERVATIONS], bool
    )
    down_obs = np.array([o in R.DOWN_OBSERVATIONS for o in R.OBSERVATIONS], bool)
    accusing = accusing_obs[obs]
    downish = down_obs[obs]
    nothing = (counts.n_acc_all == 0) & (counts.n_other > 0)
    st[nonok[nothing & downish[nonok]]] = R.STATUSES.index("down")
    del counts
    denied = accusing & (n_ok > 0) & ~cols.is_control & ~ok
    st[denied] = R.STATUSES.index("denied")
    st[ok] = R.STATUSES.index("accessible")

    # confidence
    conf = np.full(n, -1, np.int8)
    d_rows = np.flatnonzero(denied)
    conf[d_rows] = R.CONFIDENCES.index("possible")
    conf[d_rows[explicit[d_rows]]] = R.CONFIDENCES.index("confirmed")
    rest = d_rows[~explicit[d_rows]]
    multi = np.zeros(n, bool)
    if len(rest):
        target = url[d_rows].astype(np.int64) * len(cc_names) + cc[d_rows]
        distinct = pd.DataFrame({"g": target, "t": cols.started_at[d_rows]}).drop_duplicates()
        times = distinct["g"].value_counts()
        reproduced_targets = times.index[times >= 2].to_numpy()
        rest_target = url[rest].astype(np.int64) * len(cc_names) + cc[rest]
        cand = rest[np.isin(rest_target, reproduced_targets)]
        if len(cand):
            multi[cand] = controls.multi_country(cand)
            conf[cand[multi[cand]]] = R.CONFIDENCES.index("likely")

    mech_of_rule = np.array([R.MECHANISMS.index(r.mechanism) for r in R.RULES], np.int8)
    mechanism = mech_of_rule[rule_idx]
    mechanism[ok] = 0  # none
    # the fingerprint of the response, else that of a block-page DNS answer
    fp_codes, fp_id_names = _prefer(
        np.where(has, responses.fp_id[kk], -1), responses.fp_names, dnsf.fp_id, dnsf.fp_names
    )
    fp_cc_codes, fp_cc_names = _prefer(
        np.where(has, responses.fp_cc[kk], -1), responses.cc_names, dnsf.fp_cc, dnsf.cc_names
    )
    title_codes = np.where(has, responses.title[kk], -1)

    if progress is not None:
        progress("frame", 0, 1)
    frame = _frame(
        cols,
        url=url,
        url_names=url_names,
        cc=cc,
        cc_names=cc_names,
        rule_idx=rule_idx,
        obs=obs,
        mechanism=mechanism,
        explicit=explicit,
        status=st,
        conf=conf,
        n_ok=n_ok,
        multi=multi,
        fp_codes=fp_codes,
        fp_names=fp_id_names,
        fp_cc_codes=fp_cc_codes,
        fp_cc_names=fp_cc_names,
        title_codes=title_codes,
        title_names=responses.title_names,
    )
    return Verdicts(frame, controls, cc_names, url_names)


def _nullable_int(values: np.ndarray, dtype: str = "Int64") -> pd.arrays.IntegerArray:
    """A nullable integer array from values where negative means null."""
    return pd.arrays.IntegerArray(values.astype(dtype.lower()), values < 0)


def _nullable_asn(values: np.ndarray) -> pd.arrays.IntegerArray:
    """AS numbers (uint32, 0 = unknown) as a nullable UInt32 array."""
    return pd.arrays.IntegerArray(values.astype(np.uint32, copy=False), values == 0)


def _nullable_bool(values: np.ndarray) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(values == 1, values < 0)


def _frame(cols: Columns, **v: Any) -> pd.DataFrame:
    cats = cols.complete().cats  # the pass-through columns may still be being read
    n = cols.n

    def cat_col(name: str) -> pd.Categorical:
        c = cats[name]
        return categorical(c.codes, [str(x) for x in c.names()])

    conf_codes = v["conf"].astype(np.int32)
    data = {
        "measurement_id": pd.arrays.ArrowExtensionArray(cols.measurement_id),
        # a view of the microseconds (pd.to_datetime converts them, 0.2-0.5 s for 10 M)
        "started_at": pd.DatetimeIndex(cols.started_at.view("M8[us]")).tz_localize("UTC"),
        "campaign": cat_col("campaign"),
        "probe_cc": categorical(v["cc"], v["cc_names"]),
        "probe_asn": _nullable_asn(cols.probe_asn),
        "probe_as_name": cat_col("probe_as_name"),
        "vantage_id": cat_col("vantage_id"),
        "is_control": cols.is_control,
        "url": categorical(v["url"], v["url_names"]),
        "category_code": cat_col("category_code"),
        "operator_cc": cat_col("operator_cc"),
        "server_cc": cat_col("server_cc"),
        "server_asn": _nullable_asn(cols.server_asn),
        "failure_step": cat_col("failure_step"),
        "failure": cat_col("failure"),
        "http_status": _nullable_int(cols.http_status, "Int16"),
        "http_title": categorical(v["title_codes"], v["title_names"]),
        "http_verified": _nullable_bool(cols.http_verified),
        "tls_cert_valid": _nullable_bool(cols.tls_cert_valid),
        "fingerprint_id": categorical(v["fp_codes"], v["fp_names"]),
        "fingerprint_cc": categorical(v["fp_cc_codes"], v["fp_cc_names"]),
        "rule_id": categorical(v["rule_idx"], R.RULE_IDS),
        "observation": categorical(v["obs"], R.OBSERVATIONS),
        "mechanism": categorical(v["mechanism"], R.MECHANISMS),
        "explicit": v["explicit"],
        "status": categorical(v["status"], R.STATUSES),
        "confidence": categorical(conf_codes, R.CONFIDENCES),
        "n_controls_ok": v["n_ok"].astype(np.int32, copy=False),
        "controls_two_countries": v["multi"],
    }
    frame = pd.DataFrame(data, copy=False)
    assert len(frame) == n
    return frame


__all__ = [
    "VOLATILE_HEADERS",
    "FingerprintMatcher",
    "Verdicts",
    "categorical",
    "compute_verdicts",
    "hostname_of",
    "mask_headers",
    "strongest",
]
