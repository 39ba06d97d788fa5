"""The input topics as a backfill's history: from their beginning to a cut, merged by event time.

`churnstream backfill --from-topics` reads every partition of the six input topics from its
first offset up to its cut: the first record at or after `until`, or, with no `until`, the end
offset when the reading started. The partitions' records go to the backfill merged in
event-time order (model/time_merge.py; ties: contract topic order, then partition), each
partition in its own offset order; a record without a readable time, or one dated after the
record that follows it (a spike, such as a record dated years ahead), keeps its place.

The cut is per partition and by offset, so the handover is exact: the backfill had every record
before it, and committing the cuts as the worker group's offsets (`commit_cuts`) makes the worker
start at them. A late record (event time before `until`) stored after its partition's cut goes
to the worker, as it would have live.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.model.replay_input import ReplayRecord
from churnstream.model.time_merge import Record, TimeMerge
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.kafka.admin import existing_topics
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

FETCH_TIMEOUT_MS = 1000
log = logging.getLogger(__name__)
T = TypeVar("T")


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
    code, pulls records as it goes (nothing is held beyond the fetches per partition)."""

    def __init__(self, settings: Settings, bootstrap: str, until: float | None) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.until = until
        self.cuts = Cuts()
        self.total = 0  # records between the beginnings and the end offsets at the start
        # The consumer lives on a loop of its own thread, running all along: its fetches
        # complete while the replay works (a loop run only inside each fetch call left fetch
        # requests timing out between calls).
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="topic-history", daemon=True
        )
        self._thread.start()
        self._consumer: AIOKafkaConsumer | None = None
        self._rank = {settings.topic(name): i for i, name in enumerate(INPUT_TOPICS.values())}
        self._reading: list[TopicPartition] = []  # partitions with records to read

    def open(self) -> TopicHistory:
        """Find the partitions, their beginnings and end offsets."""
        try:
            self._run(self._open_consumer())
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop reading (again: nothing); a consumer that fails to stop is only logged, so the
        error that ended the backfill is the one reported."""
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                self._run(consumer.stop())
            except (Exception, asyncio.CancelledError):
                log.warning("the input topics' reader did not stop cleanly", exc_info=True)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> TopicHistory:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

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
                self._reading.append(tp)

    def records(self) -> Iterator[ReplayRecord]:
        """Every record before the cuts, merged by event time (model/time_merge.py)."""
        merge = TimeMerge(
            {tp: self._partition(tp) for tp in self._reading},
            lambda tp: (self._rank[tp.topic], tp.partition),
            self.until,
        )
        prefix = self.settings.topic_prefix
        for tp, offset, value in merge:
            topic = tp.topic.removeprefix(prefix)
            yield ReplayRecord(KIND_BY_TOPIC.get(topic), topic, value, offset)
        for tp, cut in merge.cuts.items():
            self.cuts.offsets[tp] = self.cuts.ends[tp] if cut is None else cut

    def _partition(self, tp: TopicPartition) -> Iterator[Record]:
        """The partition's records up to its end offset at the start, fetched as needed."""
        end, reader = self.cuts.ends[tp], self._reader
        while True:
            fetched = self._run(reader.getmany(tp, timeout_ms=FETCH_TIMEOUT_MS)).get(tp, [])
            for msg in fetched:
                if msg.offset >= end:
                    return
                yield _event_time(msg.value), msg.offset, msg.value
                if msg.offset + 1 >= end:
                    return
            if not fetched and self._run(reader.position(tp)) >= end:
                return


def _event_time(value: bytes | None) -> float | None:
    try:
        doc = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return parse_ts(doc.get("ts")) if isinstance(doc, dict) else None


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
