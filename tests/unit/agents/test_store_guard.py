"""StoreGuard: a newly assigned table partition keeps its local data only when the store is
persistent and was current within half the changelog's tombstone retention; otherwise it is
wiped before recovery (which then reads the compacted changelog from its start)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from churnstream.agents.outputs import key_partition
from churnstream.agents.store_guard import StoreGuard

PARTITIONS = 4


class FakeDb(dict[bytes, bytes]):
    def delete(self, key: bytes) -> None:
        del self[key]


class PersistentStore:
    """Like Faust's RocksDB store: one database per partition."""

    def __init__(self) -> None:
        self.dbs: dict[int, FakeDb] = {}

    def _db_for_partition(self, partition: int) -> FakeDb:
        return self.dbs.setdefault(partition, FakeDb())


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self._key_partition: dict[bytes, int] = {}


def key_in(partition: int) -> bytes:
    return next(
        k for i in range(1000) if key_partition(k := f"u{i}".encode(), PARTITIONS) == partition
    )


def guard(path: Path, store: Any, retention_s: float | None, now: list[float]) -> StoreGuard:
    async def retention() -> float | None:
        return retention_s

    return StoreGuard(path, store, PARTITIONS, retention, clock=lambda: now[0])


def test_a_persistent_store_is_kept_only_while_it_was_current_within_the_retention(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stamps.json"
    store = PersistentStore()
    now = [1000.0]
    g = guard(path, store, 86400.0, now)
    for p in range(PARTITIONS):
        store._db_for_partition(p)[key_in(p)] = b"state"
        store._db_for_partition(p)[b"__faust\0offset__"] = b"41"
    g.stamp([0, 1])
    now[0] += 3600.0
    # A restart: the stamps come from the file.
    g = guard(path, store, 86400.0, now)
    asyncio.run(g.before_recovery({0, 2}))
    assert store.dbs[0]  # stamped an hour ago: kept (recovers from its offset)
    assert store.dbs[2] == {}  # never stamped: wiped, offset included
    assert store.dbs[1] and store.dbs[3]  # not assigned now: untouched
    now[0] += 86400.0 / 2
    asyncio.run(g.before_recovery({1}))
    assert store.dbs[1] == {}  # stamped longer ago than half the retention
    assert g.wiped == 2


def test_an_unknown_retention_wipes(tmp_path: Path) -> None:
    store = PersistentStore()
    now = [1000.0]
    g = guard(tmp_path / "stamps.json", store, None, now)
    store._db_for_partition(0)[key_in(0)] = b"state"
    g.stamp([0])
    asyncio.run(g.before_recovery({0}))
    assert store.dbs[0] == {}


def test_a_memory_store_drops_the_partition_it_gets_back(tmp_path: Path) -> None:
    store = MemoryStore()
    keys = {p: key_in(p) for p in range(PARTITIONS)}
    store.data.update({k: b"state" for k in keys.values()})
    now = [1000.0]
    g = guard(tmp_path / "stamps.json", store, 86400.0, now)
    g.stamp([1])
    asyncio.run(g.before_recovery({1}))
    assert keys[1] not in store.data
    assert set(store.data) == {keys[0], keys[2], keys[3]}
