"""Kafka side of the soak: produce with locations, read a topic whole, group lag, delete-records.

Every helper is synchronous (one `asyncio.run` each) so the drills read as plain sequences of
steps, and every wait is a condition polled against a deadline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

# (topic, key, value) as sent; (topic, partition, offset) as stored.
Record = tuple[str, bytes | None, bytes | None]
Location = tuple[str, int, int]
CHUNK = 5000  # delivery futures awaited together


def produce(
    bootstrap: str,
    records: Iterable[Record],
    *,
    rate: float | None = None,
    stop: Callable[[], bool] | None = None,
) -> list[Location]:
    """Send `records` in order with acks=all, paced to `rate` records/s if given; returns each
    record's location. `stop` is checked between chunks (a background producer's off switch)."""

    async def go() -> list[Location]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            linger_ms=10,
            max_request_size=4 * 2**20,
            request_timeout_ms=120_000,
        )
        await producer.start()
        out: list[Location] = []
        step = CHUNK if rate is None else max(1, int(rate / 10))
        began = time.monotonic()
        try:
            pending: list[Any] = []

            async def settle() -> None:
                out.extend((m.topic, m.partition, m.offset) for m in await asyncio.gather(*pending))
                pending.clear()

            for topic, key, value in records:
                pending.append(await producer.send(topic, value, key=key))
                if len(pending) >= step:
                    await settle()
                    if stop is not None and stop():
                        break
                    if rate is not None:
                        ahead = began + len(out) / rate - time.monotonic()
                        if ahead > 0:
                            await asyncio.sleep(ahead)  # pacing, not synchronisation
            await settle()
        finally:
            await producer.stop()
        return out

    return asyncio.run(go())


async def _partitions(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
    )


def read_topic(bootstrap: str, topic: str, timeout: float = 120.0) -> list[Any]:
    """Every record of `topic` from its log start to its log end as of the call."""

    async def go() -> list[Any]:
        tps = await _partitions(bootstrap, [topic])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_bytes=32 * 2**20,
            max_partition_fetch_bytes=8 * 2**20,
        )
        await consumer.start()
        try:
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while True:
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{topic}: not read to its end in {timeout:.0f} s")
                batch = await consumer.getmany(timeout_ms=500, max_records=50_000)
                for records in batch.values():
                    out.extend(records)
            return out
        finally:
            await consumer.stop()

    return asyncio.run(go())


def latest_values(records: Iterable[Any]) -> dict[bytes, bytes | None]:
    """Compacted view of a keyed topic: the last value of each key (None: a tombstone)."""
    out: dict[bytes, bytes | None] = {}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        out[rec.key] = rec.value
    return out


def lag(bootstrap: str, group: str, topics: Sequence[str]) -> tuple[int, int]:
    """(records of `topics` still readable past `group`'s committed offsets, records between a
    committed offset and a later log start): the second cannot be read any more (retention or
    delete-records), yet lag tools that subtract the committed offset count it."""

    async def go() -> tuple[int, int]:
        tps = await _partitions(bootstrap, topics)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
            starts = await consumer.beginning_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await consumer.stop()
            await admin.close()
        behind = gone = 0
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
            behind += max(ends[tp] - max(done, starts[tp]), 0)
            gone += max(starts[tp] - done, 0)
        return behind, gone

    return asyncio.run(go())


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """`group`'s committed offset per partition of `topic` (-1: none)."""

    async def go() -> dict[int, int]:
        tps = await _partitions(bootstrap, [topic])
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await admin.close()
        return {tp.partition: (offsets[tp].offset if tp in offsets else -1) for tp in tps}

    return asyncio.run(go())


def delete_records(bootstrap: str, topic: str, partition: int, before: int) -> int:
    """Delete the records of one partition below offset `before`; returns the new log start."""

    async def go() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            tp = TopicPartition(topic, partition)
            done = await admin.delete_records({tp: RecordsToDelete(before)}, timeout_ms=30_000)
        finally:
            await admin.close()
        return done[tp]

    return asyncio.run(go())
