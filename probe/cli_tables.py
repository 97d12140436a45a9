"""Rich tables the CLI prints (pairs table, fingerprint matches). Display only."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _fmt_counts(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in sorted(value.items(), key=lambda kv: -kv[1]))
    return str(value)


def print_pairs(console: Console, pairs: Any, title: str = "Evidence per country pair") -> None:
    """Print the pairs DataFrame (SPEC §6) as a table; says so when there is no denial."""
    t = Table(title=title, title_justify="left")
    for col in ("affected", "responsible", "denied / tested", "share", "mechanisms", "confidence"):
        t.add_column(col)
    if pairs is None or len(pairs) == 0:
        console.print(f"[bold]{title}[/]: no denial found (nothing is reported without controls)")
        return
    for r in pairs.to_dict("records"):
        resp = r.get("responsible_cc")
        resp = "unattributed" if resp is None or resp != resp else str(resp)
        share = r.get("share_denied")
        t.add_row(
            escape(str(r.get("affected_cc"))),
            escape(resp),
            f"{r.get('targets_denied')} / {r.get('targets_tested')}",
            f"{share:.0%}" if isinstance(share, float) else str(share),
            escape(_fmt_counts(r.get("mechanisms"))),
            escape(_fmt_counts(r.get("confidence"))),
        )
    console.print(t)


def print_matches(console: Console, path: str, matches: list[Any]) -> None:
    if not matches:
        console.print(f"{escape(path)}: no fingerprint matches")
        return
    t = Table(title=f"Fingerprints matching {escape(path)}", title_justify="left")
    for col in ("id", "kind", "where", "country", "extracted cc", "detail", "needs controls"):
        t.add_column(col)
    for m in matches:
        t.add_row(
            escape(m.fingerprint_id),
            m.kind,
            m.location,
            m.country or "",
            m.extracted_cc or "",
            escape(m.detail or ""),
            "yes" if m.needs_controls else "",
        )
    console.print(t)
