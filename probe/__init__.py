"""res64-probe: evidence-grade measurements of denial of access to public Internet sites."""

from probe._version import __version__ as __version__

__all__ = ["__version__"]
