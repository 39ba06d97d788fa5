"""Every worker of a group pseudonymises with the same key, or none starts.

Two workers with different keys (or one without a key, e.g. a misspelled variable) would
silently split one person into two users. Each worker publishes its key's fingerprint
(stream.contract.pseudonym.fingerprint: never the key) to the compacted topic
`<app_id>-pseudonym-key`, keyed by the fingerprint, and reads the topic first: if it holds a
fingerprint other than its own, the worker refuses to start. Two workers starting at once with
different keys both publish, then both see two fingerprints: each removes its own (a
tombstone) and refuses. Rotating the key is a migration (every pseudonym changes): delete the
topic with the old fingerprint, or use a new app id.
"""

from __future__ import annotations

import time
from typing import Final

import orjson

from churnstream.stream.kafka.admin import TopicSpec, create_topics
from churnstream.stream.settings import Settings

_READ_TIMEOUT_S: Final = 15.0


def key_topic(settings: Settings) -> str:
    """The group's fingerprint topic (named after the app id, like Faust's own topics)."""
    return f"{settings.app_id}-pseudonym-key"


async def _fingerprints(settings: Settings, topic: str, bootstrap: str) -> set[str]:
    """The fingerprints on `topic` now (latest record per key, tombstones removing it)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from churnstream.stream.kafka.client import client_options

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **client_options(settings),
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.seek_to_beginning(tp)
        seen: dict[str, bool] = {}
        deadline = time.monotonic() + _READ_TIMEOUT_S
        while await consumer.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic} not read to its end in {_READ_TIMEOUT_S:.0f} s")
            batch = await consumer.getmany(tp, timeout_ms=500)
            for record in batch.get(tp, []):
                seen[(record.key or b"").decode("utf-8", "replace")] = record.value is not None
        return {fp for fp, present in seen.items() if present}
    finally:
        await consumer.stop()


async def key_problem(settings: Settings, fingerprint: str, *, bootstrap: str) -> str | None:
    """One line if the group's workers use another pseudonym key than `fingerprint`, else
    None (and `fingerprint` is published for the workers that start later)."""
    from aiokafka import AIOKafkaProducer

    from churnstream.stream.kafka.client import client_options

    topic = key_topic(settings)
    await create_topics(settings, [TopicSpec(topic, 1, compacted=True)], bootstrap=bootstrap)
    others = await _fingerprints(settings, topic, bootstrap) - {fingerprint}
    if not others:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", **client_options(settings)
        )
        await producer.start()
        try:
            value = orjson.dumps({"fingerprint": fingerprint, "published_at": time.time()})
            await producer.send_and_wait(topic, value, key=fingerprint.encode())
            others = await _fingerprints(settings, topic, bootstrap) - {fingerprint}
            if others:  # another worker with another key started at the same time
                await producer.send_and_wait(topic, None, key=fingerprint.encode())
        finally:
            await producer.stop()
    if not others:
        return None
    return (
        f"this worker's pseudonym key fingerprint is {fingerprint}, the group's workers use "
        f"{', '.join(sorted(others))} (topic {topic}): set the same CHURNSTREAM_PSEUDONYM_KEY "
        "(or none) on every worker"
    )
