"""Input offsets committed by the worker itself, from what it has finished.

Faust derives its commits from per-record acks and a record of offset gaps; around seeks the
two disagree (seen here: offsets the consumer first skipped and counted as a gap, then
delivered and acked, entered its list twice, and commits stopped at that point for good).
The worker knows better: records are admitted strictly in offset order from the committed
offset (agents/input_guard.py) and finished in that order per partition (agents/acks.py), so
the next offset to commit is simply the last finished one plus one. No record is acked to
Faust; its own commit timer finds nothing to commit and this class commits instead, through
the same consumer (so the commit belongs to the group member that owns the partition; Faust
drops the partitions it no longer owns, see agents/faust_private.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 1.0

# Commits exactly the given offsets (agents/faust_private.commit_offsets, bound to a consumer).
CommitOffsets = Callable[[Mapping[TP, int]], Awaitable[bool]]


class OffsetCommitter:
    __slots__ = ("_clock", "_commit", "_last", "_pending", "interval_s")

    def __init__(
        self,
        commit_offsets: CommitOffsets,
        interval_s: float = COMMIT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._commit = commit_offsets
        self.interval_s = interval_s
        self._clock = clock
        self._pending: dict[TP, int] = {}
        # None until the first commit: a clock value of 0 would read "just committed" on a
        # machine booted less than an interval ago (monotonic time counts from boot).
        self._last: float | None = None

    def done(self, events: Iterable[Any]) -> None:
        """Records finished in offset order: their partitions may commit past them."""
        pending = self._pending
        for event in events:
            msg = event.message
            tp = TP(msg.topic, msg.partition)
            if msg.offset >= pending.get(tp, -1):
                pending[tp] = msg.offset + 1

    def skip_to(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Partitions with nothing left to process below these offsets (records removed by
        retention before they were read): they may commit up to them."""
        pending = self._pending
        for (topic, partition), offset in offsets.items():
            tp = TP(topic, partition)
            pending[tp] = max(pending.get(tp, offset), offset)

    def forget(self) -> None:
        """After a rebalance: nothing finished before it is committed by this worker now."""
        self._pending.clear()

    async def commit(self, *, force: bool = False) -> None:
        """Commit what is pending, at most once per interval unless forced."""
        now = self._clock()
        recent = self._last is not None and now - self._last < self.interval_s
        if not self._pending or (recent and not force):
            return
        offsets, self._pending = self._pending, {}
        self._last = now
        try:
            await self._commit(offsets)
        except Exception:  # e.g. a rebalance started: those records are delivered again
            log.warning("offset commit failed; the records will be processed again", exc_info=True)
