"""OONI's public API as an import source: paged search, rate limited, cached.

:class:`OoniApi` lists measurements with ``/api/v1/measurements`` (following the API's own
``next_url`` when it stays on the API host, else by ``offset``) and fetches each one's raw data
with ``/api/v1/raw_measurement`` (falling back to ``/api/v1/measurement_meta?full=true``).
Requests are spaced by ``min_interval`` seconds, retried a bounded number of times on 429/5xx
and transport errors (honouring ``Retry-After`` up to a cap), time out, and read at most
``max_bytes`` per response.  Raw measurements never change, so they are cached on disk
(``cache_dir``): an import run twice asks the API only for the list.

The HTTP client is injected (``httpx.Client``), so tests drive the whole thing through
``httpx.MockTransport`` with recorded responses and never touch the network; sleeping and the
clock are injected too.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from probe._version import __version__
from probe.errors import ConfigError, DatasetError
from probe.imports.ooni import WEB_CONNECTIVITY, unwrap
from probe.imports.writer import ImportRun, ImportSummary, add_ooni_record

__all__ = ["DEFAULT_BASE_URL", "ApiQuery", "OoniApi", "import_ooni_api"]

DEFAULT_BASE_URL = "https://api.ooni.io"
MAX_BYTES = 64 << 20
MAX_RETRY_AFTER = 120.0
_DOMAIN_RE = re.compile(r"^[a-z0-9.-]{1,253}$")
_SAFE_RE = re.compile(r"[^A-Za-z0-9_.-]")


TOO_LARGE = -1  # pseudo status of a response over ``max_bytes``
MAX_CONSECUTIVE_FAILURES = 3


class ApiUnavailable(DatasetError):
    """The API could not be reached or kept failing."""


class _TooLarge(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ApiQuery:
    """What to list: validated search parameters."""

    probe_cc: str
    since: date | None = None
    until: date | None = None
    domain: str | None = None
    test_name: str = WEB_CONNECTIVITY
    page_size: int = 100
    max_results: int = 1000

    @classmethod
    def build(
        cls,
        probe_cc: str,
        since: str | date | None = None,
        until: str | date | None = None,
        domain: str | None = None,
        *,
        page_size: int = 100,
        max_results: int = 1000,
    ) -> ApiQuery:
        cc = (probe_cc or "").strip().upper()
        if len(cc) != 2 or not cc.isalpha():
            raise ConfigError(f"--probe-cc {probe_cc!r}: expected a two-letter country code")
        s, u = _date(since, "--since"), _date(until, "--until")
        if s and u and s > u:
            raise ConfigError(f"--since {s} is after --until {u}")
        d = None
        if domain:
            d = domain.strip().lower().rstrip(".")
            if "://" in d or not _DOMAIN_RE.match(d):
                raise ConfigError(f"--domain {domain!r}: expected a host name like example.org")
        if not 1 <= page_size <= 1000:
            raise ConfigError("page size must be between 1 and 1000")
        if max_results < 1:
            raise ConfigError("max results must be at least 1")
        return cls(cc, s, u, d, WEB_CONNECTIVITY, page_size, max_results)

    def params(self, offset: int) -> dict[str, str]:
        p = {
            "probe_cc": self.probe_cc,
            "test_name": self.test_name,
            "limit": str(self.page_size),
            "offset": str(offset),
            "order_by": "measurement_start_time",
            "order": "asc",
        }
        if self.since:
            p["since"] = self.since.isoformat()
        if self.until:
            p["until"] = self.until.isoformat()
        if self.domain:
            p["domain"] = self.domain
        return p


def _date(value: str | date | None, flag: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(f"{flag} {value!r}: expected a date YYYY-MM-DD") from None


class OoniApi:
    """A polite client of OONI's API (one instance per import)."""

    def __init__(
        self,
        client: httpx.Client,
        *,
        base_url: str = DEFAULT_BASE_URL,
        cache_dir: Path | None = None,
        min_interval: float = 1.0,
        max_retries: int = 3,
        max_bytes: int = MAX_BYTES,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.base_url = base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc
        self.cache_dir = cache_dir
        self.min_interval = min_interval
        self.max_retries = max_retries
        self.max_bytes = max_bytes
        self._sleep = sleep
        self._clock = clock
        self._last: float | None = None
        self.requests = 0
        self.cache_hits = 0

    # -- HTTP ---------------------------------------------------------------------------------

    def _wait_turn(self) -> None:
        if self._last is not None:
            delay = self._last + self.min_interval - self._clock()
            if delay > 0:
                self._sleep(delay)
        self._last = self._clock()

    def _get(self, url: str, params: dict[str, str] | None = None) -> tuple[int, bytes]:
        """GET with spacing, bounded retries and a size cap: ``(status, body)``.

        Raises :class:`ApiUnavailable` when every attempt failed at the transport level or
        with 429/5xx.
        """
        why = ""
        for attempt in range(self.max_retries + 1):
            self._wait_turn()
            self.requests += 1
            retry_after: float | None = None
            try:
                with self.client.stream("GET", url, params=params) as resp:
                    if resp.status_code == 429 or resp.status_code >= 500:
                        why = f"HTTP {resp.status_code}"
                        retry_after = _retry_after(resp.headers.get("retry-after"))
                    else:
                        return resp.status_code, self._read(resp)
            except _TooLarge:
                return TOO_LARGE, b""
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"[:200]
            if attempt < self.max_retries:
                self._sleep(min(MAX_RETRY_AFTER, retry_after or 2.0 ** (attempt + 1)))
        raise ApiUnavailable(f"OONI API unavailable at {url} ({why})")

    def _read(self, resp: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        n = 0
        for chunk in resp.iter_bytes():
            n += len(chunk)
            if n > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _json(self, url: str, params: dict[str, str] | None = None) -> tuple[int, object | None]:
        """``(status, JSON body)``; the body is ``None`` unless a 200 answer decoded."""
        status, body = self._get(url, params)
        if status != 200:
            return status, None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    # -- search -------------------------------------------------------------------------------

    def search(self, query: ApiQuery) -> Iterator[dict[str, Any]]:
        """Every result of ``query`` (metadata rows), page by page, up to ``max_results``."""
        url = f"{self.base_url}/api/v1/measurements"
        params: dict[str, str] | None = query.params(0)
        offset = 0
        seen = 0
        for _page in range(query.max_results // max(query.page_size, 1) + 2):
            status, doc = self._json(url, params)
            if not isinstance(doc, dict):
                what = f"HTTP {status}" if status != 200 else "not a JSON object"
                raise ApiUnavailable(f"OONI API: unexpected answer to the search ({what})")
            results = doc.get("results")
            if not isinstance(results, list) or not results:
                return
            for r in results:
                if isinstance(r, dict):
                    yield r
                    seen += 1
                    if seen >= query.max_results:
                        return
            if len(results) < query.page_size:
                return
            offset += len(results)
            meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
            nxt = meta.get("next_url") if isinstance(meta, dict) else None
            if isinstance(nxt, str) and urlsplit(nxt).netloc == self._host:
                url, params = nxt, None
            else:
                url, params = f"{self.base_url}/api/v1/measurements", query.params(offset)

    # -- raw measurements ---------------------------------------------------------------------

    def _cache_path(self, uid: str) -> Path | None:
        if self.cache_dir is None:
            return None
        digest = hashlib.sha256(uid.encode()).hexdigest()
        return self.cache_dir / "raw" / digest[:2] / f"{_SAFE_RE.sub('_', uid)[:100]}.json.gz"

    def _cache_get(self, uid: str) -> object | None:
        p = self._cache_path(uid)
        if p is None or not p.is_file():
            return None
        try:
            with gzip.open(p, "rb") as f:
                return json.loads(f.read(self.max_bytes))
        except (OSError, ValueError, EOFError):
            return None  # a damaged cache entry is fetched again

    def _cache_put(self, uid: str, raw: object) -> None:
        p = self._cache_path(uid)
        if p is None:
            return
        tmp = p.with_name(f".{p.name}.tmp")
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(tmp, "wb") as f:
                f.write(json.dumps(raw, separators=(",", ":")).encode())
            os.replace(tmp, p)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def raw_measurement(self, uid: str) -> object | None:
        """The raw measurement ``uid`` (cached), or ``None`` when the API does not have it."""
        cached = self._cache_get(uid)
        if cached is not None:
            self.cache_hits += 1
            return cached
        _s, raw = self._json(f"{self.base_url}/api/v1/raw_measurement", {"measurement_uid": uid})
        if not isinstance(raw, dict):
            _s, meta = self._json(
                f"{self.base_url}/api/v1/measurement_meta",
                {"measurement_uid": uid, "full": "true"},
            )
            raw = unwrap(meta) if isinstance(meta, dict) else None
        if not isinstance(raw, dict) or "test_keys" not in raw:
            return None
        raw.setdefault("measurement_uid", uid)
        self._cache_put(uid, raw)
        return raw


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, min(MAX_RETRY_AFTER, float(value)))
    except ValueError:
        return None


def default_client() -> httpx.Client:
    """The client used outside tests: bounded timeouts, no redirects, an honest User-Agent."""
    return httpx.Client(
        timeout=httpx.Timeout(30.0, connect=10.0),
        follow_redirects=False,
        headers={"User-Agent": f"res64-probe/{__version__} (+ooni import)"},
    )


def import_ooni_api(
    out: Path,
    *,
    probe_cc: str,
    since: str | date | None = None,
    until: str | date | None = None,
    domain: str | None = None,
    client: httpx.Client | None = None,
    cache_dir: Path | None = None,
    campaign: str = "ooni",
    base_url: str = DEFAULT_BASE_URL,
    max_results: int = 1000,
    page_size: int = 100,
    min_interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportSummary:
    """List Web Connectivity measurements of ``probe_cc`` and import each one into ``out``.

    Measurements already in the dataset are not fetched again; those the API cannot provide
    are counted as ``unavailable``.  ``client`` defaults to :func:`default_client` (a live
    client: tests always pass one built on ``httpx.MockTransport``).
    """
    query = ApiQuery.build(
        probe_cc, since, until, domain, page_size=page_size, max_results=max_results
    )
    own = client is None
    http = client if client is not None else default_client()
    api = OoniApi(
        http, base_url=base_url, cache_dir=cache_dir, min_interval=min_interval, sleep=sleep
    )
    config = {
        "api": base_url,
        "query": {
            "probe_cc": query.probe_cc,
            "since": query.since.isoformat() if query.since else None,
            "until": query.until.isoformat() if query.until else None,
            "domain": query.domain,
            "test_name": query.test_name,
            "max_results": query.max_results,
        },
    }
    run = ImportRun(out, campaign, "ooni-api", config)
    s = run.summary
    status = "failed"
    try:
        seen = run.seen("measurements")
        failures = 0
        for item in api.search(query):
            uid = item.get("measurement_uid")
            test = item.get("test_name")
            if isinstance(test, str) and test != WEB_CONNECTIVITY:
                s.records += 1
                s.skipped[test] += 1
                continue
            if not isinstance(uid, str) or not uid:
                s.records += 1
                s.refused += 1
                s.problem("search result", "no measurement_uid")
                continue
            if uid in seen:
                s.records += 1
                s.duplicates += 1
                continue
            try:
                raw = api.raw_measurement(uid)
                failures = 0
            except ApiUnavailable as exc:
                failures += 1
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    raise
                s.unavailable += 1
                s.problem(uid, str(exc))
                continue
            if raw is None:
                s.unavailable += 1
                s.problem(uid, "raw measurement not available from the API")
                continue
            add_ooni_record(run, uid, raw)
        status = "complete"
    finally:
        if own:
            http.close()
        run.manifest.config["api_requests"] = api.requests
        run.manifest.config["cache_hits"] = api.cache_hits
        summary = run.finish(status)
    return summary
