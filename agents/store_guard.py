"""Erased users stay erased when a worker gets a table partition back.

Faust keeps a RocksDB store's partitions on disk after they are revoked and across restarts,
with the changelog offset each holds, and a worker that gets a partition back recovers only
what came after that offset. A tombstone written meanwhile by another worker (an erasure, an
expired user) is removed by compaction `delete.retention.ms` after the log cleaner first
passed it; a store last current longer ago may never see it, and would serve the erased user
again and write it back to the changelog. The memory store likewise keeps revoked partitions'
keys and recovers on top of them.

The rule: a worker's store of a partition is current while the worker writes it (it is the
partition's only writer), so every acknowledged flush stamps the partitions it wrote with the
wall time, in `<data_dir>/<app_id>-store-stamps.json`. When a partition is newly assigned,
before Faust recovers it, its local data is kept only if the store is persistent and was
stamped less than half the changelog's `delete.retention.ms` ago (read from the broker; half,
for clock skew between workers and the broker): any tombstone it missed was written after the
stamp and is still in the changelog. Otherwise the partition's local data, its offset
included, is wiped and recovery rebuilds it from the start of the compacted changelog, which
holds no erased user. A restart after a short stop keeps RocksDB's fast recovery; a worker
down longer than that, or a memory store, reads the changelog partition in full.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from churnstream.agents import faust_private

log = logging.getLogger(__name__)

# Stamps are rewritten at most this often (an older stamp only makes a wipe likelier).
STAMP_EVERY_S = 1.0


class StoreGuard:
    def __init__(
        self,
        path: Path,
        store: Any,
        partitions: int,
        tombstone_retention_s: Callable[[], Awaitable[float | None]],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.store = store
        self.partitions = partitions
        self._retention_s = tombstone_retention_s
        self._clock = clock
        self._stamps: dict[int, float] = self._load()
        self._saved_at = -float("inf")
        self.wiped = 0  # partitions wiped since start (for tests and logs)

    def _load(self) -> dict[int, float]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {int(p): float(t) for p, t in raw.items()}
        except (OSError, ValueError, AttributeError, TypeError):
            return {}  # none or unreadable: every partition is wiped at assignment (safe)

    def stamp(self, partitions: Iterable[int]) -> None:
        """The store of `partitions` holds everything this worker wrote to their changelog
        (called once the broker acknowledged a flush)."""
        now = self._clock()
        for partition in partitions:
            self._stamps[partition] = now
        if now - self._saved_at >= STAMP_EVERY_S:
            self._save()
            self._saved_at = now

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({str(p): t for p, t in self._stamps.items()}), "utf-8")
        os.replace(tmp, self.path)  # atomic: a crash leaves the old stamps or the new ones

    async def before_recovery(self, partitions: set[int]) -> None:
        """Wipe the newly assigned `partitions` whose local data may miss a tombstone."""
        keep_for = None
        if faust_private.store_is_persistent(self.store):
            retention = await self._retention_s()
            keep_for = None if retention is None else retention / 2
        now = self._clock()
        wiped = []
        for partition in sorted(partitions):
            stamped = self._stamps.get(partition)
            if keep_for is not None and stamped is not None and now - stamped < keep_for:
                continue
            faust_private.wipe_partition(self.store, partition, self.partitions)
            self._stamps.pop(partition, None)
            wiped.append(partition)
        if wiped:
            self.wiped += len(wiped)
            self._save()
            log.info(
                "table partitions %s rebuilt from the changelog (local store not known to be "
                "current within the tombstone retention)",
                ",".join(map(str, wiped)),
            )
