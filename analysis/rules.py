"""Verdict rules as versioned data (pure).

Each measurement is classified by the *first* rule of :data:`RULES` whose condition holds for
it.  A rule names the observation class, the mechanism (SPEC §5) and the locus policy; its
``rule_id`` is stored with every verdict so that a verdict can always be traced to the rule
that produced it, and :data:`RULES_VERSION` is bumped whenever a rule is added, removed,
reordered or changes meaning.

Conditions are vectorised: they read :class:`Features`, one numpy array per feature with one
entry per measurement, and return a boolean mask.  Features are computed in
:mod:`analysis.verdicts` (from the record, the fingerprints and the controls); the rules
themselves never look at raw data.

Observation classes:

``ok``
    every step succeeded, the final status is 2xx/3xx, no fingerprint matched and no answer
    is a known block-page address.  Only ``ok`` measurements serve as accessible controls.
``explicit``
    an explicit signal: a block-page or geoblock fingerprint that needs no controls, HTTP 451,
    a DNS answer in a known block-page range.
``weak``
    a fingerprint that counts only against controls that got the page without it
    (``needs_controls``).
``failed``
    a step failed in a way that is interpretable (timeouts, resets, refusals, NXDOMAIN,
    certificate errors) or DNS answers were manipulated.
``differs``
    an HTTP response that fails the comparison with accessible controls.
``challenge``
    a bot challenge: never a denial.
``uninterpretable``
    a failure that says nothing about denial (``http_request_failed``, resolver errors,
    unreachable networks, an error response like the controls').

Locus policies (resolved in :mod:`analysis.attribution`): ``server``, ``local``,
``unknown``, ``none``; ``tls`` — server when the response came over TLS validated for the
name, else unknown; ``blockpage`` — local, or transit to the country a national block page
names when that is not the vantage's; ``weak_blockpage`` — local when the page names no other
country, else unknown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

RULES_VERSION = 1

MECHANISMS: tuple[str, ...] = (
    "none",
    "dns_nxdomain",
    "dns_bogon",
    "dns_inconsistent",
    "tcp_timeout",
    "tcp_refused",
    "tcp_reset",
    "tls_reset",
    "tls_timeout",
    "tls_cert",
    "http_geoblock",
    "http_451",
    "http_geo_redirect",
    "http_blockpage",
    "http_status",
    "http_body",
    "http_timeout",
    "http_reset",
    "route_blackhole",
)
#: Most specific / explicit first: breaks ties when summarising several measurements.
MECHANISM_PRIORITY: tuple[str, ...] = (
    "http_451",
    "http_geoblock",
    "http_geo_redirect",
    "http_blockpage",
    "dns_bogon",
    "dns_inconsistent",
    "dns_nxdomain",
    "tls_cert",
    "route_blackhole",
    "tls_reset",
    "tcp_reset",
    "http_reset",
    "tcp_refused",
    "tls_timeout",
    "tcp_timeout",
    "http_timeout",
    "http_status",
    "http_body",
    "none",
)
LOCI: tuple[str, ...] = ("none", "server", "local", "transit", "unknown")
STATUSES: tuple[str, ...] = ("accessible", "denied", "down", "inconclusive")
CONFIDENCES: tuple[str, ...] = ("confirmed", "likely", "possible")
OBSERVATIONS: tuple[str, ...] = (
    "ok",
    "explicit",
    "weak",
    "failed",
    "differs",
    "challenge",
    "uninterpretable",
)
LOCUS_POLICIES: tuple[str, ...] = (
    "none",
    "server",
    "local",
    "unknown",
    "tls",
    "blockpage",
    "weak_blockpage",
)
#: Observations that may make a measurement ``down`` when nothing reaches the URL anywhere.
DOWN_OBSERVATIONS: frozenset[str] = frozenset({"failed", "differs", "uninterpretable"})

# Step of the first failure.
STEP_NONE, STEP_DNS, STEP_TCP, STEP_TLS, STEP_HTTP = 0, 1, 2, 3, 4
STEP_CODES: dict[str | None, int] = {None: 0, "dns": 1, "tcp": 2, "tls": 3, "http": 4}

# Kinds of failure strings (SPEC §3).
FK_NONE, FK_TIMEOUT, FK_RESET, FK_REFUSED, FK_NXDOMAIN, FK_CERT, FK_OTHER = range(7)

# Fingerprint classes (the strongest match of a response).
FP_NONE, FP_CENSORSHIP, FP_GEOBLOCK, FP_CHALLENGE = 0, 1, 2, 3


def failure_kind(failure: str | None) -> int:
    """The kind (``FK_*``) of a failure string."""
    if failure is None:
        return FK_NONE
    if failure == "generic_timeout_error":
        return FK_TIMEOUT
    if failure in ("connection_reset", "eof_error"):
        return FK_RESET
    if failure == "connection_refused":
        return FK_REFUSED
    if failure == "dns_nxdomain_error":
        return FK_NXDOMAIN
    if failure in ("ssl_invalid_hostname", "ssl_unknown_authority", "ssl_invalid_certificate"):
        return FK_CERT
    return FK_OTHER


@dataclass(frozen=True)
class Features:
    """Per-measurement inputs of the rules (numpy arrays of equal length)."""

    step: np.ndarray  # int8, STEP_*: step of the first failure
    fkind: np.ndarray  # int8, FK_*: kind of that failure
    status: np.ndarray  # int16, final HTTP status, -1 when there is none
    fp: np.ndarray  # int8, FP_*: strongest fingerprint class of the response
    fp_needs: np.ndarray  # bool: that fingerprint needs controls
    redirected: np.ndarray  # bool: the response was reached through redirects
    dns_blockpage: np.ndarray  # bool: an answer is a known block-page address
    dns_blockpage_bogon: np.ndarray  # bool: ... and that address is a bogon
    dns_bogon: np.ndarray  # bool: a bogon answer while controls for the name get none
    dns_inconsistent: np.ndarray  # bool: answers disjoint from the controls' by IP and ASN
    ctrl_2xx: np.ndarray  # bool: an accessible control within the window got 2xx
    body_differs: np.ndarray  # bool: body, title and headers differ from every control's

    def __post_init__(self) -> None:
        n = {len(getattr(self, f.name)) for f in fields(self)}
        if len(n) > 1:
            raise ValueError("features of unequal length")

    def __len__(self) -> int:
        return len(self.step)

    @classmethod
    def empty(cls, n: int) -> Features:
        """Features of ``n`` measurements with nothing observed (tests build on this)."""
        return cls(
            step=np.zeros(n, np.int8),
            fkind=np.zeros(n, np.int8),
            status=np.full(n, 200, np.int16),
            fp=np.zeros(n, np.int8),
            fp_needs=np.zeros(n, bool),
            redirected=np.zeros(n, bool),
            dns_blockpage=np.zeros(n, bool),
            dns_blockpage_bogon=np.zeros(n, bool),
            dns_bogon=np.zeros(n, bool),
            dns_inconsistent=np.zeros(n, bool),
            ctrl_2xx=np.zeros(n, bool),
            body_differs=np.zeros(n, bool),
        )

    def take(self, rows: np.ndarray) -> Features:
        """The features of ``rows`` only."""
        return Features(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    def responded(self) -> np.ndarray:
        return self.status >= 0

    def success_status(self) -> np.ndarray:
        return (self.status >= 200) & (self.status < 400)

    def strong(self, kind: int) -> np.ndarray:
        return (self.fp == kind) & ~self.fp_needs

    def explicit(self) -> np.ndarray:
        """An explicit signal anywhere in the measurement (what makes a denial confirmed)."""
        return (
            self.strong(FP_CENSORSHIP)
            | self.strong(FP_GEOBLOCK)
            | (self.status == 451)
            | self.dns_blockpage
        )


Condition = Callable[[Features], np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One verdict rule: when ``when`` holds, the measurement gets these labels."""

    rule_id: str
    observation: str
    mechanism: str
    locus: str
    when: Condition
    doc: str

    def __post_init__(self) -> None:
        if self.observation not in OBSERVATIONS:
            raise ValueError(f"{self.rule_id}: bad observation {self.observation!r}")
        if self.mechanism not in MECHANISMS:
            raise ValueError(f"{self.rule_id}: bad mechanism {self.mechanism!r}")
        if self.locus not in LOCUS_POLICIES:
            raise ValueError(f"{self.rule_id}: bad locus policy {self.locus!r}")


def _step(step: int, *kinds: int) -> Condition:
    if not kinds:
        return lambda f: f.step == step
    return lambda f: (f.step == step) & np.isin(f.fkind, kinds)


def _dns_ok(f: Features) -> np.ndarray:
    return f.step != STEP_DNS


def _error_status(f: Features) -> np.ndarray:
    return (f.step == STEP_NONE) & f.responded() & ~f.success_status()


RULES: tuple[Rule, ...] = (
    Rule(
        "ok",
        "ok",
        "none",
        "none",
        lambda f: (f.step == STEP_NONE) & f.success_status() & (f.fp == FP_NONE) & ~f.dns_blockpage,
        "Every step succeeded with a 2xx/3xx status; no fingerprint, no block-page address.",
    ),
    # -- DNS: the first step, so it takes precedence over what follows it
    Rule(
        "dns.nxdomain",
        "failed",
        "dns_nxdomain",
        "local",
        _step(STEP_DNS, FK_NXDOMAIN),
        "The vantage's resolver says the name does not exist.",
    ),
    Rule(
        "dns.failure",
        "uninterpretable",
        "none",
        "unknown",
        _step(STEP_DNS),
        "Another resolver failure (timeout, SERVFAIL, refused, no answer): not interpretable.",
    ),
    Rule(
        "dns.blockpage_ip.bogon",
        "explicit",
        "dns_bogon",
        "local",
        lambda f: _dns_ok(f) & f.dns_blockpage & f.dns_blockpage_bogon,
        "An answer is a known block-page address in a bogon range.",
    ),
    Rule(
        "dns.blockpage_ip",
        "explicit",
        "dns_inconsistent",
        "local",
        lambda f: _dns_ok(f) & f.dns_blockpage,
        "An answer is a known block-page address.",
    ),
    Rule(
        "dns.bogon",
        "failed",
        "dns_bogon",
        "local",
        lambda f: _dns_ok(f) & f.dns_bogon,
        "A bogon answer while controls for the same name get none (and no valid certificate).",
    ),
    Rule(
        "dns.inconsistent",
        "failed",
        "dns_inconsistent",
        "local",
        lambda f: _dns_ok(f) & f.dns_inconsistent,
        "Answers disjoint from the controls' by address and AS, no valid certificate there.",
    ),
    # -- TCP
    Rule(
        "tcp.refused",
        "failed",
        "tcp_refused",
        "unknown",
        _step(STEP_TCP, FK_REFUSED),
        "The connection was refused.",
    ),
    Rule(
        "tcp.timeout",
        "failed",
        "tcp_timeout",
        "unknown",
        _step(STEP_TCP, FK_TIMEOUT),
        "The connection timed out.",
    ),
    Rule(
        "tcp.reset",
        "failed",
        "tcp_reset",
        "unknown",
        _step(STEP_TCP, FK_RESET),
        "The connection was reset.",
    ),
    Rule(
        "tcp.failure",
        "uninterpretable",
        "none",
        "unknown",
        _step(STEP_TCP),
        "Another connect failure (unreachable host or network): not interpretable.",
    ),
    # -- TLS
    Rule(
        "tls.reset",
        "failed",
        "tls_reset",
        "unknown",
        _step(STEP_TLS, FK_RESET),
        "The TLS handshake was reset or cut (EOF).",
    ),
    Rule(
        "tls.timeout",
        "failed",
        "tls_timeout",
        "unknown",
        _step(STEP_TLS, FK_TIMEOUT),
        "The TLS handshake timed out.",
    ),
    Rule(
        "tls.cert",
        "failed",
        "tls_cert",
        "local",
        _step(STEP_TLS, FK_CERT),
        "The certificate is not valid for the name (interception or a block page).",
    ),
    Rule(
        "tls.failure",
        "uninterpretable",
        "none",
        "unknown",
        _step(STEP_TLS),
        "Another handshake failure: not interpretable.",
    ),
    # -- HTTP failures
    Rule(
        "http.reset",
        "failed",
        "http_reset",
        "unknown",
        _step(STEP_HTTP, FK_RESET),
        "The HTTP exchange was reset or cut (EOF).",
    ),
    Rule(
        "http.timeout",
        "failed",
        "http_timeout",
        "unknown",
        _step(STEP_HTTP, FK_TIMEOUT),
        "The HTTP exchange timed out.",
    ),
    Rule(
        "http.failure",
        "uninterpretable",
        "none",
        "unknown",
        _step(STEP_HTTP),
        "Another HTTP failure (http_request_failed ...): not interpretable.",
    ),
    # -- responses (every step succeeded)
    Rule(
        "http.blockpage",
        "explicit",
        "http_blockpage",
        "blockpage",
        lambda f: f.strong(FP_CENSORSHIP),
        "A national or ISP block page (fingerprint that needs no controls).",
    ),
    Rule(
        "http.451",
        "explicit",
        "http_451",
        "server",
        lambda f: f.status == 451,
        "HTTP 451 Unavailable For Legal Reasons.",
    ),
    Rule(
        "http.geo_redirect",
        "explicit",
        "http_geo_redirect",
        "server",
        lambda f: f.strong(FP_GEOBLOCK) & f.redirected,
        "A geoblock page reached through a redirect.",
    ),
    Rule(
        "http.geoblock",
        "explicit",
        "http_geoblock",
        "server",
        lambda f: f.strong(FP_GEOBLOCK),
        "A geoblock page of the site or its CDN (fingerprint that needs no controls).",
    ),
    Rule(
        "http.blockpage.weak",
        "weak",
        "http_blockpage",
        "weak_blockpage",
        lambda f: f.fp == FP_CENSORSHIP,
        "Block-page wording that counts only against accessible controls.",
    ),
    Rule(
        "http.geo_redirect.weak",
        "weak",
        "http_geo_redirect",
        "server",
        lambda f: (f.fp == FP_GEOBLOCK) & f.redirected,
        "Geoblock wording after a redirect, counting only against accessible controls.",
    ),
    Rule(
        "http.geoblock.weak",
        "weak",
        "http_geoblock",
        "server",
        lambda f: f.fp == FP_GEOBLOCK,
        "Geoblock wording that counts only against accessible controls.",
    ),
    Rule(
        "http.challenge",
        "challenge",
        "none",
        "unknown",
        lambda f: f.fp == FP_CHALLENGE,
        "A bot challenge page: never a denial.",
    ),
    Rule(
        "http.status",
        "differs",
        "http_status",
        "tls",
        lambda f: _error_status(f) & f.ctrl_2xx,
        "An error status where an accessible control got 2xx.",
    ),
    Rule(
        "http.body",
        "differs",
        "http_body",
        "tls",
        lambda f: _error_status(f) & f.body_differs,
        "An error response whose body length, headers and title all differ from the controls'.",
    ),
    Rule(
        "http.error",
        "uninterpretable",
        "none",
        "unknown",
        _error_status,
        "An error response like the controls' (or none to compare with).",
    ),
    Rule(
        "no_response",
        "uninterpretable",
        "none",
        "unknown",
        lambda f: np.ones(len(f), bool),
        "No failure and no response (steps hidden by a proxy, incomplete record).",
    ),
)

RULE_IDS: tuple[str, ...] = tuple(r.rule_id for r in RULES)
RULES_BY_ID: dict[str, Rule] = {r.rule_id: r for r in RULES}
if len(RULES_BY_ID) != len(RULES):  # pragma: no cover - a static property of the table
    raise RuntimeError("duplicate rule ids")


def classify(features: Features) -> np.ndarray:
    """Index into :data:`RULES` of the first rule that holds, per measurement (int16)."""
    n = len(features)
    out = np.full(n, -1, np.int16)
    todo = np.ones(n, bool)
    for i, rule in enumerate(RULES):
        hit = todo & np.asarray(rule.when(features), bool)
        out[hit] = i
        todo &= ~hit
        if not todo.any():
            break
    return out


def rule_table() -> list[dict[str, str]]:
    """The rules as plain data (for documentation and ``analysis.json``)."""
    return [
        {
            "rule_id": r.rule_id,
            "observation": r.observation,
            "mechanism": r.mechanism,
            "locus": r.locus,
            "doc": r.doc,
        }
        for r in RULES
    ]


__all__ = [
    "CONFIDENCES",
    "DOWN_OBSERVATIONS",
    "LOCI",
    "LOCUS_POLICIES",
    "MECHANISMS",
    "MECHANISM_PRIORITY",
    "OBSERVATIONS",
    "RULES",
    "RULES_BY_ID",
    "RULES_VERSION",
    "RULE_IDS",
    "STATUSES",
    "Features",
    "Rule",
    "classify",
    "failure_kind",
    "rule_table",
]
