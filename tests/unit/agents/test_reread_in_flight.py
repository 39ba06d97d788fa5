"""A partition sent back to read a hole again gets the hole's records, although records beyond
it, fetched before the seek, are still handed out after it (Faust's fetcher waits on a full
agent queue mid-batch under load). Run against faust-streaming's own
`Consumer._drain_messages`, whose read offset drops records below it as already read."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from faust.transport.consumer import Consumer
from faust.types import TP

from churnstream.agents import faust_private

P = TP("logins", 0)


class Record(SimpleNamespace):
    topic: str
    offset: int


class DrainingConsumer:
    """What `Consumer._drain_messages` reads; `seek_wait` sets the read offset as Faust's
    aiokafka driver does. `on_handed(offset)` runs while the fetcher waits on that record."""

    should_stop = False
    consumer_stopped_errors: tuple[type[BaseException], ...] = ()
    _commit_every = None
    _drain_messages = Consumer._drain_messages

    def __init__(self, fetches: list[list[int]], on_handed: dict[int, Any]) -> None:
        self.fetches = fetches
        self.on_handed = on_handed
        self.handed: list[int] = []
        self.errors: list[Any] = []
        self.log = SimpleNamespace(
            dev=lambda *args: None,
            info=lambda *args: None,
            exception=lambda *args: self.errors.append(args),
        )
        self._read_offset: Any = defaultdict(lambda: None)
        self._stopped = asyncio.Event()
        self.suspend_flow = asyncio.Event()
        self.diag = SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None)
        self.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: False))
        self.transport = SimpleNamespace(app=SimpleNamespace(should_stop=False))

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Record]]:
        if not self.fetches:
            self._stopped.set()
            return
        for offset in self.fetches.pop(0):
            yield P, Record(topic=P.topic, offset=offset, key=None, value=None)

    async def callback(self, message: Record) -> None:
        self.handed.append(message.offset)
        action = self.on_handed.pop(message.offset, None)
        if action is not None:
            await action()

    async def seek_wait(self, partitions: dict[TP, int]) -> None:
        for tp, offset in partitions.items():
            self._read_offset[tp] = offset

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def wait_first(self, *coros: Any) -> None:
        first, *rest = coros
        for coro in rest:
            coro.close()
        await first


def drain(consumer: DrainingConsumer) -> list[int]:
    fetcher = SimpleNamespace(_stopped=asyncio.Event())
    asyncio.run(consumer._drain_messages(fetcher))
    assert consumer.errors == []
    return consumer.handed


def test_a_hole_is_read_again_while_the_batch_beyond_it_is_handed_out() -> None:
    # Offsets 3..5 were lost; the guard sends the consumer back to 3 while the fetcher waits
    # on record 6 of a batch that goes on to 8. The fetch after the seek starts at 3.
    consumer = DrainingConsumer(fetches=[[0, 1, 2], [6, 7, 8], [3, 4, 5, 6, 7, 8, 9]], on_handed={})
    faust_private.keep_rewinds(consumer)
    consumer.on_handed[6] = lambda: faust_private.seek_back(consumer, P, 3)
    handed = drain(consumer)
    assert handed[:5] == [0, 1, 2, 6, 7]
    assert handed[5:] == [8, 3, 4, 5, 6, 7, 8, 9]  # the hole, and what followed, again
    assert consumer._read_offset[P] == 9


def test_without_a_rewind_records_below_the_read_offset_are_dropped_as_read() -> None:
    consumer = DrainingConsumer(fetches=[[0, 1, 2], [1, 2, 3]], on_handed={})
    faust_private.keep_rewinds(consumer)
    assert drain(consumer) == [0, 1, 2, 2, 3]  # Faust hands its read offset out again
