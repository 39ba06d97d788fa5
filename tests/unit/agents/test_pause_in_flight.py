"""Back-pressure must not lose records: a partition paused while Faust hands out a fetched
batch (its fetcher waits on a full agent queue mid-batch under load) still gets the rest of
that batch, because aiokafka's position has already moved past all of it. Run against
faust-streaming's own `Consumer.getmany`, the code that checks each record against the active
partitions."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from churnstream.agents import faust_private

A, B = TP("logins", 0), TP("syncs", 0)


class FetchingConsumer:
    """The state `Consumer.getmany` reads around one fetched batch; the methods are Faust's."""

    flow_active = True
    should_stop = False
    _get_active_partitions = Consumer._get_active_partitions
    _set_active_tps = Consumer._set_active_tps
    pause_partitions = Consumer.pause_partitions
    resume_partitions = Consumer.resume_partitions
    getmany = Consumer.getmany

    def __init__(self, batch: dict[TP, list[int]]) -> None:
        self.batch = batch
        self.app = SimpleNamespace(
            consumer_generation_id=1,
            monitor=SimpleNamespace(track_tp_end_offset=lambda tp, end: None),
        )
        self.scheduler = SimpleNamespace(
            iterate=lambda records: ((tp, r) for tp, rs in records.items() for r in rs)
        )
        self._active_partitions: set[TP] | None = None
        self._paused_partitions: set[TP] = set()
        self._buffered_partitions: set[TP] = set()
        self.asked: list[set[TP]] = []

    def assignment(self) -> set[TP]:
        return set(self.batch)

    def highwater(self, tp: TP) -> int:
        return max(self.batch[tp]) + 1

    async def _wait_next_records(self, timeout: float) -> tuple[Any, set[TP]]:
        active = self._get_active_partitions()
        self.asked.append(set(active))
        return {tp: rs for tp, rs in self.batch.items() if tp in active}, active

    def _to_message(self, tp: TP, offset: int) -> tuple[TP, int]:
        return tp, offset


async def hand_out(consumer: FetchingConsumer, pause_after: int) -> list[tuple[TP, int]]:
    """One fetch handed out; `A` is paused once `pause_after` records were handed out."""
    out = []
    async for _, message in consumer.getmany(timeout=1.0):
        out.append(message)
        if len(out) == pause_after:
            faust_private.pause_fetching(consumer, [A])
    return out


def test_a_partition_paused_mid_batch_gets_the_rest_of_the_batch() -> None:
    consumer = FetchingConsumer({A: [10, 11, 12, 13], B: [5, 6]})
    handed = asyncio.run(hand_out(consumer, pause_after=1))
    assert handed == [(A, 10), (A, 11), (A, 12), (A, 13), (B, 5), (B, 6)]
    # The next fetch no longer asks for it, and a resume asks again.
    assert asyncio.run(hand_out(consumer, pause_after=0)) == [(B, 5), (B, 6)]
    assert consumer.asked[-1] == {B}
    faust_private.resume_fetching(consumer, [A])
    assert consumer._get_active_partitions() == {A, B}
    assert consumer._paused_partitions == set()
