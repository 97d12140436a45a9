"""Controls: the measurements that a verdict compares with (pure numpy).

A control of measurement *m* (URL *u*, country *c*, start *t*) is a measurement of *u* that
started within ``[t - window, t + window]`` (both bounds included) and comes from another
country, or is a dedicated control record (``is_control``, any country, ``ZZ`` included).
A control is *accessible* when its observation is ``ok`` (:mod:`analysis.rules`).

Everything is vectorised and exact.  :class:`WindowIndex` keeps sorted integer keys that pack
(group, time position, label): counting the members of a group inside a window is two
``searchsorted`` calls on sorted queries; the members inside a window are a contiguous range
of the sorted keys.  :class:`Controls` holds the indices of one dataset:

- accessible measurements by URL (labelled with their country, for distinct-country tests),
- accessible ordinary measurements by (URL, country) (subtracted to exclude the same country),
- the other measurements the same two ways (to tell ``down`` from ``inconclusive``).

It answers per measurement: accessible controls in the window, accessible measurements of the
URL from anywhere, other-country measurements of any outcome, and whether accessible controls
come from at least two distinct other countries (:meth:`Controls.multi_country`, O(1) per
query on the run structure of the labels).  For the targets table it gives the accessible
controls and their countries over the union of windows of a target's measurements.

The DNS features of :func:`dns_features` compare answers with those that *accessible*
measurements from other countries (and dedicated controls) got for the same name, over the
whole dataset, and with the measurement's own control-resolver answers.  Using accessible
measurements only means that adding a failing measurement never changes another verdict.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

_MAX_KEY = 1 << 62


# -- time axis and window index ---------------------------------------------------------


class TimeAxis:
    """Integer positions of times such that window bounds stay exact.

    Positions are microseconds from a base when (groups x span x labels) fits in 62 bits,
    else ranks among the distinct data times (order and ties preserved, so counts are the
    same).
    """

    def __init__(self, times: np.ndarray, window_us: int, capacity: int) -> None:
        self.window = int(window_us)
        t = np.asarray(times, np.int64)
        lo = int(t.min()) if len(t) else 0
        hi = int(t.max()) if len(t) else 0
        self.base = lo - self.window
        span = hi + self.window - self.base + 2
        self.ranked = span * max(capacity, 1) >= _MAX_KEY
        if self.ranked:
            srt = np.sort(t)
            keep = np.ones(len(srt), bool)
            keep[1:] = srt[1:] != srt[:-1]
            self.uniq = srt[keep]
            self.span = len(self.uniq) + 2
        else:
            self.uniq = None
            self.span = span

    def pos(self, t: np.ndarray) -> np.ndarray:
        """Positions of data times."""
        if self.uniq is not None:
            return np.searchsorted(self.uniq, t, "left").astype(np.int64)
        return np.asarray(t, np.int64) - self.base

    def bounds(self, t: np.ndarray, window: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``[lo, hi)`` positions covering data times within ``t ± window`` (inclusive)."""
        w = self.window if window is None else int(window)
        t = np.asarray(t, np.int64)
        if self.uniq is not None:
            lo = np.searchsorted(self.uniq, t - w, "left")
            hi = np.searchsorted(self.uniq, t + w, "right")
            return lo.astype(np.int64), hi.astype(np.int64)
        return t - w - self.base, t + w - self.base + 1

    def interval(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[lo, hi)`` positions covering data times in ``[a, b]``."""
        if self.uniq is not None:
            lo = np.searchsorted(self.uniq, a, "left")
            hi = np.searchsorted(self.uniq, b, "right")
            return lo.astype(np.int64), hi.astype(np.int64)
        return np.asarray(a, np.int64) - self.base, np.asarray(b, np.int64) - self.base + 1


def _sorted_search(keys: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``searchsorted(keys, queries, 'left')`` with the queries sorted first (much faster).
    Equal queries find the same place, so the order of ties does not matter: the fastest
    sort (numpy's SIMD quicksort) will do."""
    if len(queries) < 2:
        return np.searchsorted(keys, queries, "left")
    order = np.argsort(queries)
    out = np.empty(len(queries), np.int64)
    out[order] = np.searchsorted(keys, queries[order], "left")
    return out


class WindowIndex:
    """Sorted (group, time, label) keys of one population of measurements."""

    def __init__(
        self,
        axis: TimeAxis,
        groups: np.ndarray,
        times: np.ndarray,
        labels: np.ndarray | None = None,
        n_labels: int = 1,
    ) -> None:
        self.axis = axis
        self.n_labels = max(int(n_labels), 1)
        g = np.asarray(groups, np.int64)
        key = (g * axis.span + axis.pos(times)) * self.n_labels
        if labels is not None:
            key += np.asarray(labels, np.int64)
        self.keys = np.sort(key)

    def __len__(self) -> int:
        return len(self.keys)

    def _key(self, groups: np.ndarray, pos: np.ndarray) -> np.ndarray:
        return (np.asarray(groups, np.int64) * self.axis.span + pos) * self.n_labels

    def ranges(
        self, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Index range ``[start, stop)`` of the keys of each group with position in [lo, hi)."""
        q = np.concatenate([self._key(groups, lo), self._key(groups, hi)])
        found = _sorted_search(self.keys, q)
        n = len(lo)
        return found[:n], found[n:]

    def count(self, groups: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        start, stop = self.ranges(groups, lo, hi)
        return stop - start

    def window_count(self, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
        lo, hi = self.axis.bounds(times)
        return self.count(groups, lo, hi)

    def labels(self) -> np.ndarray:
        return self.keys % self.n_labels

    def key_groups(self) -> np.ndarray:
        return self.keys // self.n_labels // self.axis.span


class _Runs:
    """Run structure of the labels of a :class:`WindowIndex` (for distinct-label tests)."""

    def __init__(self, index: WindowIndex) -> None:
        labels = index.labels()
        groups = index.key_groups()
        n = len(labels)
        start = np.ones(n, bool)
        if n:
            start[1:] = (labels[1:] != labels[:-1]) | (groups[1:] != groups[:-1])
        self.run_of = (np.cumsum(start) - 1).astype(np.int32)
        starts = np.flatnonzero(start)
        r = len(starts)
        # two sentinel runs past the end
        self.start = np.concatenate([starts, [n, n]]).astype(np.int64)
        self.value = np.concatenate([labels[starts], [-1, -2]]).astype(np.int64)
        group = np.concatenate([groups[starts], [-1, -2]])
        # third[k]: first run >= k + 2 whose label is in neither run k nor run k + 1 (within
        # a group runs alternate between two labels until a third appears)
        brk = np.zeros(r + 2, bool)
        if r + 2 > 2:
            brk[2:] = (self.value[2:] != self.value[:-2]) | (group[2:] != group[:-2])
        brk[r:] = True
        idx = np.where(brk, np.arange(r + 2), r + 1)
        nxt = np.minimum.accumulate(idx[::-1])[::-1]
        third = np.full(r + 2, r + 1, np.int64)
        third[: max(r, 0)] = nxt[2 : r + 2] if r else third[:0]
        self.third = third

    def two_others(self, start: np.ndarray, stop: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Whether keys ``[start, stop)`` hold at least two distinct labels other than ``own``."""
        out = np.zeros(len(start), bool)
        ok = start < stop
        if not ok.any():
            return out
        s, e, c = start[ok], stop[ok], np.asarray(own, np.int64)[ok]
        k = self.run_of[s]
        v0, v1 = self.value[k], self.value[k + 1]
        next_in = self.start[k + 1] < e
        third_in = self.start[self.third[k]] < e
        out[ok] = next_in & (((v0 != c) & (v1 != c)) | third_in)
        return out


# -- controls ---------------------------------------------------------------------------


@dataclass
class ControlCounts:
    """Counts for the queried measurements ``rows``."""

    rows: np.ndarray
    n_ok: np.ndarray  # accessible controls within the window
    n_acc_all: np.ndarray  # accessible measurements of the URL within the window, any country
    n_other: np.ndarray  # measurements of the URL from other countries or controls, any outcome


class Controls:
    """Window indices over one dataset (see the module docstring)."""

    def __init__(
        self,
        url: np.ndarray,
        cc: np.ndarray,
        t: np.ndarray,
        ok: np.ndarray,
        is_control: np.ndarray,
        window_us: int,
        n_url: int,
        n_cc: int,
        cc_names: Sequence[str] | None = None,
    ) -> None:
        self.cc_names = list(cc_names) if cc_names is not None else None
        self.url = np.asarray(url)  # any integer type (arithmetic widens first)
        if self.url.dtype.kind not in "iu":
            self.url = self.url.astype(np.int32)
        self.cc = np.asarray(cc, np.int32)
        self.t = np.asarray(t, np.int64)
        self.ok = np.asarray(ok, bool)
        self.is_control = np.asarray(is_control, bool)
        self.window = int(window_us)
        self.n_url = max(int(n_url), 1)
        self.n_cc = max(int(n_cc), 1)
        # keys pack (url, time, country) or ((url, country), time): n_url * n_cc * span values
        self.axis = TimeAxis(self.t, self.window, self.n_url * self.n_cc)
        acc = self.ok
        own = acc & ~self.is_control
        self.acc_u = WindowIndex(self.axis, self.url[acc], self.t[acc], self.cc[acc], self.n_cc)
        self.acc_uc = WindowIndex(self.axis, self._uc(own), self.t[own])
        other = ~acc
        own_other = other & ~self.is_control
        self.oth_u = WindowIndex(self.axis, self.url[other], self.t[other])
        self.oth_uc = WindowIndex(self.axis, self._uc(own_other), self.t[own_other])
        self._runs: _Runs | None = None

    def _uc(self, mask: np.ndarray | None = None, rows: np.ndarray | None = None) -> np.ndarray:
        sel = mask if mask is not None else rows
        return self.url[sel].astype(np.int64) * self.n_cc + self.cc[sel]

    def counts(self, rows: np.ndarray) -> ControlCounts:
        """Window counts for ``rows`` (row numbers)."""
        rows = np.asarray(rows, np.int64)
        u, t = self.url[rows], self.t[rows]
        lo, hi = self.axis.bounds(t)
        uc = self._uc(rows=rows)
        ctrl = self.is_control[rows]
        acc_all = self.acc_u.count(u, lo, hi)
        acc_same = np.where(ctrl, 0, self.acc_uc.count(uc, lo, hi))
        oth_all = self.oth_u.count(u, lo, hi)
        oth_same = np.where(ctrl, 1, self.oth_uc.count(uc, lo, hi))  # a row never controls itself
        n_ok = acc_all - acc_same
        n_other = n_ok + oth_all - oth_same
        return ControlCounts(rows, n_ok, acc_all, n_other)

    def multi_country(self, rows: np.ndarray) -> np.ndarray:
        """Accessible controls from at least two distinct other countries within the window."""
        rows = np.asarray(rows, np.int64)
        if self._runs is None:
            self._runs = _Runs(self.acc_u)  # kept: cheap to query again, freed with self
        lo, hi = self.axis.bounds(self.t[rows])
        start, stop = self.acc_u.ranges(self.url[rows], lo, hi)
        own = np.where(self.is_control[rows], -3, self.cc[rows])
        return self._runs.two_others(start, stop, own)

    def accessible_in_window(self, rows: np.ndarray) -> list[np.ndarray]:
        """Row numbers of the accessible controls of each of ``rows`` (small selections)."""
        rows = np.asarray(rows, np.int64)
        involved = np.zeros(self.n_url, bool)
        involved[self.url[rows]] = True
        acc_rows = np.flatnonzero(self.ok & involved[self.url])
        order = np.lexsort((self.t[acc_rows], self.url[acc_rows]))
        acc_rows = acc_rows[order]
        keys_u = self.url[acc_rows]
        keys_t = self.t[acc_rows]
        out = []
        for r in np.asarray(rows, np.int64).tolist():
            u, t = self.url[r], self.t[r]
            a = np.searchsorted(keys_u, u, "left")
            b = np.searchsorted(keys_u, u, "right")
            i = a + np.searchsorted(keys_t[a:b], t - self.window, "left")
            j = a + np.searchsorted(keys_t[a:b], t + self.window, "right")
            cand = acc_rows[i:j]
            if not self.is_control[r]:
                cand = cand[(self.cc[cand] != self.cc[r]) | self.is_control[cand]]
            out.append(cand)
        return out

    def target_controls(
        self, rows: np.ndarray, target: np.ndarray, n_targets: int
    ) -> tuple[np.ndarray, list[list[int]]]:
        """Accessible controls of each target over the union of its rows' windows.

        ``rows`` are measurements of ordinary vantages and ``target`` their target numbers.
        Returns the number of distinct accessible controls and the sorted country codes
        they come from, per target (see :meth:`target_control_sets`).
        """
        n_ok, offsets, codes = self.target_control_sets(rows, target, n_targets)
        flat = codes.tolist()
        bounds = offsets.tolist()
        return n_ok, [flat[bounds[k] : bounds[k + 1]] for k in range(n_targets)]

    def target_control_sets(
        self,
        rows: np.ndarray,
        target: np.ndarray,
        n_targets: int,
        code_order: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`target_controls` as arrays: the counts, then the country codes of all
        targets one after the other and their ``n_targets + 1`` offsets.  Within a target
        the codes ascend, or follow ``code_order`` (every country code once, e.g. by
        name)."""
        n_ok = np.zeros(n_targets, np.int64)
        offsets = np.zeros(n_targets + 1, np.int64)
        no_codes = np.zeros(0, np.int64)
        rows = np.asarray(rows, np.int64)
        if not len(rows) or not len(self.acc_u):
            return n_ok, offsets, no_codes
        # merge the windows of each target into disjoint intervals
        tg = np.asarray(target, np.int64)
        order = np.lexsort((self.t[rows], tg))
        rows, tg = rows[order], tg[order]
        t = self.t[rows]
        new = np.ones(len(rows), bool)
        new[1:] = (tg[1:] != tg[:-1]) | (t[1:] - t[:-1] > 2 * self.window)
        first = np.flatnonzero(new)
        last = np.append(first[1:], len(rows)) - 1
        i_rows = rows[first]
        i_target = tg[first]
        a = t[first] - self.window
        b = t[last] + self.window
        lo, hi = self.axis.interval(a, b)
        u = self.url[i_rows].astype(np.int64)
        uc = u * self.n_cc + self.cc[i_rows]
        start, stop = self.acc_u.ranges(u, lo, hi)
        same = self.acc_uc.count(uc, lo, hi)
        np.add.at(n_ok, i_target, (stop - start) - same)
        # countries: OR of per-label bits over each interval's key range, then per target
        nonempty = np.flatnonzero(start < stop)
        if not len(nonempty):
            return n_ok, offsets, no_codes
        nonempty = nonempty[np.argsort(start[nonempty])]  # bounded gaps (ties: any order)
        s, e = start[nonempty], stop[nonempty]
        labels = self.acc_u.labels()
        own = self.cc[i_rows[nonempty]]
        idx = np.empty(2 * len(s), np.int64)
        idx[0::2], idx[1::2] = s, e
        words = (self.n_cc + 63) // 64
        masks = np.zeros((len(s), words), np.uint64)
        one = np.uint64(1)
        for w in range(words):
            rel = labels - 64 * w
            in_word = (rel >= 0) & (rel < 64)
            bits = np.zeros(len(labels) + 1, np.uint64)  # a zero sentinel: idx may equal len
            bits[:-1][in_word] = np.left_shift(one, rel[in_word].astype(np.uint64))
            red = np.bitwise_or.reduceat(bits, idx)[0::2]
            own_rel = own - 64 * w
            own_in = (own_rel >= 0) & (own_rel < 64)
            own_bit = np.zeros(len(s), np.uint64)
            own_bit[own_in] = np.left_shift(one, own_rel[own_in].astype(np.uint64))
            masks[:, w] = red & ~own_bit
        tg = i_target[nonempty]
        by_target = np.argsort(tg)  # the masks of a target are OR-ed: any order
        tg, masks = tg[by_target], masks[by_target]
        heads = np.flatnonzero(np.r_[True, tg[1:] != tg[:-1]])
        merged = np.ascontiguousarray(np.bitwise_or.reduceat(masks, heads, axis=0))
        # bit b of word w is country code 64 * w + b: unpack the little-endian words
        bits = np.unpackbits(merged.astype("<u8").view(np.uint8), axis=1, bitorder="little")
        if code_order is not None:
            code_order = np.asarray(code_order, np.int64)
            bits = bits[:, code_order]
        row, codes = np.nonzero(bits)  # by target, then by code (or by ``code_order``)
        if code_order is not None:
            codes = code_order[codes]
        np.cumsum(np.bincount(tg[heads][row], minlength=n_targets), out=offsets[1:])
        return n_ok, offsets, codes.astype(np.int64)


# -- DNS --------------------------------------------------------------------------------


def is_bogon(address: str) -> bool:
    """Whether ``address`` is not a globally routable IP address (private, loopback, ...)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0].strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def _entries(offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entry indices, their row numbers) of the list entries of ``rows``."""
    rows = np.asarray(rows, np.int64)
    lengths = offsets[rows + 1] - offsets[rows]
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    row_of = np.repeat(rows, lengths)
    starts = np.repeat(offsets[rows] - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return starts + np.arange(total), row_of


#: Rows deduplicated at a time by :func:`_distinct_answers` (bounds its temporary arrays).
DISTINCT_CHUNK = 1 << 20


def _distinct_answers(
    host: np.ndarray,
    label: np.ndarray,
    offsets: np.ndarray,
    answers: np.ndarray,
    rows: np.ndarray,
    n_labels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (host, answer, label) triples over the answers of ``rows``.

    Rows with one or two answers (nearly all) are deduplicated as whole answer lists first,
    so that ten million rows cost a few hash passes instead of one entry per answer; and
    :data:`DISTINCT_CHUNK` rows at a time, whose few distinct triples are merged at the end
    (the temporary arrays stay small instead of growing the heap by a gigabyte).
    """
    n_ip = int(answers.max()) + 2 if len(answers) else 2
    n_host = int(host.max()) + 1 if len(host) else 1
    # one packed key per row (host, first answer, second answer, label) when it fits
    packed = sum(int(n - 1).bit_length() for n in (n_host, n_ip, n_ip, n_labels)) <= 62
    if len(rows) <= DISTINCT_CHUNK:
        return _distinct_chunk(host, label, offsets, answers, rows, n_labels, packed)
    parts = [
        _distinct_chunk(
            host, label, offsets, answers, rows[i : i + DISTINCT_CHUNK], n_labels, packed
        )
        for i in range(0, len(rows), DISTINCT_CHUNK)
    ]
    h, ip, lab = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return _unique_triples(h, ip, lab, n_ip, n_labels)


def _unique_triples(
    h: np.ndarray, ip: np.ndarray, lab: np.ndarray, n_ip: int, n_labels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (host, answer, label) triples among the given ones (int64 arrays)."""
    key = np.asarray(pd.unique((h * n_ip + ip) * n_labels + lab), np.int64)
    hi = key // n_labels
    return hi // n_ip, hi % n_ip, key % n_labels


def _distinct_chunk(
    host: np.ndarray,
    label: np.ndarray,
    offsets: np.ndarray,
    answers: np.ndarray,
    rows: np.ndarray,
    n_labels: int,
    packed: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_distinct_answers` of a few rows at once (``packed``: the four codes of a row
    fit in one 62-bit key, deduplicated in one hash pass instead of three)."""
    lengths = offsets[rows + 1] - offsets[rows]
    small = (lengths >= 1) & (lengths <= 2)
    short, n_short = rows[small], lengths[small]
    sentinel = int(answers.max()) + 1 if len(answers) else 0
    n_ip = sentinel + 1
    first = offsets[short]
    a0 = answers[first].astype(np.int64)
    a1 = np.where(n_short == 2, answers[np.minimum(first + 1, max(len(answers) - 1, 0))], sentinel)
    if packed:
        key = (host[short].astype(np.int64) * n_ip + a0) * n_ip + a1
        u = np.asarray(pd.unique(key * n_labels + label[short]), np.int64)
        lab, u = u % n_labels, u // n_labels
        ans1, u = u % n_ip, u // n_ip
        h, ans0 = u // n_ip, u % n_ip
    else:
        c1, u1 = pd.factorize(host[short].astype(np.int64) * n_ip + a0)
        c2, u2 = pd.factorize(c1.astype(np.int64) * n_ip + a1)
        u3 = np.asarray(pd.unique(c2.astype(np.int64) * n_labels + label[short].astype(np.int64)))
        lab = u3 % n_labels
        k2 = np.asarray(u2, np.int64)[u3 // n_labels]
        ans1 = k2 % n_ip
        k1 = np.asarray(u1, np.int64)[k2 // n_ip]
        h, ans0 = k1 // n_ip, k1 % n_ip
    two = ans1 != sentinel
    hosts = [h, h[two]]
    ips = [ans0, ans1[two]]
    labels = [lab, lab[two]]
    long_rows = rows[lengths > 2]
    if len(long_rows):
        e_idx, e_row = _entries(offsets, long_rows)
        hosts.append(host[e_row])
        ips.append(answers[e_idx].astype(np.int64))
        labels.append(label[e_row])
    h, ip, lab = (np.concatenate(x).astype(np.int64) for x in (hosts, ips, labels))
    return _unique_triples(h, ip, lab, n_ip, n_labels)


@dataclass
class _MinMax:
    """Per key: the smallest and largest label seen (to test 'a label other than mine')."""

    keys: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    @classmethod
    def build(cls, keys: np.ndarray, labels: np.ndarray, n_labels: int) -> _MinMax:
        if not len(keys):
            empty = np.zeros(0, np.int64)
            return cls(empty, empty, empty)
        packed = pd.unique(np.asarray(keys, np.int64) * n_labels + np.asarray(labels, np.int64))
        packed = np.sort(np.asarray(packed, np.int64))
        k, lab = packed // n_labels, packed % n_labels
        uk, first = np.unique(k, return_index=True)
        last = np.append(first[1:], len(k)) - 1
        return cls(uk, lab[first], lab[last])

    def other(self, keys: np.ndarray, own: np.ndarray) -> np.ndarray:
        """Whether some label other than ``own`` was seen for each key."""
        if not len(self.keys):
            return np.zeros(len(keys), bool)
        i = np.searchsorted(self.keys, keys).clip(0, len(self.keys) - 1)
        found = self.keys[i] == keys
        return found & ~((self.lo[i] == own) & (self.hi[i] == own))


def dns_features(
    *,
    host: np.ndarray,
    cc: np.ndarray,
    is_control: np.ndarray,
    ok: np.ndarray,
    offsets: np.ndarray,
    answers: np.ndarray,
    ip_bogon: np.ndarray,
    server_asn: np.ndarray,
    candidates: np.ndarray,
    n_cc: int,
    ip_values: Sequence[str],
    control_answers: Callable[[np.ndarray], Sequence[Sequence[str]]],
) -> tuple[np.ndarray, np.ndarray]:
    """``(dns_bogon, dns_inconsistent)`` for every row (true only among ``candidates``).

    ``answers`` are codes into ``ip_values`` (``ip_bogon[code]``: that address is a bogon);
    ``control_answers(rows)`` returns the rows' own control-resolver answers.  A candidate's
    answers are *inconsistent* when no answer was also seen by an accessible measurement of
    the name from another country or by a dedicated control, none shares the AS of the
    address it reached, none is among its own control answers, and there is something to
    compare with.  A *bogon* answer counts when no
    such control got a bogon for the name and its own control answers hold none.
    """
    n = len(host)
    dns_bogon = np.zeros(n, bool)
    dns_incons = np.zeros(n, bool)
    cand = np.flatnonzero(candidates)
    if not len(cand):
        return dns_bogon, dns_incons
    ctrl_label = n_cc  # dedicated controls count as "another country" for everybody
    nl = n_cc + 1
    label = np.where(is_control, ctrl_label, cc).astype(np.int32)
    n_ip = int(answers.max()) + 2 if len(answers) else 2  # as in _distinct_answers
    host = np.asarray(host, np.int32)

    def host64(rows: np.ndarray) -> np.ndarray:
        return host[rows].astype(np.int64)

    acc_rows = np.flatnonzero(ok)
    r_host, r_ip, r_label = _distinct_answers(host, label, offsets, answers, acc_rows, nl)
    pairs = _MinMax.build(r_host * n_ip + r_ip, r_label, nl)
    hosts = _MinMax.build(r_host, r_label, nl)
    bog = ip_bogon[r_ip]
    bogon_hosts = _MinMax.build(r_host[bog], r_label[bog], nl)
    asn_ok = acc_rows[server_asn[acc_rows] > 0]  # 0: unknown
    asn_codes, asn_uniq = pd.factorize(np.concatenate([server_asn[asn_ok], server_asn[cand]]))
    n_asn = max(len(asn_uniq), 1)
    asns = _MinMax.build(
        host64(asn_ok) * n_asn + asn_codes[: len(asn_ok)], label[asn_ok].astype(np.int64), nl
    )

    c_idx, c_row = _entries(offsets, cand)
    c_ip = answers[c_idx].astype(np.int64)
    own = label[c_row].astype(np.int64)
    seen = pairs.other(host64(c_row) * n_ip + c_ip, own)
    consistent_ip = np.zeros(n, bool)
    consistent_ip[c_row[seen]] = True
    has_bogon = np.zeros(n, bool)
    has_bogon[c_row[ip_bogon[c_ip]]] = True

    cand_asn = asn_codes[len(asn_ok) :]
    asn_shared = np.zeros(n, bool)
    known = server_asn[cand] > 0
    asn_shared[cand[known]] = asns.other(
        host64(cand[known]) * n_asn + cand_asn[known], label[cand[known]].astype(np.int64)
    )
    has_ref = np.zeros(n, bool)
    cand_label = label[cand].astype(np.int64)
    has_ref[cand] = hosts.other(host64(cand), cand_label)
    bogon_elsewhere = np.zeros(n, bool)
    bogon_elsewhere[cand] = bogon_hosts.other(host64(cand), cand_label)

    suspect_incons = candidates & ~consistent_ip & ~asn_shared
    suspect_bogon = candidates & has_bogon & ~bogon_elsewhere
    need = np.flatnonzero(suspect_incons | suspect_bogon)
    if not len(need):
        return dns_bogon, dns_incons
    for r, ctrl in zip(need.tolist(), control_answers(need), strict=True):
        ctrl = [a for a in ctrl if a]
        if not (has_ref[r] or ctrl):
            continue  # nothing to compare with
        mine = {ip_values[c] for c in answers[offsets[r] : offsets[r + 1]].tolist()}
        if suspect_incons[r] and not (mine & set(ctrl)):
            dns_incons[r] = True
        if suspect_bogon[r] and not any(is_bogon(a) for a in ctrl):
            dns_bogon[r] = True
    return dns_bogon, dns_incons


# -- HTTP comparison --------------------------------------------------------------------

#: Headers common to most responses; sharing one of these says nothing (after OONI).
COMMON_HEADERS: frozenset[str] = frozenset(
    """
    date content-type server cache-control vary set-cookie location expires x-powered-by
    content-encoding last-modified accept-ranges pragma x-frame-options etag
    x-content-type-options age via p3p x-xss-protection content-language cf-ray
    strict-transport-security link x-varnish content-length connection transfer-encoding
    keep-alive alt-svc content-security-policy referrer-policy access-control-allow-origin
    x-cache report-to nel permissions-policy
    """.split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


def uncommon_header_names(headers_json: str | None) -> frozenset[str]:
    """Lower-cased names of the response headers that are not in :data:`COMMON_HEADERS`."""
    if not headers_json:
        return frozenset()
    try:
        pairs = json.loads(headers_json)
    except ValueError:
        return frozenset()
    names = set()
    if isinstance(pairs, list):
        for p in pairs[:256]:
            if isinstance(p, list | tuple) and p and isinstance(p[0], str):
                names.add(p[0].strip().lower()[:128])
    return frozenset(names - COMMON_HEADERS)


def title_words(title: str | None) -> frozenset[str]:
    """Words of a title longer than four characters, lower-cased (after OONI)."""
    if not title:
        return frozenset()
    return frozenset(w for w in _WORD.findall(title.lower()[:1024]) if len(w) > 4)


@dataclass(frozen=True)
class Page:
    """What the HTTP comparison looks at in one response."""

    body_length: int | None
    headers: frozenset[str]
    title: frozenset[str]


def similar(a: Page, b: Page) -> bool:
    """OONI's heuristics: body-length proportion > 0.7, or shared uncommon headers, or
    shared title words longer than four characters."""
    if a.body_length is not None and b.body_length is not None:
        big = max(a.body_length, b.body_length)
        if big == 0 or min(a.body_length, b.body_length) / big > 0.7:
            return True
    return bool(a.headers & b.headers) or bool(a.title & b.title)


__all__ = [
    "COMMON_HEADERS",
    "ControlCounts",
    "Controls",
    "Page",
    "TimeAxis",
    "WindowIndex",
    "dns_features",
    "is_bogon",
    "similar",
    "title_words",
    "uncommon_header_names",
]
