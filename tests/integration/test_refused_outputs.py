"""Records the broker refuses never hold the worker, on the real broker.

The DLQ topic gets a `max.message.bytes` of 16 KiB; an input record of ~60 KB that is not JSON
makes a dead-letter record of ~80 KB (base64), which the broker would refuse for good. The
worker must cut it to fit, say so in the record, count it, and go on with the next records.
An event dated a year ahead goes to the DLQ as `future_timestamp` on the way.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from workers import consume, make_topics, produce, running_worker, wait_until

from churnstream.stream.contract.dlq import decode_dlq
from churnstream.stream.contract.topics import DLQ

pytestmark = pytest.mark.kafka

DLQ_LIMIT = 16_384
LOGINS = "behaviour.logins"


async def _limit_dlq(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        config = {"max.message.bytes": str(DLQ_LIMIT)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, config)])
    finally:
        await admin.close()


def test_a_dead_letter_record_too_large_for_the_dlq_is_cut_and_the_worker_goes_on(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    asyncio.run(_limit_dlq(kafka_bootstrap, prefix + DLQ))
    now = time.time()
    blob = b"{" + b"n" * 60_000  # not JSON, under max_record_bytes: dead-lettered whole
    future = orjson.dumps({"event_id": "f", "user_id": "u1", "ts": now + 365 * 86_400})
    after = [
        orjson.dumps({"event_id": f"l{i}", "user_id": "u1", "ts": now - 3600 + i}) for i in range(3)
    ]
    with running_worker(kafka_bootstrap, prefix, tmp_path) as worker:
        produce(
            kafka_bootstrap,
            [(prefix + LOGINS, b"u1", v) for v in (blob, future, *after)],
        )
        dead = consume(kafka_bootstrap, prefix + DLQ, until=lambda rs: len(rs) >= 2, timeout=90)
        docs = sorted((decode_dlq(r.value) for r in dead), key=lambda d: d["offset"])
        cut, late = docs[0], docs[1]
        assert cut["error"] == "not_json"
        assert cut["payload_truncated"] is True
        assert cut["payload_size"] == len(blob)
        assert 0 < len(cut["payload"]) < len(blob)
        assert cut["payload"] == blob[: len(cut["payload"])]
        assert all(len(r.value) + len(r.key or b"") < DLQ_LIMIT for r in dead)
        assert late["error"] == "future_timestamp"
        # The worker went on: the records after it are applied.
        user = wait_until(
            lambda: (u := worker.user("u1")) and u["features"]["logins_7d"] == 3 and u,
            60,
            "the logins after the refused record",
        )
        assert user
        wait_until(
            lambda: (
                worker.metric("churnstream_outputs_refused_total", reason="message_too_large") >= 1
            ),
            30,
            "the refused-outputs metric",
        )
        worker._alive()
