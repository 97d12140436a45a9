"""Control helper: a small HTTPS service that measures URLs for vantages in other countries.

A lone vantage has no cross-country control; a helper run in another country measures the
same URLs with the same steps and streams the rows back (``is_control=True``,
``data_source="helper"``).  :mod:`probe.helper.server` is the service,
:mod:`probe.helper.wire` its pure wire format, :mod:`probe.helper.client` fetches from it,
:mod:`probe.helper.auth` holds tokens and rate limits.
"""

from probe.helper.auth import generate_token as generate_token
from probe.helper.auth import parse_tokens as parse_tokens
from probe.helper.auth import token_id as token_id
from probe.helper.client import ControlFetch as ControlFetch
from probe.helper.client import ControlsOutcome as ControlsOutcome
from probe.helper.client import decode_row as decode_row
from probe.helper.client import fetch_controls as fetch_controls
from probe.helper.client import rows_to_measurements as rows_to_measurements
from probe.helper.server import HelperConfig as HelperConfig
from probe.helper.server import load_tokens as load_tokens
from probe.helper.server import serve_helper as serve_helper
from probe.helper.server import server_ssl_context as server_ssl_context
from probe.helper.server import systemd_unit as systemd_unit

__all__ = [
    "ControlFetch",
    "ControlsOutcome",
    "HelperConfig",
    "decode_row",
    "fetch_controls",
    "generate_token",
    "load_tokens",
    "parse_tokens",
    "rows_to_measurements",
    "serve_helper",
    "server_ssl_context",
    "systemd_unit",
    "token_id",
]
