"""Event-time alignment of several sources (topic partitions) into one ordered stream.

A worker reads many partitions (six input topics x its share of partitions). Catching up, the
consumer can hand out one partition's records days of event time ahead of another's, so a
user's video views of Friday would be applied before its logins of Tuesday. Features, scores and
labels then depend on fetch timing, and a replay of the same history would disagree.

The aligner is a k-way merge: each source keeps its own first-in-first-out queue (its records
never change order, which the per-partition offset bookkeeping downstream relies on), and the
source whose head is earliest in event time goes next. A head is released once no source that
still has unread records could deliver something earlier: the release frontier is the smallest
maximum event time among the *lagging* sources (those whose log end is beyond what was
received, or not known yet). Sources with nothing unread hold nothing back, so a live,
caught-up worker releases at once, but for a short grace: a source that looks caught up may
only look so because its newest records are still on their way (a producer's batches for
several partitions reach the broker and the consumer's fetches at slightly different moments).
So an event also waits until every source seen so far has delivered something at least as
late, or until it has been held `grace_s` (the idle wait of Kafka Streams' `max.task.idle.ms`).

A catching-up consumer hands out about as many records per partition, not as much event time,
so the sources ahead pile up while the frontier's source is read. Memory stays bounded by
back-pressure, not by releasing out of turn: past `max_buffered / 2` held events, `ahead` names
every source whose newest event is beyond the frontier, lagging or not (whatever such a source
delivers waits for the frontier anyway), which the caller stops fetching until the held events
drop under a quarter of `max_buffered`. The frontier's own sources (the lagging ones with the
smallest newest event) and those behind it are never named, so the source that holds
everything back is always read. Records fetched before a pause took effect still arrive (the
consumer's prefetch: one fetch per partition, and what its queue holds), so more than
`max_buffered` may be held for a while; they wait their turn like any other, since releasing
them early would apply them out of order (800 users x 75 days at full speed: 20,597 events
went out early that way once, in 1 run of 3). The bound is then `max_buffered / 2` plus what
was in flight, and a paused source read again (the frontier moved to it, or all resumed) hands
over its prefetched fetch whole: about one fetch per source is held on top, which the worker
keeps small (agents/app.py `CONSUMER_MAX_FETCH_BYTES`). One last resort keeps it live if a
lagging source never delivers (e.g. a broker that keeps failing its fetches): once an event
has waited `max_hold_s` (the caller's clock) while the frontier did not move either, events go
out early; such releases are counted in `forced`.

The caller may also hold events from a time on (`until`: the detector's daily rows not made yet
read states that may run only so far past their boundary, model/engine.py `intake_until`). That
wait is the caller's: it does not count toward `max_hold_s` and nothing overrides it (the
caller ends it: its rows are made, or it stops waiting for a source or a model), and under
back-pressure every source with an event beyond it stops being fetched. `limited` says the last
drain stopped there.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_Entry = tuple[float, tuple[Any, ...], T, float]  # event time, tie-break, item, arrived at


class EventTimeAligner(Generic[T]):
    __slots__ = (
        "_max_ts",
        "_moved",
        "_n",
        "_pausing",
        "_queues",
        "_safe",
        "forced",
        "grace_s",
        "limited",
        "max_buffered",
        "max_hold_s",
    )

    def __init__(
        self, max_buffered: int = 100_000, max_hold_s: float = 30.0, grace_s: float = 0.0
    ) -> None:
        self.max_buffered = max_buffered
        self.max_hold_s = max_hold_s
        self.grace_s = grace_s
        self._queues: dict[Hashable, deque[_Entry[T]]] = {}
        self._max_ts: dict[Hashable, float] = {}
        self._n = 0
        self._pausing = False  # back-pressure on: between the high and the low mark
        self._safe = -math.inf  # the last release frontier, and when it last moved
        self._moved = -math.inf
        self.forced = 0  # events released before their turn (held too long, source stalled)
        self.limited = False  # the last drain stopped at the caller's `until`

    def __len__(self) -> int:
        return self._n

    def push(
        self,
        source: Hashable,
        ts: float,
        tiebreak: tuple[Any, ...],
        item: T,
        arrived: float = 0.0,
    ) -> None:
        """Queue `item` (event time `ts`) behind the earlier items of its `source`."""
        if ts > self._max_ts.get(source, -math.inf):
            self._max_ts[source] = ts
        self._queues.setdefault(source, deque()).append((ts, tiebreak, item, arrived))
        self._n += 1

    def max_ts(self, source: Hashable) -> float:
        """The newest event time seen from `source` (-inf if none)."""
        return self._max_ts.get(source, -math.inf)

    def frontier(self, lagging: Iterable[Hashable]) -> float:
        """Events at or before this time can no longer be preceded by a lagging source."""
        return min((self._max_ts.get(s, -math.inf) for s in lagging), default=math.inf)

    def held(self) -> dict[Hashable, int]:
        """Events held, by source (only sources holding any)."""
        return {s: len(q) for s, q in self._queues.items() if q}

    def ahead(self, lagging: Collection[Hashable], until: float = math.inf) -> frozenset[Hashable]:
        """Sources to stop fetching for now: under back-pressure (more than half of
        `max_buffered` held, until under a quarter), every source whose newest event is beyond
        the frontier (a lagging one, or one caught up whose next records are newer still: theirs
        wait for the frontier anyway), and any whose newest is at or after the caller's `until`.
        The lagging sources holding the frontier are never named unless past `until` (the
        caller's wait): they are what the held events wait for."""
        if self._n > self.max_buffered // 2:
            self._pausing = True
        elif self._n <= self.max_buffered // 4:
            self._pausing = False
        if not self._pausing:
            return frozenset()
        safe = self.frontier(lagging)
        return frozenset(s for s, m in self._max_ts.items() if m >= until or m > safe)

    def release(self, lagging: Iterable[Hashable], now: float = 0.0) -> list[T]:
        """Pop every event that is safe (or overdue) to process now, merged by event time."""
        return list(self.drain(lagging, now))

    def drain(
        self,
        lagging: Iterable[Hashable],
        now: float = 0.0,
        *,
        blocked: bool = False,
        until: Callable[[], float] | None = None,
    ) -> Iterator[T]:
        """`release`, one event at a time: an event is popped only when the caller asks for
        the next, so a caller that stops (the detector holds a boundary for its model) leaves
        the rest held, in order, for a later call. The frontier is taken now, asked or not.
        `blocked`: the caller applies nothing now; that wait is its own, not a stalled source,
        so it does not count toward `max_hold_s`. `until()`, asked before each event: events
        at or after it wait too, on the same terms."""
        safe = self.frontier(lagging)
        if safe != self._safe or blocked:
            self._safe, self._moved = safe, now
        overdue = now - self.max_hold_s
        must_go = -math.inf
        # Overdue only while the frontier stands still: a catch-up that reads the lagging
        # sources may hold an event longer than `max_hold_s`, but not a source that stalls.
        stalled = self._moved < overdue
        for queue in self._queues.values():
            if stalled and queue and queue[0][3] < overdue:
                # Held too long: it goes, with everything of any source up to its time.
                must_go = max(must_go, max(e[0] for e in queue if e[3] < overdue))
        # Every source seen has delivered up to here: nothing earlier is on its way.
        seen_by_all = min(self._max_ts.values(), default=math.inf)
        self.limited = False
        return self._pop(safe, must_go, seen_by_all, now - self.grace_s, until, now)

    def _pop(
        self,
        safe: float,
        must_go: float,
        seen_by_all: float,
        settled: float,
        until: Callable[[], float] | None,
        now: float,
    ) -> Iterator[T]:
        heads = [(q[0][0], q[0][1], s) for s, q in self._queues.items() if q]
        heapq.heapify(heads)
        while heads:
            ts, _, source = heads[0]
            queue = self._queues[source]
            if until is not None and ts >= until():
                self.limited = True
                self._moved = now  # the caller's wait, not a stalled source
                break
            # Past `max_buffered` too: records fetched before a pause took effect wait their
            # turn (released early they would be applied out of order); the pause bounds them.
            if ts > must_go:
                if ts > safe:
                    break  # a lagging source may still deliver something earlier
                if ts > seen_by_all and queue[0][3] > settled:
                    break  # in grace: a source that looks caught up may still do so
            heapq.heappop(heads)
            if ts > safe:
                self.forced += 1
            item = queue.popleft()[2]
            self._n -= 1
            if queue:
                heapq.heappush(heads, (queue[0][0], queue[0][1], source))
            yield item

    def clear(self) -> list[T]:
        """Forget every held event (after a rebalance the consumer delivers them again)."""
        dropped = [e[2] for q in self._queues.values() for e in q]
        self._queues.clear()
        self._max_ts.clear()
        self._n = 0
        self._pausing = False
        self.limited = False
        self._safe = self._moved = -math.inf
        return dropped
