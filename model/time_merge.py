"""Several ordered sources (a topic's partitions) merged into one stream by event time, with a cut.

Each source yields `(ts, offset, value)` in its own order. The merge takes, among the sources'
next records, the one with the smallest key (then the source's rank): the key is the record's
event time, except for a record later than the one after it in its source, which keeps its
source's previous key (its place). That is a spike, such as a record dated years ahead, which
would otherwise hold back every later record of its source until all other sources ran dry; the
watermark treats such a record alike (a far event counts only once the source's next event
confirms it). A record without a readable time (`ts` None) keeps its place too.

With `until`, a source ends at its first record whose key is at or after `until`: its offset is
the source's cut (`cuts`), and nothing from it on is yielded. A source read to its end has the
cut None. So every record before a cut was yielded and none from it: a consumer that starts at
the cuts takes over without a gap or a double.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Record = tuple[float | None, int, bytes | None]  # event time, offset, value


class TimeMerge(Generic[K]):
    def __init__(
        self,
        sources: Mapping[K, Iterator[Record]],
        rank: Callable[[K], tuple[int, ...]],
        until: float | None = None,
    ) -> None:
        self.sources = dict(sources)
        self.rank = rank
        self.until = until
        self.cuts: dict[K, int | None] = {}

    def __iter__(self) -> Iterator[tuple[K, int, bytes | None]]:
        ahead: dict[K, list[Record]] = {k: [] for k in self.sources}  # up to 2 records each
        keys: dict[K, float] = dict.fromkeys(self.sources, -math.inf)
        heads: list[tuple[float, tuple[int, ...], int, K]] = []

        def push(source: K) -> None:
            buffer = ahead[source]
            it = self.sources[source]
            while len(buffer) < 2:
                record = next(it, None)
                if record is None:
                    break
                buffer.append(record)
            if not buffer:
                self.cuts[source] = None
                return
            ts, offset, _ = buffer[0]
            key = keys[source]
            if ts is not None and not (len(buffer) > 1 and _later(ts, buffer[1][0])):
                key = ts
            if self.until is not None and key >= self.until:
                self.cuts[source] = offset
                return
            keys[source] = key
            heapq.heappush(heads, (key, self.rank(source), offset, source))

        for source in self.sources:
            push(source)
        while heads:
            _, _, _, source = heapq.heappop(heads)
            _, offset, value = ahead[source].pop(0)
            yield source, offset, value
            push(source)


def _later(ts: float, following: float | None) -> bool:
    return following is not None and ts > following
