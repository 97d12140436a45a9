"""Console output shared by the CLI: progress bars and run summaries (rich, on stderr)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from probe.records import Measurement


def err_console() -> Console:
    """stderr console; wide enough for the evidence tables when output is not a terminal."""
    c = Console(stderr=True, highlight=False)
    if not c.is_terminal and c.width < 120:
        c.width = 120
    return c


class RichProgress:
    """Progress bar with counts of accessible / failed measurements so far."""

    def __init__(self, label: str = "measuring", console: Console | None = None) -> None:
        self.ok = 0
        self.failed = 0
        self._p = Progress(
            TextColumn(f"[bold]{label}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[green]{task.fields[ok]} ok[/] · [red]{task.fields[failed]} failed[/]"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console or err_console(),
            transient=False,
        )
        self._task = None

    def start(self, total: int, done: int) -> None:
        self._p.start()
        self._task = self._p.add_task("run", total=total, completed=done, ok=0, failed=0)

    def advance(self, m: Measurement) -> None:
        if m.failure_step:
            self.failed += 1
        else:
            self.ok += 1
        if self._task is not None:
            self._p.update(self._task, advance=1, ok=self.ok, failed=self.failed)

    def stop(self) -> None:
        self._p.stop()
