"""Batches from the agent's queue: bounded, lingering once per batch, ending at shutdown."""

from __future__ import annotations

import asyncio

from churnstream.agents.intake import batches


class ClosingQueue(asyncio.Queue):  # type: ignore[type-arg]
    """An asyncio queue whose getters see StopAsyncIteration once closed (as Faust's does)."""

    closed = False

    async def get(self):  # type: ignore[no-untyped-def]
        if self.closed and self.empty():
            raise StopAsyncIteration
        return await super().get()


def test_takes_what_is_queued_up_to_the_bound() -> None:
    async def go() -> list[list[int]]:
        q = ClosingQueue()
        for i in range(7):
            q.put_nowait(i)
        it = batches(q, max_events=3, linger_s=0.0)
        return [await anext(it) for _ in range(3)]

    assert asyncio.run(go()) == [[0, 1, 2], [3, 4, 5], [6]]


def test_linger_collects_what_arrives_shortly_after_the_first_event() -> None:
    async def go() -> list[int]:
        q = ClosingQueue()
        it = batches(q, max_events=100, linger_s=0.2)

        async def feed() -> None:
            q.put_nowait(1)
            await asyncio.sleep(0.01)
            q.put_nowait(2)

        feeder = asyncio.ensure_future(feed())
        batch = await anext(it)
        await feeder
        return batch

    assert asyncio.run(go()) == [1, 2]


def test_a_closing_channel_ends_the_batches() -> None:
    async def go() -> list[list[int]]:
        q = ClosingQueue()
        q.put_nowait(1)
        q.closed = True
        return [b async for b in batches(q, max_events=10, linger_s=0.0)]

    assert asyncio.run(go()) == [[1]]
