"""Progress on a terminal: a single updating stderr line, silent otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Throttled progress line shown only when ``stream`` is a TTY.

    >>> p = Progress("reading", stream=None)
    >>> p.update(10); p.done()
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
        self.interval = interval
        self._last = 0.0
        self._start = time.monotonic()

    def update(self, n: int = 1, note: str = "") -> None:
        self.count += n
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        rate = self.count / max(now - self._start, 1e-9)
        total = f"/{self.total:,}" if self.total else ""
        self.stream.write(f"\r{self.label}: {self.count:,}{total} ({rate:,.0f}/s) {note}\x1b[K")
        self.stream.flush()

    def done(self) -> None:
        if self.stream is not None:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
