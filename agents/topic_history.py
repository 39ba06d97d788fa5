"""The input topics as a backfill's history: from their beginning to a cut, merged by event time.

`churnstream backfill --from-topics` reads every partition of the six input topics from its
first offset up to its cut: the first record whose event time is at or after `until`, or, with
no `until`, the end offset when the reading started. The records of all partitions go to the
backfill merged in event-time order (ties: contract topic order, then partition and offset; the
order the worker's aligner releases them in), each partition in its own offset order; a record
without a readable time keeps its place in its partition.

The cut is per partition and by offset, so the handover is exact: the backfill had every record
before it, and committing the cuts as the worker group's offsets (`commit_cuts`) makes the worker
start at them. A late record (event time before `until`) stored after its partition's cut goes
to the worker, as it would have live; so does everything after a record dated far in the
future, which cuts its partition early.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import deque
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.kafka.admin import existing_topics
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

FETCH_TIMEOUT_MS = 1000
T = TypeVar("T")
# event time, topic rank, partition, offset: the merge order
Head = tuple[float, int, int, int, TopicPartition]


class TopicHistoryError(ChurnstreamError, RuntimeError):
    """The input topics cannot be read as a history; the message says why, on one line."""


@dataclass
class Cuts:
    """Where the backfill stopped in each input partition: the worker's first offset there."""

    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # end offsets at the start

    def left(self) -> int:
        """Records between the cuts and the end offsets at the start: the live stream's."""
        return sum(self.ends[tp] - cut for tp, cut in self.offsets.items())


class TopicHistory:
    """Reads the input topics on an event loop of its own, so the replay, which is synchronous
    code, pulls records as it goes (nothing is held beyond one fetch per partition)."""

    def __init__(self, settings: Settings, bootstrap: str, until: float | None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.until = until
        self.cuts = Cuts()
        self.total = 0  # records between the beginnings and the end offsets at the start
        self._loop = asyncio.new_event_loop()
        self._consumer: AIOKafkaConsumer | None = None
        self._rank = {settings.topic(name): i for i, name in enumerate(INPUT_TOPICS.values())}
        self._buffers: dict[TopicPartition, deque[tuple[float, int, bytes | None]]] = {}
        self._last_ts: dict[TopicPartition, float] = {}

    def open(self) -> TopicHistory:
        """Find the partitions, their beginnings and end offsets."""
        self._run(self._open_consumer())
        return self

    def close(self) -> None:
        if self._consumer is not None:
            self._run(self._consumer.stop())
            self._consumer = None
        self._loop.close()

    def __enter__(self) -> TopicHistory:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run_until_complete(coro)

    @property
    def _reader(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "open() first"
        return self._consumer

    async def _open_consumer(self) -> None:
        consumer = self._consumer = AIOKafkaConsumer(  # on this loop
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            group_id=None,
            max_partition_fetch_bytes=4 << 20,
            **client_options(self.settings),
        )
        await consumer.start()
        counts = await existing_topics(self.settings, bootstrap=self.bootstrap)
        tps = [
            TopicPartition(topic, p) for topic in self._rank for p in range(counts.get(topic, 0))
        ]
        if not tps:
            raise TopicHistoryError(
                f"no input topic on the broker ({', '.join(self._rank)}): nothing to backfill"
            )
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        self.cuts.ends = await consumer.end_offsets(tps)
        for tp in tps:
            self.total += self.cuts.ends[tp] - starts[tp]
            if starts[tp] >= self.cuts.ends[tp]:
                self.cuts.offsets[tp] = self.cuts.ends[tp]  # nothing to read
            else:
                consumer.seek(tp, starts[tp])
                self._buffers[tp] = deque()
                self._last_ts[tp] = -math.inf

    def records(self) -> Iterator[ReplayRecord]:
        """Every record before the cuts, merged by event time."""
        heads: list[Head] = []
        self._fill(list(self._buffers))
        for tp in list(self._buffers):
            self._push(heads, tp)
        while heads:
            _, _, _, _, tp = heapq.heappop(heads)
            _, offset, value = self._buffers[tp].popleft()
            topic = tp.topic.removeprefix(self.settings.topic_prefix)
            yield ReplayRecord(KIND_BY_TOPIC.get(topic), topic, value, offset)
            if not self._buffers[tp] and tp not in self.cuts.offsets:
                self._fill([tp])
            self._push(heads, tp)

    def _push(self, heads: list[Head], tp: TopicPartition) -> None:
        """Put the partition's next record among the heads, unless it is at its cut."""
        buffer = self._buffers[tp]
        if not buffer:
            return
        ts, offset, _ = buffer[0]
        if self.until is not None and ts >= self.until:
            self.cuts.offsets[tp] = offset
            buffer.clear()
            return
        heapq.heappush(heads, (ts, self._rank[tp.topic], tp.partition, offset, tp))

    def _fill(self, tps: list[TopicPartition]) -> None:
        """Fetch until each of `tps` has a record buffered or has reached its end offset."""
        waiting = [tp for tp in tps if tp not in self.cuts.offsets]
        while waiting:
            fetched = self._run(self._reader.getmany(*waiting, timeout_ms=FETCH_TIMEOUT_MS))
            for tp, batch in fetched.items():
                end, buffer = self.cuts.ends[tp], self._buffers[tp]
                for msg in batch:
                    if msg.offset < end:
                        buffer.append((self._ts(tp, msg.value), msg.offset, msg.value))
            still = []
            for tp in waiting:
                if self._buffers[tp]:
                    continue
                if self._run(self._reader.position(tp)) >= self.cuts.ends[tp]:
                    self.cuts.offsets[tp] = self.cuts.ends[tp]
                else:
                    still.append(tp)
            waiting = still

    def _ts(self, tp: TopicPartition, value: bytes | None) -> float:
        """The record's event time; one without a readable time takes its predecessor's."""
        ts = None
        try:
            doc = orjson.loads(value) if value is not None else None
            if isinstance(doc, dict):
                ts = parse_ts(doc.get("ts"))
        except orjson.JSONDecodeError:
            pass
        if ts is None:
            return self._last_ts[tp]
        self._last_ts[tp] = ts
        return ts


async def commit_cuts(settings: Settings, bootstrap: str, cuts: Cuts) -> None:
    """Commit the cuts as the worker group's offsets: the workers start there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=settings.app_id,
        **client_options(settings),
    )
    await consumer.start()
    try:
        consumer.assign(list(cuts.offsets))
        await consumer.commit(dict(cuts.offsets))
    finally:
        await consumer.stop()
