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
return a tombstone the same way.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from faust.types import TP

from churnstream.agents.faust_private import store_writer
from churnstream.features import FeatureConfig
from churnstream.model.user_record import UserRecord

CACHED_USERS = 10_000  # decoded records kept between batches (~5-10 KB of objects each)

# (changelog topic, key, value or None for a tombstone, headers)
ChangelogRecord = tuple[str, bytes, bytes | None, None]


class TableRepository:
    def __init__(
        self, table: Any, config: FeatureConfig, changelog: str, cached: int = CACHED_USERS
    ) -> None:
        self.table = table
        self.store = table.data  # the store itself: writing to it sends nothing
        self._put = store_writer(self.store, table.partitions)
        self.config = config
        self.changelog = changelog
        self.cached = cached
        self._cache: OrderedDict[str, UserRecord] = OrderedDict()
        self._dirty: set[str] = set()
        self._unacked: dict[bytes, bytes] = {}  # flushed, not yet acknowledged by the broker

    def get(self, user_id: str) -> UserRecord | None:
        rec = self._cache.get(user_id)
        if rec is None:
            raw = self.table.get(user_id.encode())
            if raw is None:
                return None
            rec = self._cache[user_id] = UserRecord.from_bytes(user_id, raw, self.config)
        else:
            self._cache.move_to_end(user_id)
        return rec

    def put(self, record: UserRecord) -> None:
        self._cache[record.user_id] = record
        self._dirty.add(record.user_id)

    def delete(self, user_id: str) -> ChangelogRecord | None:
        """Forget a user now; returns the tombstone to send if a stored record existed."""
        self._cache.pop(user_id, None)
        self._dirty.discard(user_id)
        key = user_id.encode()
        unsent = self._unacked.pop(key, None)
        if key in self.store:
            del self.store[key]
        elif unsent is None:
            return None
        return (self.changelog, key, None, None)

    def flush(self) -> list[ChangelogRecord]:
        """Encode every changed record once; returns their changelog records, to be sent.

        Records of an earlier flush whose send failed are returned again (newest value wins).
        """
        unacked = self._unacked
        for user_id in self._dirty:
            unacked[user_id.encode()] = self._cache[user_id].to_bytes()
        self._dirty.clear()
        changelog = self.changelog
        return [(changelog, key, value, None) for key, value in unacked.items()]

    def written(self, last_offsets: Mapping[tuple[str, int], int]) -> None:
        """The broker acknowledged the flushed records: write them to the store.

        `last_offsets` (from `OutputWriter.send`) are the offsets of the last records written,
        by topic partition. Like Faust's own changelog callback, the store keeps the changelog's
        offset per partition (RocksDB does; the memory store, rebuilt from the changelog at
        every start, ignores it).
        """
        put = self._put
        for key, value in self._unacked.items():
            put(key, value)
        self._unacked.clear()
        for (topic, partition), offset in last_offsets.items():
            if topic == self.changelog:
                self.store.set_persisted_offset(TP(topic, partition), offset)
        while len(self._cache) > self.cached:
            self._cache.popitem(last=False)

    def forget(self) -> None:
        """Drop every decoded record (after a rebalance the table is the only truth).

        Unacknowledged records go too: their inputs were not committed, and the consumer is
        back at the committed offsets, so they will be read and applied again.
        """
        self._cache.clear()
        self._dirty.clear()
        self._unacked.clear()

    def records(self) -> list[UserRecord]:
        """Every user record in this worker's local table partitions (for index rebuilds)."""
        return [
            UserRecord.from_bytes(k.decode(), v, self.config) for k, v in list(self.table.items())
        ]
