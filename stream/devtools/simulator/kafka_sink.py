"""Produce simulated records to Kafka (the only simulator module that touches a broker)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from churnstream.stream.devtools.simulator.records import SimRecord

# Delivery futures awaited together; bounds memory and how far a failure is noticed late.
CHUNK = 2000


def record_bytes(rec: SimRecord) -> bytes:
    """Kafka value of `rec`: the raw bytes of a malformed record, else its JSON body."""
    if rec.raw is not None:
        return rec.raw
    return orjson.dumps(rec.value)


async def send_records(
    records: Iterable[SimRecord],
    bootstrap: str,
    *,
    rate: float | None,
    progress: Callable[[int], None] | None,
    linger_ms: int = 20,
    topic_name: Callable[[str], str] = str,
    producer_options: Mapping[str, Any] | None = None,
) -> int:
    """Send `records` in order with acks=all; returns how many were acknowledged.

    `rate` caps throughput in records per wall-clock second (None: as fast as possible), paced
    on a monotonic clock per chunk rather than by sleeping per record. `progress` is called
    with the running total after each acknowledged chunk. `topic_name` maps contract names to
    configured ones (prefixes). Record timestamps are left to the broker on purpose: event time
    travels in the body, and old event-time timestamps would fall foul of topic retention.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive or None")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=linger_ms,
        **dict(producer_options or {}),
    )
    await producer.start()
    sent = 0
    # Pacing chunks are small at low rates so that the stream stays smooth (~10 per second).
    step = CHUNK if rate is None else max(1, min(CHUNK, int(rate / 10)))
    started = time.monotonic()
    try:
        pending: list[asyncio.Future[Any]] = []
        for rec in records:
            key = None if rec.key is None else rec.key.encode()
            pending.append(await producer.send(topic_name(rec.topic), record_bytes(rec), key))
            if len(pending) >= step:
                sent = await _settle(pending, sent, progress)
                if rate is not None:
                    ahead = started + sent / rate - time.monotonic()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        sent = await _settle(pending, sent, progress)
    finally:
        await producer.stop()
    return sent


async def _settle(
    pending: list[asyncio.Future[Any]], sent: int, progress: Callable[[int], None] | None
) -> int:
    if not pending:
        return sent
    await asyncio.gather(*pending)
    sent += len(pending)
    pending.clear()
    if progress is not None:
        progress(sent)
    return sent
