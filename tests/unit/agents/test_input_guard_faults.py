"""The input guard when records are gone or must be read again: offsets removed by retention
before the group processed them, and a rewind to the committed offsets after a failed turn."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from test_input_guard_backpressure import TP, FakeApp, FakeConsumer

from churnstream.agents.input_guard import InputGuard
from churnstream.agents.metrics import WorkerMetrics
from churnstream.stream.settings import Settings

A, B = TP("logins", 0), TP("logins", 1)


class Broker:
    """The guard's probe consumer and admin client over one log per partition: offsets from
    `start` (the log start) to `end` hold a record each; `committed` is the group's."""

    def __init__(self, start: dict[TP, int], end: dict[TP, int], committed: dict[TP, int]) -> None:
        self.start, self.end, self.committed = start, end, committed
        self.position = 0

    async def beginning_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {p: self.start[TP(p.topic, p.partition)] for p in parts}

    async def list_consumer_group_offsets(
        self, group: str, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, Any]:
        return {
            p: SimpleNamespace(offset=self.committed.get(TP(p.topic, p.partition), -1))
            for p in partitions
        }

    def assign(self, parts: list[TopicPartition]) -> None:
        pass

    def seek(self, part: TopicPartition, offset: int) -> None:
        self.position = offset

    async def getmany(
        self, part: TopicPartition, timeout_ms: int, max_records: int
    ) -> dict[TopicPartition, list[Any]]:
        tp = TP(part.topic, part.partition)
        offset = max(self.position, self.start[tp])
        return {part: [SimpleNamespace(offset=offset)]} if offset < self.end[tp] else {}


class SeekingConsumer(FakeConsumer):
    def __init__(self, highwater: dict[TP, int | None]) -> None:
        super().__init__(highwater)
        self.seeks: list[dict[TP, int]] = []

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.seeks.append(dict(offsets))


def guard_over(broker: Broker) -> tuple[InputGuard, SeekingConsumer]:
    consumer = SeekingConsumer({tp: end for tp, end in broker.end.items()})
    guard = InputGuard(FakeApp(consumer), Settings(), "localhost:9092", WorkerMetrics(), ["logins"])

    async def client() -> Broker:
        return broker

    guard._probe_consumer = client  # type: ignore[assignment,method-assign]
    guard._admin_client = client  # type: ignore[assignment,method-assign]
    return guard, consumer


def expired(guard: InputGuard) -> float | None:
    return guard.metrics.registry.get_sample_value(
        "churnstream_input_records_expired_total", {"topic": "logins"}
    )


def message(tp: TP, offset: int) -> Any:
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=offset, generation_id=1)


def test_a_committed_offset_below_the_log_start_starts_at_the_log_start() -> None:
    guard, _ = guard_over(Broker({A: 10, B: 0}, {A: 20, B: 5}, {A: 3}))
    asyncio.run(guard.sync())
    assert guard.sequence.expected(("logins", 0)) == 10
    assert guard.sequence.expected(("logins", 1)) == 0  # nothing committed: the log start
    assert expired(guard) == 7
    assert guard.take(message(A, 10)) is True


def test_records_removed_while_the_worker_lags_are_counted_and_skipped_once() -> None:
    broker = Broker({A: 0}, {A: 20}, {A: 3})
    guard, consumer = guard_over(broker)
    asyncio.run(guard.sync())
    assert guard.take(message(A, 3)) is True
    broker.start[A] = 10  # retention removes offsets 4..9 before the consumer reads them
    assert guard.take(message(A, 10)) is None  # a jump: the broker is asked
    assert asyncio.run(guard.settle(message(A, 10))) is True
    assert expired(guard) == 6
    assert consumer.seeks == []  # never sent back below the log start
    assert guard.take(message(A, 11)) is True
    assert (
        guard.metrics.registry.get_sample_value("churnstream_input_gaps_total", {"kind": "lost"})
        == 0
    )


def test_a_stalled_partition_below_the_log_start_is_read_again_from_the_log_start() -> None:
    guard, consumer = guard_over(Broker({A: 10}, {A: 20}, {A: 3}))
    guard.generation = 1
    guard.sequence.reset({("logins", 0): 3})
    asyncio.run(guard._read_again(("logins", 0), 3))
    assert consumer.seeks == [{A: 10}]
    assert guard.sequence.expected(("logins", 0)) == 10
    assert expired(guard) == 7


def test_a_rewind_sends_back_only_the_partitions_taken_beyond_their_commit() -> None:
    guard, consumer = guard_over(Broker({A: 0, B: 0}, {A: 20, B: 5}, {A: 12, B: 5}))
    asyncio.run(guard.sync())
    for offset in range(12, 15):  # taken by a turn that then failed
        assert guard.take(message(A, offset)) is True
    asyncio.run(guard.sync(rewind=True))
    assert consumer.seeks == [{A: 12}]  # B had nothing beyond its commit: left alone
    assert guard.sequence.expected(("logins", 0)) == 12
    assert guard.take(message(A, 15)) is False  # still queued from before: dropped
    assert guard.take(message(A, 12)) is True
