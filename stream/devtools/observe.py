"""A running worker seen from outside, and waits with deadlines: shared by the integration
tests (tests/integration/workers.py) and the reliability soak (bench/soak).

Every wait polls a condition against a deadline, never a fixed sleep. `WaitTimeout` is both an
AssertionError (a test fails with the reason) and a TimeoutError (a drill catches it and
reports the row).
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Callable
from typing import Any

__all__ = ["WaitTimeout", "metric_sum", "scrape", "wait_until"]

_SAMPLE = re.compile(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


class WaitTimeout(TimeoutError, AssertionError):
    """A condition did not hold before its deadline."""


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy and return that; `WaitTimeout` naming
    `what` after `timeout` s (`check` may raise to fail at once, e.g. when a worker died)."""
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise WaitTimeout(
                f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})"
            )
        time.sleep(every)


def scrape(port: int, timeout: float = 3.0) -> str | None:
    """The Prometheus text of the metrics endpoint on 127.0.0.1:`port` (None: not answering)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:
        return None


def metric_sum(text: str | None, name: str, **labels: str) -> float:
    """Sum of the samples of `name` in Prometheus `text` whose labels include `labels` (0 if
    none, or no text)."""
    total = 0.0
    for line in (text or "").splitlines():
        if not line.startswith(name):
            continue
        m = _SAMPLE.match(line)
        if m is None or m.group(1) != name:
            continue
        found = dict(_LABEL.findall(m.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total
