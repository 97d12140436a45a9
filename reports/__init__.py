"""Report templates (Jinja2), shipped as package data; rendered by :mod:`analysis.report`."""

from pathlib import Path

TEMPLATES: Path = Path(__file__).resolve().parent / "templates"
