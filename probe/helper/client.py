"""Client of the control helper: send URLs, receive control measurements as they finish.

::

    async with fetch_controls(url, token, urls, ca_bundle=ca, timeout=30) as rows:
        async for row in rows:          # one dict per measurement, MEASUREMENTS columns
            ...
    rows.outcome.missing                # URLs without a control record, and why (outcome.error)

Every failure — helper unreachable, TLS, 401, 429, a stream that dies half-way, garbage on
the wire — ends the iteration and is recorded in :class:`ControlsOutcome`; no exception escapes
(cancellation excepted).  Each row is validated against :data:`probe.schema.MEASUREMENTS`:
unknown keys are dropped, values are converted back (base64 → bytes, ISO-8601 → datetime) and
checked; a bad value becomes null and is named in ``import_note``.  ``is_control`` is set to
True and ``data_source`` to ``"helper"`` whatever the helper says.  Lines are bounded
(``max_line_bytes``), so is the number of rows (one per URL asked), and only URLs that were
asked for are accepted.

Timeouts: ``timeout`` bounds connecting and every read (the helper sends an empty heartbeat
line every 15 s while it measures, so use more than that); a batch as a whole may take at most
``timeout × (URLs in the batch + 2)`` seconds.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import ssl
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pyarrow as pa
import trio

from probe.config import is_loopback, redact_url
from probe.records import Measurement
from probe.schema import MEASUREMENTS
from probe.targets import normalise_url

log = logging.getLogger("probe.helper")

DATA_SOURCE = "helper"
DEFAULT_BATCH = 100
MAX_LINE_BYTES = 1 << 20
MAX_ERROR_BODY = 4096
MAX_REASON_CHARS = 200

# error kinds of ControlsOutcome.error
BAD_HELPER_URL = "bad_helper_url"
UNREACHABLE = "unreachable"
TLS_ERROR = "tls_error"
TIMEOUT = "timeout"
UNAUTHORIZED = "unauthorized"
RATE_LIMITED = "rate_limited"
TOO_MANY_URLS = "too_many_urls"
BAD_REQUEST = "bad_request"
STREAM_BROKEN = "stream_broken"
PROTOCOL_ERROR = "protocol_error"
INTERNAL_ERROR = "internal_error"
NOT_SENT = "not_sent"  # reason for URLs of batches never sent after an error
INVALID_URL = "invalid_url"

_COLUMN_TYPES: dict[str, pa.DataType] = {f.name: f.type for f in MEASUREMENTS}
_REQUIRED = ("measurement_id", "url", "started_at")
_FIELD_NAMES = frozenset(f.name for f in Measurement.__dataclass_fields__.values())


@dataclass
class ControlsOutcome:
    """What a :func:`fetch_controls` call obtained; complete once iteration has ended."""

    helper: str
    requested: int = 0
    received: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # url -> reason, never measured
    error: str | None = None  # first error kind (module constants), None when all went well
    message: str | None = None  # the helper's error message or the exception, for humans
    status: int | None = None  # HTTP status of the failing response
    retry_after: float | None = None  # seconds, from a 429
    malformed: int = 0  # lines or rows dropped (bad JSON, bad row, URL not asked, duplicate)
    received_urls: set[str] = field(default_factory=set, repr=False)
    requested_urls: list[str] = field(default_factory=list, repr=False)

    @property
    def missing(self) -> int:
        """URLs asked for that have no control record (refused, failed or never answered)."""
        return max(0, self.requested - self.received)

    @property
    def missing_urls(self) -> list[str]:
        return [u for u in self.requested_urls if u not in self.received_urls]

    @property
    def complete(self) -> bool:
        return self.error is None and self.missing == 0

    def describe(self) -> str:
        """One line for the console, e.g. ``controls missing: 3 (unauthorized)``."""
        if self.missing == 0 and self.error is None:
            return f"controls: {self.received} received from {self.helper}"
        why = self.error or ", ".join(sorted(set(self.refused.values()))) or "unknown"
        return f"controls missing: {self.missing} of {self.requested} from {self.helper} ({why})"


# --------------------------------------------------------------------------------------------
# Row decoding (pure)


def decode_row(obj: Any) -> dict[str, Any] | None:
    """A JSON object from the helper → a ``measurements`` row dict, or None if unusable.

    Keeps only schema columns; converts and checks each value by its Arrow type; a value that
    does not fit becomes null (``[]`` for lists) and is named in ``import_note``.  A row without
    a valid ``measurement_id``, ``url`` or ``started_at`` is rejected.
    """
    if not isinstance(obj, dict):
        return None
    row: dict[str, Any] = {}
    bad: list[str] = []
    for name, typ in _COLUMN_TYPES.items():
        raw = obj.get(name)
        if raw is None:
            row[name] = [] if pa.types.is_list(typ) else None
            continue
        try:
            row[name] = _convert(raw, typ)
        except (TypeError, ValueError, OverflowError, binascii.Error):
            row[name] = [] if pa.types.is_list(typ) else None
            bad.append(name)
    if any(not row.get(k) for k in _REQUIRED) or len(row["measurement_id"]) > 64:
        return None
    row["is_control"] = True
    row["data_source"] = DATA_SOURCE
    if row.get("rep") is None:
        row["rep"] = 0
    if bad:
        note = "helper: invalid " + ",".join(bad)
        row["import_note"] = f"{row['import_note']}; {note}" if row.get("import_note") else note
    return row


def _convert(v: Any, typ: pa.DataType) -> Any:
    if pa.types.is_string(typ):
        if not isinstance(v, str):
            raise TypeError("string expected")
        return v
    if pa.types.is_boolean(typ):
        if not isinstance(v, bool):
            raise TypeError("bool expected")
        return v
    if pa.types.is_integer(typ):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError("int expected")
        limit = 1 << (typ.bit_width - 1)
        if not -limit <= v < limit:
            raise ValueError("out of range")
        return v
    if pa.types.is_floating(typ):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise TypeError("number expected")
        return float(v)
    if pa.types.is_timestamp(typ):
        if not isinstance(v, str) or len(v) > 64:
            raise TypeError("ISO-8601 string expected")
        dt = datetime.fromisoformat(v)
        if dt.tzinfo is None:
            raise ValueError("timestamp without time zone")
        return dt.astimezone(UTC)
    if pa.types.is_binary(typ):
        if not isinstance(v, str):
            raise TypeError("base64 string expected")
        return base64.b64decode(v, validate=True)
    if pa.types.is_list(typ):
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise TypeError("list of strings expected")
        return list(v)
    raise TypeError(f"unsupported column type {typ}")


def rows_to_measurements(
    rows: Iterable[Mapping[str, Any]], *, campaign: str | None = None, run_id: str | None = None
) -> list[Measurement]:
    """Rows from :func:`fetch_controls` → :class:`Measurement` records (lists become tuples).

    ``campaign``/``run_id`` replace the helper's values (store controls with the local run).
    """
    out = []
    for row in rows:
        kw = {
            k: tuple(v) if isinstance(v, list) else v for k, v in row.items() if k in _FIELD_NAMES
        }
        if campaign is not None:
            kw["campaign"] = campaign
        if run_id is not None:
            kw["run_id"] = run_id
        out.append(Measurement(**kw))
    return out


# --------------------------------------------------------------------------------------------
# The client


def fetch_controls(
    helper_url: str,
    token: str,
    urls: list[str],
    *,
    ca_bundle: Path | None,
    timeout: float,
    source: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    max_line_bytes: int = MAX_LINE_BYTES,
    transport: httpx.AsyncBaseTransport | None = None,
) -> ControlFetch:
    """Ask the helper at ``helper_url`` to measure ``urls``; iterate the rows as they arrive.

    ``ca_bundle``: trust only these CAs (else the system's); ``source``: local address to bind;
    URLs are sent in batches of ``batch_size`` (the helper's per-request cap, default 100).
    Use as ``async with fetch_controls(...) as rows: async for row in rows`` and read
    ``rows.outcome`` afterwards.
    """
    return ControlFetch(
        helper_url,
        token,
        urls,
        ca_bundle=ca_bundle,
        timeout=timeout,
        source=source,
        batch_size=batch_size,
        max_line_bytes=max_line_bytes,
        transport=transport,
    )


class _Stop(Exception):
    """Ends the current batch with an error kind (internal to ControlFetch)."""

    def __init__(self, kind: str, message: str | None = None, status: int | None = None):
        super().__init__(kind)
        self.kind = kind
        self.message = message
        self.status = status


class ControlFetch:
    """Async iterator of control rows and async context manager; see :func:`fetch_controls`."""

    def __init__(
        self,
        helper_url: str,
        token: str,
        urls: list[str],
        *,
        ca_bundle: Path | None,
        timeout: float,
        source: str | None,
        batch_size: int,
        max_line_bytes: int,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.outcome = ControlsOutcome(helper=_redacted(helper_url))
        self._token = token
        self._timeout = timeout
        self._max_line = max_line_bytes
        self._client: httpx.AsyncClient | None = None
        self._response: httpx.Response | None = None
        self._chunks: AsyncIterator[bytes] | None = None
        self._buf = bytearray()
        self._batch: set[str] = set()
        self._summary_seen = False
        self._deadline = math.inf
        self._done = False
        seen: set[str] = set()
        valid: list[str] = []
        for raw in urls:
            try:
                u = normalise_url(raw)
            except (ValueError, TypeError):
                self.outcome.requested += 1
                self.outcome.requested_urls.append(str(raw))
                self.outcome.refused[str(raw)] = INVALID_URL
                continue
            if u not in seen:
                seen.add(u)
                valid.append(u)
        self.outcome.requested += len(valid)
        self.outcome.requested_urls += valid
        size = max(1, batch_size)
        self._batches = [valid[i : i + size] for i in range(0, len(valid), size)]
        self._endpoint = ""
        try:
            self._endpoint = _endpoint(helper_url)
        except ValueError as exc:
            self._fail(BAD_HELPER_URL, str(exc))
            return
        try:
            self._client = self._make_client(ca_bundle, source, transport)
        except (OSError, ssl.SSLError) as exc:
            self._fail(TLS_ERROR, f"--ca-bundle {ca_bundle}: {exc}")

    def _make_client(
        self, ca_bundle: Path | None, source: str | None, transport: httpx.AsyncBaseTransport | None
    ) -> httpx.AsyncClient:
        if transport is None:
            ctx = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
            transport = httpx.AsyncHTTPTransport(verify=ctx, local_address=source, retries=0)
        return httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(self._timeout),
            trust_env=False,
            follow_redirects=False,
            headers={"Authorization": f"Bearer {self._token}", "User-Agent": "res64-probe"},
        )

    # -- iteration -----------------------------------------------------------------------------

    def __aiter__(self) -> ControlFetch:
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            while not self._done:
                if self._response is None:
                    if not self._batches:
                        await self.aclose()
                        break
                    await self._open(self._batches.pop(0))
                    continue
                row = await self._next_row()
                if row is not None:
                    return row
        except _Stop as stop:
            self._fail(stop.kind, stop.message, stop.status)
            await self.aclose()
        except Exception as exc:  # a bug: report it as data, never let it escape
            log.exception("helper client: unexpected error")
            self._fail(INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            await self.aclose()
        raise StopAsyncIteration

    async def __aenter__(self) -> ControlFetch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection; URLs not received so far stay missing."""
        self._done = True
        with trio.CancelScope(shield=True), trio.move_on_after(5):
            await self._close_response()
            if self._client is not None:
                client, self._client = self._client, None
                try:
                    await client.aclose()
                except Exception:
                    log.debug("helper client: close failed", exc_info=True)

    async def _close_response(self) -> None:
        chunks, self._chunks = self._chunks, None
        response, self._response = self._response, None
        try:
            if chunks is not None:
                await chunks.aclose()  # type: ignore[attr-defined]
            if response is not None:
                await response.aclose()
        except Exception:
            log.debug("helper client: closing a response failed", exc_info=True)

    def _fail(self, kind: str, message: str | None = None, status: int | None = None) -> None:
        if self.outcome.error is None:
            self.outcome.error = kind
            self.outcome.message = (message or "")[:MAX_ERROR_BODY] or None
            self.outcome.status = status
        self._done = True
        for batch in self._batches:
            for u in batch:
                self.outcome.refused.setdefault(u, NOT_SENT)
        self._batches = []

    # -- one batch -----------------------------------------------------------------------------

    async def _open(self, batch: list[str]) -> None:
        assert self._client is not None
        self._batch = set(batch)
        self._summary_seen = False
        self._buf.clear()
        self._deadline = trio.current_time() + self._timeout * (len(batch) + 2)
        request = self._client.build_request(
            "POST", self._endpoint, json={"urls": batch}, headers={"Accept": "application/x-ndjson"}
        )
        with trio.move_on_at(self._deadline) as scope:
            try:
                response = await self._client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _Stop(_error_kind(exc), _exc_text(_root_cause(exc))) from None
        if scope.cancelled_caught:
            raise _Stop(TIMEOUT, "no response in time")
        self._response = response
        if response.status_code != 200:
            await self._reject(response)
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        if ctype != "application/x-ndjson" or encoding not in ("", "identity"):
            raise _Stop(PROTOCOL_ERROR, f"unexpected response type {ctype!r} ({encoding})", 200)
        # Identity encoding checked above: aiter_bytes decodes nothing (no decompression bomb).
        self._chunks = response.aiter_bytes()

    async def _reject(self, response: httpx.Response) -> None:
        status = response.status_code
        body = response.content if response.is_stream_consumed else b""
        with trio.move_on_at(min(self._deadline, trio.current_time() + self._timeout)):
            try:
                async for chunk in () if response.is_stream_consumed else response.aiter_raw():
                    body += chunk
                    if len(body) > MAX_ERROR_BODY:
                        break
            except httpx.HTTPError:
                pass
        message = _error_message(body[:MAX_ERROR_BODY]) or response.reason_phrase
        if status == 429:
            self.outcome.retry_after = _retry_after(response.headers.get("retry-after"))
        kind = {
            401: UNAUTHORIZED,
            403: UNAUTHORIZED,
            429: RATE_LIMITED,
            413: TOO_MANY_URLS,
            400: BAD_REQUEST,
        }.get(status, f"http_{status}")
        raise _Stop(kind, message, status)

    async def _next_row(self) -> dict[str, Any] | None:
        """The next valid row of this batch; None when the batch ended (cleanly)."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                row = self._line(line)
                if row is not None:
                    return row
                continue
            if len(self._buf) > self._max_line:
                raise _Stop(PROTOCOL_ERROR, f"line longer than {self._max_line} bytes")
            chunk = await self._read()
            if chunk is None:
                if self._buf.strip():
                    self.outcome.malformed += 1
                if not self._summary_seen:
                    raise _Stop(STREAM_BROKEN, "the helper's stream ended without a summary")
                await self._close_response()
                return None
            self._buf += chunk

    async def _read(self) -> bytes | None:
        assert self._chunks is not None
        with trio.move_on_at(self._deadline) as scope:
            try:
                return await self._chunks.__anext__()
            except StopAsyncIteration:
                return None
            except httpx.TimeoutException as exc:
                raise _Stop(TIMEOUT, _exc_text(exc)) from None
            except httpx.HTTPError as exc:
                raise _Stop(STREAM_BROKEN, _exc_text(exc)) from None
        assert scope.cancelled_caught
        raise _Stop(TIMEOUT, "the batch took longer than its deadline")

    def _line(self, line: bytes) -> dict[str, Any] | None:
        if not line.strip():
            return None  # heartbeat
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            self.outcome.malformed += 1
            return None
        if isinstance(obj, dict) and set(obj) == {"summary"}:
            self._summary(obj["summary"])
            return None
        if self._summary_seen:
            self.outcome.malformed += 1
            return None
        row = decode_row(obj)
        if row is None or row["url"] not in self._batch or row["url"] in self.outcome.received_urls:
            self.outcome.malformed += 1
            return None
        self.outcome.received_urls.add(row["url"])
        self.outcome.received += 1
        return row

    def _summary(self, summary: Any) -> None:
        self._summary_seen = True
        refused = summary.get("refused") if isinstance(summary, dict) else None
        if isinstance(refused, dict):
            for url, reason in refused.items():
                if url in self._batch and url not in self.outcome.received_urls:
                    self.outcome.refused[url] = str(reason)[:MAX_REASON_CHARS]


# --------------------------------------------------------------------------------------------
# helpers (pure)


def _endpoint(helper_url: str) -> str:
    parts = urlsplit(helper_url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ValueError(f"helper URL must be https://HOST[:PORT]/ (got {helper_url!r})")
    if parts.scheme == "http" and not (is_loopback(host) or host == "localhost"):
        raise ValueError("plain http:// helper URLs are only allowed on loopback (token)")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ValueError("helper URL: no user info, query or fragment")
    return helper_url.split("?", 1)[0].rstrip("/") + "/v1/measure"


def _redacted(helper_url: str) -> str:
    try:
        return redact_url(helper_url)
    except ValueError:
        return "<bad helper URL>"


def _error_kind(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return TIMEOUT
    if _caused_by_ssl(exc):
        return TLS_ERROR
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
        return STREAM_BROKEN
    return UNREACHABLE


def _caused_by_ssl(exc: BaseException) -> bool:
    """Whether an ``ssl.SSLError`` is among the causes (httpcore's trio backend hides it)."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _root_cause(exc: BaseException) -> BaseException:
    for _ in range(8):
        nxt = exc.__cause__ or exc.__context__
        if nxt is None:
            break
        exc = nxt
    return exc


def _exc_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:MAX_REASON_CHARS]


def _error_message(body: bytes) -> str | None:
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if isinstance(obj, dict):
        msg = obj.get("message") or obj.get("error")
        return str(msg)[:MAX_REASON_CHARS] if msg is not None else None
    return None


def _retry_after(value: str | None) -> float | None:
    if value is None or not value.strip().isdigit() or len(value) > 9:
        return None
    return float(value.strip())


__all__ = [
    "ControlFetch",
    "ControlsOutcome",
    "decode_row",
    "fetch_controls",
    "rows_to_measurements",
]
