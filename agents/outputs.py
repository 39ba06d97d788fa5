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
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

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
    ) -> None:
        self._bootstrap = bootstrap
        self._options = options
        self._on_retry = on_retry
        self._sleep = sleep  # the back-off wait (tests drive it without waiting)
        self._producer: AIOKafkaProducer | None = None
        self._partitions: dict[str, int] = {}
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

    def _partition(self, key: bytes | None, n: int) -> int:
        if key is None or n == 1:
            return 0  # unkeyed outputs (DLQ records of erased users) go to partition 0
        h = self._hashes.get(key)
        if h is None:
            if len(self._hashes) >= _KEY_CACHE:
                self._hashes.clear()
            h = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return h % n

    async def send(self, records: list[Record]) -> dict[tuple[str, int], int]:
        """Send (topic, key, value, headers) records, wait until the broker has them all.

        Returns the offset of the last record written to each (topic, partition). Retries
        failed sends with back-off for as long as it takes (cancel the task to give up).
        """
        delay = RETRY_FIRST_S
        while True:
            try:
                return await self._send_once(records)
            except KafkaError as exc:
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
        create = producer.create_batch
        known = self._partitions
        full: list[tuple[str, int, Any]] = []
        open_: dict[tuple[str, int], Any] = {}
        for topic, key, value, headers in records:
            n = known.get(topic) or await self.partitions(topic)
            tp = (topic, self._partition(key, n))
            batch = open_.get(tp)
            if batch is None:
                batch = open_[tp] = create()
            record = {"key": key, "value": value, "timestamp": None, "headers": headers or []}
            if batch.append(**record) is None:
                # Full: it goes as is, the record starts the partition's next batch.
                full.append((topic, tp[1], batch))
                batch = open_[tp] = create()
                if batch.append(**record) is None:
                    raise ValueError(f"a record for {topic} exceeds {MAX_BATCH_BYTES} bytes")
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
