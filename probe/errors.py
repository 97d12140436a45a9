"""The one exception tree of res64-probe.

::

    ProbeError                 any error the user can act on (exit code 2 at the CLI)
    ├── ConfigError            bad flag values, bad TOML, impossible combinations
    ├── TargetError            unreadable or invalid target list (names file and line)
    ├── DatasetError           unreadable, truncated or foreign Parquet input
    ├── GeoError               unreadable GeoIP database or override file
    ├── StoreError             output cannot be written (disk full, permissions)
    └── PrivilegeError         an operation needs root / CAP_NET_RAW

Network failures are *not* exceptions: every step records them as data (a failure string,
see :mod:`probe.failures`).  An exception escaping a step means a bug.
"""

from __future__ import annotations


class ProbeError(Exception):
    """Root of every error that the CLI reports as a one-line message (exit 2)."""


class ConfigError(ProbeError):
    """A flag, option or configuration file is invalid."""


class TargetError(ProbeError):
    """A target list cannot be read or has invalid rows."""


class DatasetError(ProbeError):
    """A dataset (Parquet) cannot be read or does not have the expected schema."""


class GeoError(ProbeError):
    """A GeoIP database or override file cannot be read."""


class StoreError(ProbeError):
    """Measurements cannot be written (disk full, permissions, ...)."""


class PrivilegeError(ProbeError):
    """The operation needs privileges the process does not have (raw sockets)."""


__all__ = [
    "ConfigError",
    "DatasetError",
    "GeoError",
    "PrivilegeError",
    "ProbeError",
    "StoreError",
    "TargetError",
]
