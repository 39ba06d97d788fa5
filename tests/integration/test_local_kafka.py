"""The session broker (env, Docker or local Java) is a working Kafka: admin, produce, consume."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import UnknownTopicOrPartitionError

pytestmark = pytest.mark.kafka

TIMEOUT_S = 30.0


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
        # The controller answers before every broker's metadata has the topic: wait for it.
        deadline = time.monotonic() + 30.0
        while topic not in await admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} not listed 30 s after its creation"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, key: bytes, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()
    return metadata.offset


async def _round_trip_assigned(bootstrap: str, topic: str) -> None:
    await _create_topic(bootstrap, topic)
    key, value = b"user-1", uuid.uuid4().bytes
    offset = await _produce(bootstrap, topic, key, value)

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, offset)
        record = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
    finally:
        await consumer.stop()
    assert (record.topic, record.offset, record.key, record.value) == (topic, offset, key, value)


async def _round_trip_group(bootstrap: str, topic: str, group: str) -> None:
    await _create_topic(bootstrap, topic)
    value = uuid.uuid4().bytes
    await _produce(bootstrap, topic, b"user-2", value)

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=group, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()
    assert record.value == value
    assert committed == record.offset + 1


def test_create_produce_and_read_back(kafka_bootstrap: str, fresh_topic_prefix: str) -> None:
    asyncio.run(_round_trip_assigned(kafka_bootstrap, f"{fresh_topic_prefix}roundtrip"))


def test_consumer_group_reads_and_commits(kafka_bootstrap: str, fresh_topic_prefix: str) -> None:
    topic = f"{fresh_topic_prefix}grouped"
    asyncio.run(_round_trip_group(kafka_bootstrap, topic, f"{fresh_topic_prefix}group"))


def test_topics_are_not_auto_created(
    kafka_bootstrap: str, fresh_topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL, logger="aiokafka.cluster")  # one error per metadata retry

    async def run() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await _produce_expecting_no_topic(kafka_bootstrap, f"{fresh_topic_prefix}missing")
            assert f"{fresh_topic_prefix}missing" not in await admin.list_topics()
        finally:
            await admin.close()

    asyncio.run(run())


async def _produce_expecting_no_topic(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    await producer.start()
    try:
        with pytest.raises(UnknownTopicOrPartitionError):
            await producer.send_and_wait(topic, b"x")
    finally:
        await producer.stop()
