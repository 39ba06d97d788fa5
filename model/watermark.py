"""The stream's low watermark in event time.

Contract: event time "passes" t when the smallest of the per-partition maximum event times, less
the allowed lateness, moves beyond t. A partition that stops receiving events would hold the
watermark back forever (think of a `business.value` partition in a course-only deployment), so a
source whose maximum lags the freshest source by more than `idle_after_s` of event time is
treated as idle and left out until it catches up. Both rules use event time only, so a replay
and the live stream move the watermark the same way for the same per-source streams.
"""

from __future__ import annotations

import math


class Watermark:
    """Tracks per-source maximum event time; `value` is the low watermark."""

    __slots__ = ("_cached", "_max", "idle_after_s", "lateness_s")

    def __init__(self, lateness_s: float, idle_after_s: float = 86400.0) -> None:
        self.lateness_s = lateness_s
        self.idle_after_s = idle_after_s
        self._max: dict[object, float] = {}
        self._cached: float | None = None

    def observe(self, source: object, ts: float) -> None:
        """Record an event of `source` (e.g. a (topic, partition) pair) at event time `ts`."""
        if ts > self._max.get(source, -math.inf):
            self._max[source] = ts
            self._cached = None

    def forget(self, sources: set[object]) -> None:
        """Drop sources this worker no longer owns (after a rebalance)."""
        for s in sources:
            self._max.pop(s, None)
        self._cached = None

    @property
    def value(self) -> float:
        """The low watermark (-inf before any event)."""
        if self._cached is None:
            if not self._max:
                self._cached = -math.inf
            else:
                freshest = max(self._max.values())
                active = [m for m in self._max.values() if freshest - m <= self.idle_after_s]
                self._cached = min(active) - self.lateness_s
        return self._cached
