"""User records read from and written to the Faust table, once per user per flush.

Each table write is a changelog record, so writing per event would cap the worker at about a
quarter of Faust's own speed. Records touched during a batch are kept decoded here and written
back once when the batch ends, before its input offsets are acked. Decoded records also stay
cached across batches (least recently used first out): decoding a record costs more than all
the events of a typical batch do to it. The cache is dropped at every rebalance, when the table
(restored from the changelog) becomes the only truth again.

A flush returns the changelog records of the changed users to the caller, who sends them with
the batch's other outputs in record batches (agents/outputs.py) instead of one `send()` per key
through Faust's buffer (the largest cost of a flush, measured). The records are the ones Faust
itself would write (same topic, raw key and value, key-hash partition), so Faust's recovery
restores them unchanged. They reach the table's store only once the broker has acknowledged
them (`written`): the store never holds a state the changelog lacks, so a RocksDB store can
record how far it holds the changelog and a restart need read only what came after. Deletions
return a tombstone the same way, sent at once (erasure); a user removed by the detector
(expired) gets its tombstone in the next flush, like any other change.

A stored value that cannot be decoded (a corrupt changelog record, another writer) must not
stop the worker: any bytes can sit in the table. Its key is quarantined: the raw bytes go to the
dead-letter topic (`corrupt_state`) with a tombstone for the changelog in the next flush, the
key leaves the store, it is counted, and the user starts again from an empty state.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from faust.types import TP

from churnstream.agents.faust_private import store_writer
from churnstream.features import FeatureConfig
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.dlq import dlq_record

log = logging.getLogger(__name__)

CACHED_USERS = 10_000  # decoded records kept between batches (~5-10 KB of objects each)

# (changelog topic, key, value or None for a tombstone, headers)
ChangelogRecord = tuple[str, bytes, bytes | None, None]


class TableRepository:
    def __init__(
        self,
        table: Any,
        config: FeatureConfig,
        changelog: str,
        cached: int = CACHED_USERS,
        *,
        dlq_topic: str = "churn.dlq",
        on_quarantine: Callable[[], None] | None = None,
        on_expire: Callable[[], None] | None = None,
        on_written: Callable[[Iterable[int]], None] | None = None,
    ) -> None:
        self.table = table
        self.store = table.data  # the store itself: writing to it sends nothing
        self._put = store_writer(self.store, table.partitions)
        self.config = config
        self.changelog = changelog
        self.cached = cached
        self._cache: OrderedDict[str, UserRecord] = OrderedDict()
        self._dirty: set[str] = set()
        # Flushed, not yet acknowledged by the broker; None: a tombstone (an expired user).
        self._unacked: dict[bytes, bytes | None] = {}
        self._removed: set[str] = set()  # removed since the last flush
        self.dlq_topic = dlq_topic
        self._on_quarantine = on_quarantine
        self._on_expire = on_expire
        # Told the changelog partitions each acknowledged flush wrote (agents/store_guard.py).
        self._on_written = on_written
        # (topic, key, value, None) of quarantined keys: DLQ copies and changelog tombstones.
        self._quarantined: list[tuple[str, bytes, bytes | None, None]] = []

    def get(self, user_id: str) -> UserRecord | None:
        rec = self._cache.get(user_id)
        if rec is None:
            key = user_id.encode()
            if user_id in self._removed or (key in self._unacked and self._unacked[key] is None):
                return None  # removed; the store still has it until the tombstone is written
            raw = self.table.get(key)
            if raw is None:
                return None
            rec = self._decode(key, raw)
            if rec is None:
                self._quarantine(key, raw)
                return None
            self._cache[user_id] = rec
        else:
            self._cache.move_to_end(user_id)
        return rec

    def put(self, record: UserRecord) -> None:
        self._cache[record.user_id] = record
        self._dirty.add(record.user_id)
        self._removed.discard(record.user_id)

    def remove(self, user_id: str) -> None:
        """The detector expired the user: its tombstone goes out with the next flush."""
        self._cache.pop(user_id, None)
        self._dirty.discard(user_id)
        self._removed.add(user_id)
        if self._on_expire is not None:
            self._on_expire()

    def delete(self, user_id: str) -> ChangelogRecord | None:
        """Forget a user now; returns the tombstone to send if a stored record existed."""
        self._cache.pop(user_id, None)
        self._dirty.discard(user_id)
        self._removed.discard(user_id)
        key = user_id.encode()
        pending = key in self._unacked
        self._unacked.pop(key, None)
        if key in self.store:
            del self.store[key]
        elif not pending:
            return None
        return (self.changelog, key, None, None)

    def flush(self) -> list[ChangelogRecord]:
        """Encode every changed record once; returns their changelog records, to be sent.

        Records of an earlier flush whose send failed are returned again (newest value wins).
        """
        unacked = self._unacked
        for user_id in self._removed:
            unacked[user_id.encode()] = None
        self._removed.clear()
        for user_id in self._dirty:
            unacked[user_id.encode()] = self._cache[user_id].to_bytes()
        self._dirty.clear()
        changelog = self.changelog
        # Quarantined keys first: a user back since then gets its new value after the tombstone.
        return [
            *self._quarantined,
            *((changelog, key, value, None) for key, value in unacked.items()),
        ]

    def written(self, last_offsets: Mapping[tuple[str, int], int]) -> None:
        """The broker acknowledged the flushed records: write them to the store.

        `last_offsets` (from `OutputWriter.send`) are the offsets of the last records written,
        by topic partition. Like Faust's own changelog callback, the store keeps the changelog's
        offset per partition (RocksDB does; the memory store, rebuilt from the changelog at
        every start, ignores it).
        """
        put, store = self._put, self.store
        for key, value in self._unacked.items():
            if value is not None:
                put(key, value)
            elif key in store:
                del store[key]
        self._unacked.clear()
        self._quarantined.clear()
        written = []
        for (topic, partition), offset in last_offsets.items():
            if topic == self.changelog:
                self.store.set_persisted_offset(TP(topic, partition), offset)
                written.append(partition)
        if written and self._on_written is not None:
            self._on_written(written)
        while len(self._cache) > self.cached:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every decoded record (after a rebalance the table is the only truth).

        Unacknowledged records go too: their inputs were not committed, and the consumer is
        back at the committed offsets, so they will be read and applied again.
        """
        self._cache.clear()
        self._dirty.clear()
        self._removed.clear()
        self._unacked.clear()
        self._quarantined.clear()

    def records(self) -> Iterator[UserRecord]:
        """Every readable user record in this worker's local table partitions, one at a time
        (for index rebuilds); unreadable ones are quarantined once the scan is over."""
        bad: list[tuple[bytes, bytes]] = []
        for key, raw in self.table.items():
            rec = self._decode(key, raw)
            if rec is None:
                bad.append((key, raw))
            else:
                yield rec
        for key, raw in bad:  # not during the scan: quarantining deletes from the store
            self._quarantine(key, raw)

    def _decode(self, key: bytes, raw: bytes) -> UserRecord | None:
        try:
            return UserRecord.from_bytes(key.decode(), raw, self.config)
        except Exception:  # any bytes can be stored: whatever the decoder raises means corrupt
            return None

    def _quarantine(self, key: bytes, raw: bytes) -> None:
        # No key in the log: it is a user id (personal data); the DLQ record keeps it.
        log.error("a stored user record could not be decoded; quarantined to the DLQ")
        if key in self.store:
            del self.store[key]
        dead = dlq_record(
            source_topic=self.changelog,
            partition=-1,  # read from the store, where the changelog position is not known
            offset=-1,
            error="corrupt_state",
            detail="stored user record could not be decoded; the user starts again empty",
            payload=raw,
            max_bytes=len(raw),
            received_at=time.time(),
        )
        self._quarantined += [(self.dlq_topic, key, dead, None), (self.changelog, key, None, None)]
        if self._on_quarantine is not None:
            self._on_quarantine()
