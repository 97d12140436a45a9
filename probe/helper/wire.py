"""The helper's wire format (pure): request parsing and response lines.

``POST /v1/measure`` takes ``{"urls": [...]}`` (:func:`parse_measure_request`) and answers
newline-delimited JSON: one :func:`record_line` per measurement (``Measurement.as_row()`` with
bytes as base64 strings and datetimes as ISO-8601, see :func:`encode_value`) and a last
:func:`summary_line`.  :func:`probe.helper.client.decode_row` is the inverse of
:func:`record_line`.  No I/O here; :mod:`probe.helper.server` owns the connections.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from probe.errors import TargetError
from probe.records import Measurement
from probe.targets import Target, targets_from_urls

MAX_MESSAGE_CHARS = 2000  # longest error message sent to a client


def encode_value(v: Any) -> Any:
    """JSON-safe form of one column value: bytes → base64, datetime → ISO-8601, tuple → list."""
    if isinstance(v, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(v)).decode("ascii")
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, tuple | list):
        return [encode_value(x) for x in v]
    return v


def record_line(m: Measurement) -> bytes:
    """One JSON line (with its newline) for a measurement."""
    row = {k: encode_value(v) for k, v in m.as_row().items()}
    return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def summary_line(summary: Mapping[str, Any]) -> bytes:
    """The last line of a measure response: ``{"summary": {...}}``."""
    return json.dumps({"summary": dict(summary)}, separators=(",", ":")).encode() + b"\n"


def parse_measure_request(body: bytes, max_urls: int) -> tuple[int, str, str] | list[Target]:
    """Pure: the targets of a request body, or ``(status, code, message)`` to answer."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return 400, "bad_json", 'the body must be JSON: {"urls": ["https://...", ...]}'
    if not isinstance(obj, dict) or not isinstance(obj.get("urls"), list):
        return 400, "bad_request", 'expected a JSON object {"urls": [...]}'
    urls = obj["urls"]
    if not urls:
        return 400, "no_urls", "the URL list is empty"
    if len(urls) > max_urls:
        return 413, "too_many_urls", f"at most {max_urls} URLs per request (got {len(urls)})"
    if not all(isinstance(u, str) for u in urls):
        return 400, "bad_urls", "every URL must be a string"
    try:
        return targets_from_urls(urls)
    except TargetError as exc:
        return 400, "bad_urls", str(exc)[:MAX_MESSAGE_CHARS]


__all__ = [
    "MAX_MESSAGE_CHARS",
    "encode_value",
    "parse_measure_request",
    "record_line",
    "summary_line",
]
