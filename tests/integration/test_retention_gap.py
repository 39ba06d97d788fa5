"""Records removed by retention before the group processed them, on the real broker.

The group's committed offset lies below the log start (here: delete-records, as retention
does). The worker must go on from the log start, count the offsets lost, and neither seek back
forever (an idle topic) nor skip records that arrive afterwards.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from workers import (
    WorkerProcess,
    make_topics,
    produce,
    running_worker,
    wait_caught_up,
    wait_until,
)

pytestmark = pytest.mark.kafka

LOGINS = "behaviour.logins"
LIFECYCLE = "lifecycle.subscriptions"
T0 = time.time() - 10 * 86400.0  # event time: ten days ago, inside every bound


def login(i: int) -> tuple[str, bytes, bytes]:
    user = f"u{i % 4}"
    return (
        LOGINS,
        user.encode(),
        orjson.dumps({"user_id": user, "event_id": f"l{i}", "ts": T0 + i}),
    )


def signup(i: int) -> tuple[str, bytes, bytes]:
    user = f"s{i}"
    doc = {"user_id": user, "event_id": f"s{i}", "ts": T0 + i, "event": "signup", "plan_price": 9.0}
    return (LIFECYCLE, user.encode(), orjson.dumps(doc))


def commit_then_delete(bootstrap: str, group: str, deletes: dict[str, int]) -> None:
    """Commit offset 0 for `group` on partition 0 of each topic, then remove the records of
    each before the given offset (the group never processed them)."""

    async def go() -> None:
        tps = {topic: TopicPartition(topic, 0) for topic in deletes}
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.assign(list(tps.values()))
            await consumer.commit({tp: 0 for tp in tps.values()})
        finally:
            await consumer.stop()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            starts = await admin.delete_records(
                {tps[topic]: RecordsToDelete(before) for topic, before in deletes.items()}
            )
        finally:
            await admin.close()
        assert {tp.topic: start for tp, start in starts.items()} == deletes

    asyncio.run(go())


def idle_lag(worker: WorkerProcess, topic: str) -> float | None:
    """The worker's lag gauge of partition 0 of `topic` (None until it is set)."""
    for line in (worker.scrape() or "").splitlines():
        if line.startswith("churnstream_consumer_lag_records{") and f'topic="{topic}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_committed_offset_below_the_log_start_goes_on_from_the_log_start(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix, partitions=1)
    logins, lifecycle = prefix + LOGINS, prefix + LIFECYCLE
    produce(kafka_bootstrap, [(prefix + t, k, v) for t, k, v in map(login, range(20))])
    produce(kafka_bootstrap, [(prefix + t, k, v) for t, k, v in map(signup, range(5))])
    group = prefix.strip(".")
    # Half of the logins removed unprocessed; every signup removed (an idle topic whose
    # committed offset lies below its log start, which is also its log end).
    commit_then_delete(kafka_bootstrap, group, {logins: 10, lifecycle: 5})

    with running_worker(kafka_bootstrap, prefix, tmp_path, partitions=1) as worker:

        def consumed(topic: str) -> float:
            return worker.metric("churnstream_records_consumed_total", topic=topic)

        wait_until(lambda: consumed(LOGINS) >= 10, 90, "the logins after the log start")
        assert worker.metric("churnstream_input_records_expired_total", topic=logins) == 10
        assert worker.metric("churnstream_input_records_expired_total", topic=lifecycle) == 5
        # With no record to process, the committed offset of the idle topic moves up to its
        # log start: left below, every rebalance counted the same records again and the lag
        # (the worker's gauge, any lag tool) showed them behind for good.
        wait_caught_up(worker, [logins, lifecycle], 60)
        wait_until(lambda: idle_lag(worker, lifecycle) == 0, 30, "the idle topic's lag gauge at 0")
        assert worker.metric("churnstream_input_gaps_total", kind="stalled") == 0
        # Records arriving afterwards are processed, on the idle topic too.
        produce(kafka_bootstrap, [(prefix + t, k, v) for t, k, v in [login(20), signup(5)]])
        wait_caught_up(worker, [logins, lifecycle], 60)
        assert consumed(LOGINS) == 11
        assert consumed(LIFECYCLE) == 1
        assert worker.metric("churnstream_input_gaps_total", kind="lost") == 0
        assert worker.metric("churnstream_input_gaps_total", kind="stalled") == 0
        assert worker.metric("churnstream_input_records_expired_total") == 15
