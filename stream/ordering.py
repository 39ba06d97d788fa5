"""Event-time alignment of several sources (topic partitions) into one ordered stream.

A worker reads many partitions (six input topics x its share of partitions). Catching up, the
consumer can hand out one partition's records days of event time ahead of another's, so a
user's video views of Friday would be applied before its logins of Tuesday. Features, scores and
labels then depend on fetch timing, and a replay of the same history would disagree.

The aligner holds valid events back and releases them in (event time, tie-break) order once no
source that still has unread records could deliver something earlier: the release frontier is
the smallest maximum event time among the *lagging* sources (those whose log end is beyond what
was received). Sources with nothing unread do not hold anything back, so a live, caught-up worker
releases at once. Two bounds keep it live: past `max_buffered` events, or once an event has
waited `max_hold_s` (the caller's clock), events go out even if a lagging source might still
deliver earlier ones; such early releases are counted, so they are visible. A catching-up
consumer hands out about as many records per partition, not as much event time, so during a
long catch-up the order is best effort within these bounds; a worker that keeps up releases in
exact event-time order.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class EventTimeAligner(Generic[T]):
    __slots__ = ("_arrivals", "_heap", "_max_ts", "forced", "max_buffered", "max_hold_s")

    def __init__(self, max_buffered: int = 50_000, max_hold_s: float = 2.0) -> None:
        self.max_buffered = max_buffered
        self.max_hold_s = max_hold_s
        self._heap: list[tuple[float, tuple[Any, ...], Hashable, T]] = []
        self._arrivals: deque[tuple[float, float]] = deque()  # (arrived at, event time)
        self._max_ts: dict[Hashable, float] = {}
        self.forced = 0  # events released before their turn (buffer full or held too long)

    def __len__(self) -> int:
        return len(self._heap)

    def push(
        self,
        source: Hashable,
        ts: float,
        tiebreak: tuple[Any, ...],
        item: T,
        arrived: float = 0.0,
    ) -> None:
        """Hold `item` (event time `ts`); `tiebreak` orders equal times deterministically."""
        if ts > self._max_ts.get(source, -math.inf):
            self._max_ts[source] = ts
        heapq.heappush(self._heap, (ts, tiebreak, source, item))
        self._arrivals.append((arrived, ts))

    def max_ts(self, source: Hashable) -> float:
        """The newest event time seen from `source` (-inf if none)."""
        return self._max_ts.get(source, -math.inf)

    def frontier(self, lagging: Iterable[Hashable]) -> float:
        """Events at or before this time can no longer be preceded by a lagging source."""
        return min((self._max_ts.get(s, -math.inf) for s in lagging), default=math.inf)

    def release(self, lagging: Iterable[Hashable], now: float = 0.0) -> list[T]:
        """Pop every event that is safe (or overdue) to process now, in event-time order."""
        safe = self.frontier(lagging)
        limit = safe
        arrivals = self._arrivals
        while arrivals and arrivals[0][0] < now - self.max_hold_s:
            limit = max(limit, arrivals.popleft()[1])  # held too long: it goes, with all before
        heap = self._heap
        out: list[T] = []
        while heap and (heap[0][0] <= limit or len(heap) > self.max_buffered):
            if heap[0][0] > safe:
                self.forced += 1
            out.append(heapq.heappop(heap)[3])
        if not heap:
            arrivals.clear()
        return out

    def drop_sources(self, sources: set[Hashable]) -> list[T]:
        """Forget sources this worker lost in a rebalance; returns their held items."""
        kept, dropped = [], []
        for entry in self._heap:
            (dropped if entry[2] in sources else kept).append(entry)
        heapq.heapify(kept)
        self._heap = kept
        for s in sources:
            self._max_ts.pop(s, None)
        return [e[3] for e in dropped]
