"""User records read from and written to the Faust table, once per user per flush.

Each table write is a changelog produce, so writing per event would cap the worker at about a
quarter of Faust's own speed. Records touched during a batch are kept decoded here and written
back once when the batch ends, before its input offsets are acked.
"""

from __future__ import annotations

from typing import Any

from features import FeatureConfig
from model.user_record import UserRecord


class TableRepository:
    def __init__(self, table: Any, config: FeatureConfig) -> None:
        self.table = table
        self.config = config
        self._cache: dict[str, UserRecord] = {}
        self._dirty: set[str] = set()

    def get(self, user_id: str) -> UserRecord | None:
        rec = self._cache.get(user_id)
        if rec is None:
            raw = self.table.get(user_id.encode())
            if raw is None:
                return None
            rec = self._cache[user_id] = UserRecord.from_bytes(user_id, raw, self.config)
        return rec

    def put(self, record: UserRecord) -> None:
        self._cache[record.user_id] = record
        self._dirty.add(record.user_id)

    def delete(self, user_id: str) -> bool:
        """Forget a user now: the table deletion writes a changelog tombstone."""
        self._cache.pop(user_id, None)
        self._dirty.discard(user_id)
        key = user_id.encode()
        if key in self.table:
            del self.table[key]
            return True
        return False

    def flush(self) -> int:
        """Write every changed record once; returns how many were written."""
        n = len(self._dirty)
        for user_id in self._dirty:
            self.table[user_id.encode()] = self._cache[user_id].to_bytes()
        self._dirty.clear()
        # Nothing is cached across batches: after a rebalance the table is the only truth.
        self._cache.clear()
        return n

    def records(self) -> list[UserRecord]:
        """Every user record in this worker's local table partitions (for index rebuilds)."""
        return [
            UserRecord.from_bytes(k.decode(), v, self.config) for k, v in list(self.table.items())
        ]
