"""Every use of a private Faust API, in one place: a Faust upgrade is checked here.

The worker commits its own offsets and writes the table's store itself, outside any stream
event (agents/commits.py, agents/repository.py), and reads the consumer's committed offsets
for the lag gauge (agents/monitor.py). Faust has no public API for these, so they reach into
its internals. The input guard also pauses and resumes fetching input partitions during a
catch-up (back-pressure of the event-time aligner): public methods, but their state is Faust's
own flow control, whose rebalance behaviour the guard relies on. The store guard
(agents/store_guard.py) wipes a table partition's local store before Faust recovers it. Each
function below names the faust-streaming behaviour it relies on (checked against 0.15.3, the
version pyproject.toml pins); no other module touches a `_` attribute of a Faust object.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from faust.types import TP

from churnstream.agents.outputs import key_partition


async def commit_offsets(consumer: Any, offsets: Mapping[TP, int]) -> bool:
    """Commit exactly `offsets` through the group's consumer; False if nothing was committed.

    faust-streaming 0.15.3 `Consumer._commit_offsets`: drops the partitions no longer assigned
    (revoked in a rebalance: they are processed again by their new owner), flushes Faust's
    producer, commits the rest with the member's current generation, and records the commit
    in `_committed_offset` and the time its liveness checks look at. It raises if the commit
    fails (e.g. a rebalance started).
    """
    return bool(await consumer._commit_offsets(offsets))


def committed_offsets(consumer: Any) -> Mapping[TP, int | None]:
    """The offsets the consumer last committed, by partition (empty if unknown).

    faust-streaming 0.15.3 `Consumer._committed_offset`: a defaultdict(None) that
    `_commit_offsets` and the seek to the committed offsets at assignment update.
    """
    committed: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
    return committed


def store_writer(store: Any, partitions: int) -> Callable[[bytes, bytes], None]:
    """`put(key, value)` into a table's store, outside any stream event.

    The memory store takes `store[key] = value` (public). faust-streaming 0.15.3's RocksDB
    `Store` keeps one database per partition and picks it from the current event, which a
    flush at the end of a batch does not have: its `_db_for_partition(partition)` gives the
    database and `_key_index` (an LRU of key -> partition) must learn the key, as its own
    `_set` does. The partition is the key's (murmur2, like the changelog record's).
    """
    db_for_partition = getattr(store, "_db_for_partition", None)
    if db_for_partition is None:
        return store.__setitem__
    key_index = store._key_index

    def put(key: bytes, value: bytes) -> None:
        partition = key_partition(key, partitions)
        db_for_partition(partition).put(key, value)
        key_index[key] = partition

    return put


def store_stats(store: Any) -> tuple[int, int]:
    """(records, bytes) held by a table's store, without reading every value from disk.

    The memory store keeps a dict in `.data` (its values are in memory, summing their lengths
    copies nothing). faust-streaming 0.15.3's RocksDB `Store` keeps one database per partition
    in `_dbs` (rocksdict `Rdict`s, the `rocksdb` extra); RocksDB's own estimates
    (`rocksdb.estimate-num-keys`, `...-live-data-size`) come without a scan, where iterating the
    table would read the whole database.
    """
    dbs = getattr(store, "_dbs", None)
    if dbs is None:
        data = store.data
        return len(data), sum(map(len, data.values()))

    def estimate(name: str) -> int:
        return sum(db.property_int_value(name) or 0 for db in list(dbs.values()))

    return estimate("rocksdb.estimate-num-keys"), estimate("rocksdb.estimate-live-data-size")


def pause_fetching(consumer: Any, tps: Iterable[TP]) -> None:
    """Stop handing out records of `tps` until `resume_fetching`, without losing any.

    faust-streaming 0.15.3 `Consumer.pause_partitions` takes them out of the active partitions
    that its fetcher asks aiokafka for (records aiokafka already fetched stay in its buffer, one
    fetch per partition). But `Consumer.getmany` checks each record of the batch it is handing
    out against that same set object (`_active_partitions`), and aiokafka's position has moved
    past the whole batch: removing a partition in place while a batch is handed out (the fetcher
    waits on a full agent queue mid-batch under load) silently skips the batch's remaining
    records of it, a hole the input guard then reads again, at every pause. So the set is
    replaced by a copy first: the batch in hand is handed out whole, the next fetch asks
    without `tps`. The state is shared with Faust's own flow control: a rebalance pauses the
    whole assignment and the end of its recovery resumes every assigned partition, so a pause
    of ours does not outlive a rebalance (the caller forgets it then).
    """
    consumer._active_partitions = set(consumer._get_active_partitions())
    consumer.pause_partitions(tps)


class ReadOffsets(defaultdict[Any, int | None]):
    """Faust's `Consumer._read_offset` (the last offset its fetcher handed out per partition;
    it drops records below it as already read), where a partition sent back stays back.

    faust-streaming 0.15.3 `Consumer._drain_messages` hands out a fetched batch record by record,
    waiting on the agent's queue, and sets the read offset after each. A seek sets it to the
    seek's offset, but the records of the batch in hand that lie beyond raise it again, and the
    records read again from the seek's offset on are then dropped as already read: the hole
    stays open, and is sent back again and again while the partition keeps delivering. So after
    `rewind` the offset is not raised above the seek's offset until that record was handed out.
    """

    def __init__(self, current: Mapping[Any, int | None]) -> None:
        super().__init__(lambda: None, current)
        self.rewound: dict[Any, int] = {}

    def rewind(self, tp: Any, offset: int) -> None:
        self.rewound[tp] = offset
        super().__setitem__(tp, offset)

    def __setitem__(self, tp: Any, offset: int | None) -> None:
        floor = self.rewound.get(tp)
        if floor is not None and offset is not None and offset > floor:
            return  # handed out from a fetch before the rewind
        self.rewound.pop(tp, None)
        super().__setitem__(tp, offset)

    def pop(self, tp: Any, *default: Any) -> Any:  # revoked (`Consumer.on_partitions_revoked`)
        self.rewound.pop(tp, None)
        return super().pop(tp, *default)


def keep_rewinds(consumer: Any) -> None:
    """Install `ReadOffsets` on Faust's consumer; before its fetcher starts, which binds the
    mapping's methods once (faust-streaming 0.15.3 `Consumer._drain_messages`)."""
    consumer._read_offset = ReadOffsets(consumer._read_offset)


def forget_rewinds(consumer: Any) -> None:
    """A new generation: Faust's own seeks to the committed offsets decide again."""
    offsets = getattr(consumer, "_read_offset", None)
    if isinstance(offsets, ReadOffsets):
        offsets.rewound.clear()


async def seek_back(consumer: Any, tp: TP, offset: int) -> None:
    """Send the consumer back to `offset` of `tp`; Faust hands out the records from there on
    even if records beyond, fetched before, are handed out meanwhile (see `ReadOffsets`).

    faust-streaming 0.15.3 `Consumer.seek_wait` seeks aiokafka (which drops what it buffered for
    the partition) and sets the read offset, then waits for the position.
    """
    await consumer.seek_wait({tp: offset})
    offsets = getattr(consumer, "_read_offset", None)
    if isinstance(offsets, ReadOffsets):
        offsets.rewind(tp, offset)


def resume_fetching(consumer: Any, tps: Iterable[TP]) -> None:
    """Hand out records of `tps` again (faust-streaming 0.15.3 `Consumer.resume_partitions`)."""
    consumer.resume_partitions(tps)


def before_table_recovery(table: Any, callback: Callable[[set[int]], Awaitable[None]]) -> None:
    """Await `callback(partitions)` at each rebalance with the partitions of `table`'s
    changelog newly assigned to this worker, once the store opened them and before recovery
    reads them.

    faust-streaming 0.15.3: `Table.on_rebalance` awaits `store.on_rebalance(assigned, revoked,
    newly_assigned, generation_id)` (the RocksDB store opens the newly assigned partitions'
    databases there), and `TableManager.on_rebalance` starts the recovery, which reads each
    partition's `persisted_offset`, only after every table's returned. The store's method is
    wrapped on the instance.
    """
    store = table.data
    topic = table.changelog_topic.get_topic_name()
    original = store.on_rebalance

    async def on_rebalance(
        assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        await original(assigned, revoked, newly_assigned, generation_id)
        mine = {tp.partition for tp in newly_assigned if tp.topic == topic}
        if mine:
            await callback(mine)

    store.on_rebalance = on_rebalance


def store_is_persistent(store: Any) -> bool:
    """True for a store that keeps partitions across revocations and restarts (RocksDB)."""
    return getattr(store, "_db_for_partition", None) is not None


def wipe_partition(store: Any, partition: int, partitions: int) -> int:
    """Delete every key of `partition` from a table's store, its persisted changelog offset
    included (recovery then reads the partition's changelog from its start); returns the
    number of keys deleted.

    faust-streaming 0.15.3's memory store keeps every partition in one dict (`.data`), with
    `_key_partition` (key -> partition) for the keys it read from the changelog, and drops
    nothing of a partition revoked from it; the key's partition is murmur2's, as the worker
    writes it. The RocksDB store's `_db_for_partition(partition)` is the partition's database
    (see `store_writer`), which holds the offset under `Store.offset_key`.
    """
    db_for_partition = getattr(store, "_db_for_partition", None)
    if db_for_partition is None:
        data = store.data
        keys = [key for key in data if key_partition(key, partitions) == partition]
        key_partitions = getattr(store, "_key_partition", {})
        for key in keys:
            del data[key]
            key_partitions.pop(key, None)
        return len(keys)
    db = db_for_partition(partition)
    keys = list(db.keys())
    for key in keys:
        db.delete(key)
    return len(keys)
