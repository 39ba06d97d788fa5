"""Input offsets committed by the worker itself, from what it has finished.

Faust derives its commits from per-record acks and a record of offset gaps; around seeks the
two disagree (seen here: offsets the consumer first skipped and counted as a gap, then
delivered and acked, entered its list twice, and commits stopped at that point for good).
The worker knows better: records are admitted strictly in offset order from the committed
offset (agents/input_guard.py) and finished in that order per partition (agents/acks.py), so
the next offset to commit is simply the last finished one plus one. No record is acked to
Faust; its own commit timer finds nothing to commit and this class commits instead, through
the same consumer (so the commit belongs to the group member that owns the partition).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)

COMMIT_INTERVAL_S = 1.0


class OffsetCommitter:
    __slots__ = ("_last", "_pending", "app", "interval_s")

    def __init__(self, app: Any, interval_s: float = COMMIT_INTERVAL_S) -> None:
        self.app = app
        self.interval_s = interval_s
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

    def forget(self) -> None:
        """After a rebalance: nothing finished before it is committed by this worker now."""
        self._pending.clear()

    async def commit(self, *, force: bool = False) -> None:
        """Commit what is pending, at most once per interval unless forced."""
        now = time.monotonic()
        recent = self._last is not None and now - self._last < self.interval_s
        if not self._pending or (recent and not force):
            return
        offsets, self._pending = self._pending, {}
        self._last = now
        try:
            # Faust's own entry point for "commit exactly these": it skips partitions no
            # longer assigned and records the commit time its liveness checks look at.
            await self.app.consumer._commit_offsets(offsets)
        except Exception:  # e.g. a rebalance started: those records are delivered again
            log.warning("offset commit failed; the records will be processed again", exc_info=True)
