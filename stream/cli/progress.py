"""A progress line for long work: redrawn in place on a terminal, a few plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self, what: str, total: int | None = None, *, stream: TextIO | None = None
    ) -> None:
        self.what = what
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_print = 0.0
        self.count = 0

    def __call__(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        # Redraw at most 10x per second on a terminal; every 10 s in logs.
        if now - self._last_print < (0.1 if self.tty else 10.0):
            return
        self._last_print = now
        self._write(now)

    def _write(self, now: float, end: str = "") -> None:
        elapsed = max(now - self.started, 1e-9)
        rate = self.count / elapsed
        if self.total:
            share = min(1.0, self.count / self.total)
            bar = "#" * int(share * 30)
            text = f"{self.what} [{bar:<30}] {self.count:,}/{self.total:,} {rate:,.0f}/s"
        else:
            text = f"{self.what} {self.count:,} {rate:,.0f}/s {elapsed:.0f}s"
        if self.tty:
            self.stream.write("\r" + text + end)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        self._write(time.monotonic(), end="\n" if self.tty else "")
