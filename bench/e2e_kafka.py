"""Kafka side of the end-to-end benchmark: produce, a bare consumer, and progress watchers.

Throughput is measured the same way for every consumer that commits offsets: the harness
samples (time, records done) and the rate is taken between the first sample that shows
progress and the first that shows everything done, so start-up and group join are excluded
and both ends carry the same commit-interval quantisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from churnstream.stream.devtools.simulator.kafka_sink import send_records
from churnstream.stream.devtools.simulator.records import SimRecord

POLL_S = 0.2  # how often progress is sampled; small against runs of tens of seconds
STALL_S = 60.0  # no progress for this long: the consumer is stuck, fail the phase early


@dataclass(frozen=True, slots=True)
class Throughput:
    """Records processed between the first and the last progress sample, and how long it took."""

    records: int
    seconds: float
    method: str

    @property
    def per_second(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


class Progress:
    """(monotonic time, records done) samples; the rate spans first progress to completion."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.first: tuple[float, int] | None = None
        self.last: tuple[float, int] | None = None

    def sample(self, done: int) -> None:
        now = time.monotonic()
        if done > 0 and self.first is None:
            self.first = (now, done)
        self.last = (now, done)

    def result(self) -> Throughput:
        if self.first is None or self.last is None or self.last[0] <= self.first[0]:
            raise RuntimeError(f"{self.method}: too few progress samples to time the run")
        return Throughput(self.last[1] - self.first[1], self.last[0] - self.first[0], self.method)


async def produce(
    records: Iterable[SimRecord], bootstrap: str, prefix: str, rate: float | None = None
) -> int:
    """Send `records` to the `prefix`ed contract topics; `rate` in records per wall second."""
    return await send_records(
        records, bootstrap, rate=rate, progress=None, topic_name=lambda name: prefix + name
    )


async def wait_until(
    probe: Callable[[], Awaitable[int]],
    target: int,
    deadline_s: float,
    progress: Progress | None = None,
    alive: Callable[[], None] | None = None,
) -> int:
    """Poll `probe` until it returns >= `target`; raise TimeoutError after `deadline_s`, or
    once the count, after its first progress, has not moved for STALL_S.

    `alive` is called on every poll and raises if the process being measured died.
    """
    deadline = time.monotonic() + deadline_s
    last, moved = -1, time.monotonic()
    while True:
        done = await probe()
        now = time.monotonic()
        if progress is not None:
            progress.sample(done)
        if done >= target:
            return done
        if alive is not None:
            alive()
        if done != last:
            last, moved = done, now
        elif done > 0 and now - moved > STALL_S:  # start-up is covered by the deadline
            raise TimeoutError(f"stuck at {done:,} of {target:,} records for {STALL_S:.0f} s")
        if now > deadline:
            raise TimeoutError(f"only {done:,} of {target:,} records done in {deadline_s:.0f} s")
        await asyncio.sleep(POLL_S)


class GroupOffsets:
    """Committed offsets of one consumer group over a set of topics, summed."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = set(topics)
        self._admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)

    async def __aenter__(self) -> GroupOffsets:
        await self._admin.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def committed(self) -> int:
        offsets = await self._admin.list_consumer_group_offsets(self.group)
        return sum(max(0, m.offset) for tp, m in offsets.items() if tp.topic in self.topics)


async def end_offsets(bootstrap: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
    """Log-end offset of every partition of `topics`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if len({tp.topic for tp in tps}) < len(set(topics)):
            await consumer._client.force_metadata_update()  # first use of a topic: refresh
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def bare_consume(
    bootstrap: str, topics: Sequence[str], expected: int, group: str, deadline_s: float
) -> Throughput:
    """(a) A plain aiokafka group consumer that orjson-decodes every value until `expected`."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    done = 0
    progress = Progress("first batch received to last record decoded (first batch excluded)")
    deadline = time.monotonic() + deadline_s
    try:
        while done < expected:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare consumer: {done:,} of {expected:,} in {deadline_s} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                for record in records:
                    orjson.loads(record.value)
                done += len(records)
            progress.sample(done)
    finally:
        await consumer.stop()
    return progress.result()


async def read_all(
    bootstrap: str, topics: Sequence[str], deadline_s: float = 60.0
) -> list[ConsumerRecord[Any, Any]]:
    """Every record now in `topics`, read from the beginning up to the current end offsets."""
    ends = await end_offsets(bootstrap, topics)
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    out: list[ConsumerRecord[Any, Any]] = []
    deadline = time.monotonic() + deadline_s
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        remaining = dict(wanted)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topics} did not reach the end in {deadline_s} s")
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batches.items():
                out.extend(r for r in records if r.offset < wanted[tp])
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        await consumer.stop()
    return out
