"""The worker's outputs (scores, alerts, examples, DLQ, re-keyed records) in record batches.

A batch of input can produce as many output records as it has records. Sent one by one through
the producer's `send()`, each costs a coroutine, a future and a pure-Python murmur2 hash, more
than scoring the event; measured here, outputs were the largest single cost of the full worker.
So the writer fills one aiokafka `BatchBuilder` per topic partition, hashes each key once
(cached), and sends each builder as one batch, awaiting the broker's acknowledgement of all of
them before the caller acks its inputs. A send the broker fails (after the client's own retries,
e.g. a broker away for longer than the request timeout) is sent again, with back-off, until it
is acknowledged: the caller holds its inputs and state until then, so an outage stalls the
worker instead of losing the batch (records acknowledged before the failure may appear twice;
outputs are at least once). Partitions are chosen like the default partitioner
(murmur2 of the key), so records keyed by user id land where a keyed `send()` would put them.

Retrying helps only when the broker may accept the same records later. It never will for a
record larger than the topic's `max.message.bytes`, a missing topic or a denied ACL, and
retrying those forever would hold the worker's inputs in silence. So the writer reads each
topic's `max.message.bytes` once, fills batches below it, and puts a record too large for its
topic in the dead-letter topic instead (a dead-letter record that is itself too large has its
payload cut further); a missing topic or a denied write raises `OutputRefused`, to stop the
worker with one clear message. Each is counted (`on_refused(reason)`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from churnstream.agents.metrics import REFUSALS
from churnstream.stream.contract.dlq import RECORD_LIMIT, dlq_record, refit
from churnstream.stream.errors import ChurnstreamError

log = logging.getLogger(__name__)

# Why the broker refused outputs for good (label values of the refused-outputs counter).
TOO_LARGE, UNKNOWN_TOPIC, NOT_AUTHORIZED = REFUSALS
_FATAL: dict[type[KafkaError], str] = {
    UnknownTopicOrPartitionError: UNKNOWN_TOPIC,
    TopicAuthorizationFailedError: NOT_AUTHORIZED,
    ClusterAuthorizationFailedError: NOT_AUTHORIZED,
}
# Bytes a record batch adds to its records (61-byte header, up to ~20 bytes per record), with
# room to spare: a batch is kept this far below the topic's limit.
_OVERHEAD = 256


class OutputRefused(ChurnstreamError):
    """The broker refuses outputs for a reason no retry can fix (missing topic, denied ACL)."""


Headers = list[tuple[str, bytes]]
Record = tuple[str, bytes | None, bytes | None, Headers | None]  # topic, key, value, headers


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the default partitioner (murmur2 of the key) gives `key`."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


MAX_BATCH_BYTES = 1 << 20
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 10.0
_KEY_CACHE = 200_000  # keys whose partition is remembered (user ids, mostly)


class OutputWriter:
    def __init__(
        self,
        bootstrap: str,
        options: dict[str, Any],
        on_retry: Callable[[], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        *,
        dlq_topic: str = "",
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._options = options
        self._on_retry = on_retry
        self._sleep = sleep  # the back-off wait (tests drive it without waiting)
        self._dlq_topic = dlq_topic  # where a record too large for its topic goes instead
        self._on_refused = on_refused
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
        self._limits: dict[str, int] = {}  # bytes a record batch of the topic may take
        self._hashes: dict[bytes, int] = {}

    async def start(self) -> AIOKafkaProducer:
        """The producer, created and started on first use (inside the worker's event loop)."""
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap,
                acks="all",
                max_batch_size=MAX_BATCH_BYTES,
                max_request_size=4 * MAX_BATCH_BYTES,
                **self._options,
            )
            await self._producer.start()
        return self._producer

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()

    async def partitions(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            producer = await self.start()
            n = self._partitions[topic] = len(await producer.partitions_for(topic))
        return n

    async def limit(self, topic: str) -> int:
        """Bytes one record batch of `topic` may take (its `max.message.bytes`, read once)."""
        n = self._limits.get(topic)
        if n is None:
            n = self._limits[topic] = min(MAX_BATCH_BYTES, await self._max_message_bytes(topic))
        return n

    async def _max_message_bytes(self, topic: str) -> int:
        """The topic's `max.message.bytes`; the broker's default when it cannot be read (a
        principal allowed to write but not to describe): a too-large answer lowers it later."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap, **self._options)
        try:
            await admin.start()
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
            for response in await admin.describe_configs([resource]):
                for error_code, _, _, _, entries in response.resources:
                    for entry in entries if error_code == 0 else ():
                        if entry[0] == "max.message.bytes":
                            return int(entry[1])
        except (KafkaError, OSError, ValueError) as exc:
            log.warning("max.message.bytes of %s not read (%r); assuming the default", topic, exc)
        finally:
            await admin.close()
        return RECORD_LIMIT

    def _refused(self, reason: str) -> None:
        if self._on_refused is not None:
            self._on_refused(reason)

    async def _fit(self, record: Record) -> Record:
        """`record`, or what replaces it when it is too large for its topic: a dead-letter
        record saying so, or, for a dead-letter record, the same with its payload cut."""
        topic, key, value, headers = record
        limit = await self.limit(topic) - _OVERHEAD
        size = len(key or b"") + len(value or b"") + sum(len(k) + len(v) for k, v in headers or ())
        if size <= limit:
            return record
        self._refused(TOO_LARGE)
        if not self._dlq_topic:
            raise ValueError(f"a record of {size} bytes exceeds {topic}'s limit of {limit}")
        if topic == self._dlq_topic:
            log.error(
                "a dead-letter record of %d bytes exceeds %s's limit; payload cut", size, topic
            )
            return (topic, key, refit(value or b"", limit - len(key or b"")), headers)
        log.error("an output record of %d bytes exceeds %s's limit; dead-lettered", size, topic)
        dlq_limit = await self.limit(self._dlq_topic) - _OVERHEAD - len(key or b"")
        dead = dlq_record(
            source_topic=topic,
            partition=-1,  # never written: no position
            offset=-1,
            error="output_too_large",
            detail=f"output record of {size} bytes, over the topic's limit of {limit}",
            payload=value,
            max_bytes=size,
            received_at=time.time(),
            record_limit=dlq_limit,
        )
        return (self._dlq_topic, key, dead, None)

    def _partition(self, key: bytes | None, n: int) -> int:
        if key is None or n == 1:
            return 0  # unkeyed outputs (DLQ records of erased users) go to partition 0
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= _KEY_CACHE:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return h % n

    async def send(
        self, records: list[Record], before_attempt: Callable[[], None] | None = None
    ) -> dict[tuple[str, int], int]:
        """Send (topic, key, value, headers) records, wait until the broker has them all.

        Returns the offset of the last record written to each (topic, partition). Retries
        failed sends with back-off for as long as it takes (cancel the task to give up), except
        those no retry can fix: `OutputRefused` for a missing topic or a denied write.
        `before_attempt` runs before every attempt and may raise to give up (a worker that lost
        its partitions while retrying must not land its records after the new owner's).
        """
        delay = RETRY_FIRST_S
        while True:
            if before_attempt is not None:
                before_attempt()
            try:
                return await self._send_once(records)
            except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
                # The limits read were too high (changed since, or not readable): read them
                # again and halve those that stay put, so the next attempt fits.
                self._refused(TOO_LARGE)
                log.error("the broker refused outputs as too large (%s); refitting", exc)
                topics = {topic for topic, *_ in records}
                old = {t: self._limits.pop(t, MAX_BATCH_BYTES) for t in topics}
                for topic in topics:
                    if await self.limit(topic) >= old[topic]:
                        self._limits[topic] = max(old[topic] // 2, 2 * _OVERHEAD)
            except KafkaError as exc:
                reason = _FATAL.get(type(exc))
                if reason is not None:
                    self._refused(reason)
                    topics = ", ".join(sorted({topic for topic, *_ in records}))
                    raise OutputRefused(
                        f"the broker refuses outputs ({type(exc).__name__}: {reason}) to one of "
                        f"{topics}; create the topic or grant the worker's principal Write on it"
                    ) from exc
                log.warning(
                    "sending %d output records failed (%s: %s); again in %.1f s",
                    len(records),
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if self._on_retry is not None:
                    self._on_retry()
            await self._sleep(delay)
            delay = min(2 * delay, RETRY_MAX_S)

    async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
        producer = await self.start()

        def create(size: int) -> BatchBuilder:  # sized for its topic, not the producer's one
            return BatchBuilder(size, 0, is_transactional=False)  # 0: no compression

        known = self._partitions
        full: list[tuple[str, int, Any]] = []
        open_: dict[tuple[str, int], Any] = {}
        limits = self._limits
        for original in records:
            topic, key, value, headers = await self._fit(original)
            n = known.get(topic) or await self.partitions(topic)
            tp = (topic, self._partition(key, n))
            batch = open_.get(tp)
            if batch is None:
                batch = open_[tp] = create(limits[topic] - _OVERHEAD)
            record = {"key": key, "value": value, "timestamp": None, "headers": headers or []}
            if batch.append(**record) is None:
                # Full: it goes as is, the record starts the partition's next batch.
                full.append((topic, tp[1], batch))
                batch = open_[tp] = create(limits[topic] - _OVERHEAD)
                if batch.append(**record) is None:  # unreachable after _fit; kept as a guard
                    raise ValueError(f"a record for {topic} exceeds its batch size")
        full.extend((topic, p, batch) for (topic, p), batch in open_.items())
        counts = [batch.record_count() for _, _, batch in full]
        sent = [await producer.send_batch(b, topic, partition=p) for topic, p, b in full]
        last: dict[tuple[str, int], int] = {}
        if sent:
            # Each batch's metadata carries its base offset.
            acked = await asyncio.gather(*sent)
            for (topic, p, _), n, meta in zip(full, counts, acked, strict=True):
                end = meta.offset + n - 1
                if end > last.get((topic, p), -1):
                    last[(topic, p)] = end
        return last
