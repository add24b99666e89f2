"""Progress on a terminal, drawn by ``rich``; silent (and ``rich`` never imported) otherwise.

Commands report progress through :class:`Progress` (counts: records, lines,
namespaces) or its :meth:`Progress.step` (the named stages of a run). Nothing
is drawn unless the stream is a TTY, so logs, pipes and CI output stay clean,
and ``rich`` is imported only when something is drawn (it costs a few hundred
milliseconds, and ``netpol --help`` must stay fast).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

#: Displays being drawn; :func:`stop_all` clears them (before an error message).
_ACTIVE: list[Progress] = []


class Progress:
    """A progress line shown only when ``stream`` is a TTY.

    Parameters
    ----------
    label
        What is counted (``"shadow: records"``).
    total
        The count at the end, when known (draws a bar).
    stream
        Where to draw; True = the current ``sys.stderr``.
    interval
        Seconds between redraws.

    >>> p = Progress("reading", stream=None)
    >>> p.update(10); p.step("writing"); p.done(); p.count
    11
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None | bool = True,
        interval: float = 0.5,
    ) -> None:
        self.label = label
        self.total = total
        self.count = 0
        # True means "the current sys.stderr", looked up now, not at import time
        # (pytest and others swap sys.stderr after modules are imported).
        chosen = sys.stderr if stream is True else stream
        is_tty = getattr(chosen, "isatty", None)
        self.stream: TextIO | None = chosen if callable(is_tty) and is_tty() else None  # type: ignore[assignment]
        self._bar: Any = None
        self._task: Any = None
        if self.stream is not None:
            self._bar, self._task = _start(self.stream, label, total, interval)
            _ACTIVE.append(self)

    def update(self, n: int = 1, note: str = "") -> None:
        """Count ``n`` more; ``note`` is shown beside the count."""
        self.count += n
        if self._bar is not None:
            self._bar.update(self._task, advance=n, note=note)

    def step(self, name: str) -> None:
        """The next stage of a run begins (counts one; shows its name)."""
        self.update(1, name)

    def done(self) -> None:
        """Clear the line (idempotent)."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
            _ACTIVE.remove(self)


def stop_all() -> None:
    """Clear every display still drawn (a command that failed halfway)."""
    for progress in list(_ACTIVE):
        progress.done()


def _start(stream: TextIO, label: str, total: int | None, interval: float) -> tuple[Any, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    count = "{task.completed:,.0f}" + ("/{task.total:,.0f}" if total else "")
    columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
    if total:
        columns.append(BarColumn(bar_width=24))
    columns += [
        TextColumn(count),
        _rate_column(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    ]
    bar = Bar(
        *columns,
        console=Console(file=stream),
        transient=True,  # the line disappears when done: the command's output stays clean
        refresh_per_second=1 / max(interval, 0.05),
        # stdout is redirected above the line only when it is the same terminal: a
        # piped stdout must get exactly what it gets without a terminal.
        redirect_stdout=bool(sys.stdout and sys.stdout.isatty()),
        redirect_stderr=True,
    )
    task = bar.add_task(label, total=total, note="")
    bar.start()
    return bar, task


def _rate_column() -> Any:
    from rich.progress import ProgressColumn
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """``1,234/s`` (rich's own speed column counts bytes)."""

        def render(self, task: Any) -> Text:
            return Text(f"({task.speed or 0:,.0f}/s)")

    return RateColumn()
