"""Regular-expression safety and prefiltering for the fingerprint matcher (pure).

Every signature regex is checked before use to be linear by construction
(:func:`_regex_problem`: bounded repetitions of single characters only, no back-references or
look-arounds, a bounded backtracking product).  :func:`_regex_anchors` derives literals of which
every match contains at least one; a regex runs only when an anchor occurs, and on long texts
only in windows around the first :data:`MAX_ANCHOR_HITS` occurrences (:class:`_Regex`).
:class:`_TextMatcher` holds all signatures of one location, precompiled by match type.

Split out of :mod:`analysis.fingerprints`, which owns the signatures and the public API.
"""

from __future__ import annotations

import re
import re._constants as _sre_c  # the parser's opcodes (stable since 3.11)
import re._parser as _sre_parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analysis.fingerprints import Fingerprint


MAX_ANCHOR_HITS = 256  # a regex is tried around at most this many occurrences of its anchors

# Regex safety limits (see _regex_problem).
_MAX_REPEAT = 256  # largest allowed upper bound of a repetition
_BIG_REPEAT = 16  # at most one repetition per pattern may exceed this bound
_MAX_PRODUCT = 4096  # bound on the product of repetition ranges (backtracking per attempt)


# --------------------------------------------------------------------------------------------
# Regex safety


def _regex_problem(pattern: str) -> str | None:
    """Why *pattern* could backtrack badly, or None when it is linear by construction.

    Allowed: literals, classes, anchors, groups and alternation; repetitions with an upper
    bound of at most 256 whose body is a single character matcher (``[^<]{0,80}``, ``\\s?``),
    optional groups (``(?:...)?``); at most one repetition bounded above 16; the product of all
    repetition ranges at most 4096.  Refused: unbounded repetition (``*``, ``+``, ``{n,}``),
    repeated groups, back-references, look-arounds, atomic groups, conditionals.
    """
    try:
        parsed = _sre_parse.parse(pattern, 0)
    except re.error as exc:  # pragma: no cover - compile() reports it first
        return f"bad regex: {exc}"
    single = {_sre_c.LITERAL, _sre_c.NOT_LITERAL, _sre_c.IN, _sre_c.ANY, _sre_c.CATEGORY}
    repeats = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, _sre_c.POSSESSIVE_REPEAT}
    product = 1
    big = 0

    def walk(items: Any) -> str | None:
        nonlocal product, big
        for op, av in items:
            if op in repeats:
                lo, hi, sub = av
                if hi is _sre_c.MAXREPEAT or hi > _MAX_REPEAT:
                    return "unbounded repetition (use a bounded {m,n} with n <= 256)"
                body = list(sub)
                if hi > 1 and not (len(body) == 1 and body[0][0] in single):
                    return "repetition of a group (only single characters may repeat)"
                if hi > _BIG_REPEAT:
                    big += 1
                    if big > 1:
                        return "more than one repetition bounded above 16"
                product *= hi - lo + 1
                if product > _MAX_PRODUCT:
                    return "too much backtracking (product of repetition ranges > 4096)"
                problem = walk(body)
            elif op is _sre_c.SUBPATTERN:
                problem = walk(av[-1])
            elif op is _sre_c.BRANCH:
                problem = next((p for p in (walk(b) for b in av[1]) if p), None)
            elif op in single or op is _sre_c.AT:
                problem = None
            else:
                return f"construct not allowed: {str(op).lower()}"
            if problem:
                return problem
        return None

    return walk(parsed)


def _regex_anchors(pattern: str) -> tuple[str, ...] | None:
    """Folded literals of which every match of *pattern* contains at least one (or None).

    Used as a prefilter: the regex only runs when one of its anchors occurs in the folded text,
    so most regexes cost one substring search per body.  None (always run) when no anchor of
    at least four UTF-8 bytes can be derived.
    """
    try:
        parsed = _sre_parse.parse(pattern, 0)
    except re.error:
        return None
    repeats = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, _sre_c.POSSESSIVE_REPEAT}

    def score(cands: tuple[str, ...]) -> tuple[int, int]:
        return min(len(c.encode()) for c in cands), -len(cands)

    def required(items: Any) -> tuple[str, ...] | None:
        best: tuple[str, ...] | None = None

        def consider(cands: tuple[str, ...] | None) -> None:
            nonlocal best
            if cands and all(cands) and (best is None or score(cands) > score(best)):
                best = cands

        run: list[str] = []
        for op, av in items:
            if op is _sre_c.LITERAL:
                run.append(chr(av))
                continue
            consider(("".join(run),) if run else None)
            run = []
            if op is _sre_c.SUBPATTERN:
                consider(required(av[-1]))
            elif op is _sre_c.BRANCH:
                alternatives = [required(b) for b in av[1]]
                if all(alternatives):
                    consider(tuple(dict.fromkeys(a for alt in alternatives if alt for a in alt)))
            elif op in repeats and av[0] >= 1:
                consider(required(av[2]))
        consider(("".join(run),) if run else None)
        return best

    anchors = required(parsed)
    if not anchors:
        return None
    folded = tuple(dict.fromkeys(_fold(a) for a in anchors))
    if min(len(a.encode()) for a in folded) < 4:
        return None
    return folded


def _fold(text: str) -> str:
    """Lower-case for matching: drops the combining dot that lower() adds to 'İ' and turns
    non-breaking spaces (``&nbsp;``, U+00A0) into plain spaces."""
    low = text.lower()
    if "\u0307" in low:
        low = low.replace("\u0307", "")
    if "\xa0" in low:
        low = low.replace("\xa0", " ")
    if "&nbsp;" in low:
        low = low.replace("&nbsp;", " ")
    return low


# --------------------------------------------------------------------------------------------
# Compiled matchers


@dataclass(frozen=True, slots=True)
class _Regex:
    """A compiled regex with its prefilter anchors and maximum match width."""

    index: int
    rx: re.Pattern[str]
    folded: bool  # case-insensitive: searched on the folded text
    anchors: tuple[str, ...] | None
    width: int  # maximum match length; windows around anchors are this wide
    windowed: bool  # safe to search only windows around anchor occurrences

    @classmethod
    def build(cls, index: int, fp: Fingerprint) -> _Regex:
        flags = re.DOTALL | (0 if fp.case_sensitive else re.IGNORECASE)
        parsed = _sre_parse.parse(fp.pattern, 0)
        line_anchors = {_sre_c.AT_BEGINNING, _sre_c.AT_BEGINNING_STRING, _sre_c.AT_END}
        line_anchors |= {_sre_c.AT_END_STRING, _sre_c.AT_BEGINNING_LINE, _sre_c.AT_END_LINE}
        anchored = any(op is _sre_c.AT and av in line_anchors for op, av in _walk_ops(parsed))
        anchors = _regex_anchors(fp.pattern)
        return cls(
            index=index,
            rx=re.compile(fp.pattern, flags),
            folded=not fp.case_sensitive,
            anchors=anchors,
            width=min(parsed.getwidth()[1], 1 << 16),
            windowed=not fp.case_sensitive and anchors is not None and not anchored,
        )

    def search(self, text: str, lowered: str) -> re.Match[str] | None:
        subject = lowered if self.folded else text
        if not self.windowed or len(subject) <= 4 * self.width + 4096:
            return self.rx.search(subject)
        # Every match contains an anchor occurrence and is at most `width` long, so it lies in
        # [q - width, q + len(anchor) + width] around some occurrence q (padded by one character
        # so that \b sees the neighbouring character).  Only the first MAX_ANCHOR_HITS
        # occurrences are tried: this bounds the cost on hostile bodies that repeat an anchor.
        spans: list[tuple[int, int]] = []
        for anchor in self.anchors or ():
            q = subject.find(anchor)
            for _ in range(MAX_ANCHOR_HITS):
                if q < 0:
                    break
                spans.append((max(0, q - self.width - 1), q + len(anchor) + self.width + 1))
                q = subject.find(anchor, q + 1)
        spans.sort()
        del spans[MAX_ANCHOR_HITS:]
        merged: list[list[int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        for lo, hi in merged:
            m = self.rx.search(subject, lo, min(hi, len(subject)))
            if m is not None:
                return m
        return None


def _walk_ops(items: Any) -> Iterable[tuple[Any, Any]]:
    for op, av in items:
        yield op, av
        if op is _sre_c.SUBPATTERN:
            yield from _walk_ops(av[-1])
        elif op is _sre_c.BRANCH:
            for branch in av[1]:
                yield from _walk_ops(branch)
        elif op in (_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT, _sre_c.POSSESSIVE_REPEAT):
            yield from _walk_ops(av[2])


class _TextMatcher:
    """All signatures of one location (or one header name), precompiled by match type."""

    def __init__(self) -> None:
        self.contains_ci: list[tuple[int, str]] = []
        self.contains_cs: list[tuple[int, str]] = []
        self.exact: list[tuple[int, str, bool, bool]] = []  # (index, pattern, is_prefix, ci)
        self.regexes: list[_Regex] = []

    def add(self, index: int, fp: Fingerprint) -> None:
        ci = not fp.case_sensitive
        if fp.match == "contains":
            if ci:
                self.contains_ci.append((index, _fold(fp.pattern)))
            else:
                self.contains_cs.append((index, fp.pattern))
        elif fp.match in ("prefix", "equals"):
            pattern = _fold(fp.pattern) if ci else fp.pattern
            self.exact.append((index, pattern, fp.match == "prefix", ci))
        elif fp.match == "regex":
            self.regexes.append(_Regex.build(index, fp))

    def scan(self, text: str, found: dict[int, re.Match[str] | None]) -> None:
        """Record in *found* the index of every signature matching *text* (first hit wins)."""
        if not text:
            return
        lowered = _fold(text)
        for index, pattern in self.contains_ci:
            if index not in found and pattern in lowered:
                found[index] = None
        for index, pattern in self.contains_cs:
            if index not in found and pattern in text:
                found[index] = None
        if self.exact:
            stripped, stripped_low = text.strip(), lowered.strip()
            for index, pattern, is_prefix, ci in self.exact:
                subject = stripped_low if ci else stripped
                hit = subject.startswith(pattern) if is_prefix else subject == pattern
                if hit and index not in found:
                    found[index] = None
        present: dict[str, bool] = {}
        for entry in self.regexes:
            if entry.index in found:
                continue
            if entry.anchors is not None and not any(
                present[a] if a in present else present.setdefault(a, a in lowered)
                for a in entry.anchors
            ):
                continue
            m = entry.search(text, lowered)
            if m is not None:
                found[entry.index] = m
