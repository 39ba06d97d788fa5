"""An erased user does not come back from a worker's RocksDB store when the worker gets the
partition back (issue 18).

Worker A holds a user, stops; worker B takes the partition over and erases the user; the
changelog is compacted with a tombstone retention of 1 s until no record of the user is left
(the tombstone included); B stops and A gets the partition back with its old RocksDB store,
whose offset lies before the tombstone that no longer exists. The user must stay gone in A's
read API and in the changelog (agents/store_guard.py wipes the stale partition and recovery
rebuilds it from the compacted changelog).
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
from test_erasure import GONE, KEPT, login, signup_and_logins
from workers import (
    WorkerProcess,
    consume,
    end_offsets,
    input_topics,
    make_topics,
    produce,
    wait_caught_up,
    wait_until,
)

from churnstream.stream.cli.commands.forget import publish, request_for

pytestmark = pytest.mark.kafka

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z, as test_erasure's events
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
# Compaction as fast as the broker allows: tombstones kept 1 s, segments rolled every 100 ms,
# any dirty record makes the log cleanable. (AlterConfigs replaces the topic's whole
# configuration: the policy is repeated.)
FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "delete.retention.ms": "1000",
    "segment.ms": "100",
    "min.cleanable.dirty.ratio": "0.001",
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": "100",
}


async def _alter(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, configs)]
        )
        errors = [r for r in response.resources if r[0] != 0]
        assert not errors, f"alter_configs of {topic} failed: {errors}"
    finally:
        await admin.close()


def changelog_keys(bootstrap: str, changelog: str) -> list[tuple[bytes, bool]]:
    """(key, is_tombstone) of every record in the changelog, read to its end."""
    end = end_offsets(bootstrap, [changelog])[(changelog, 0)]
    records: list[Any] = consume(
        bootstrap,
        changelog,
        until=lambda rs: bool(rs) and rs[-1].offset >= end - 1,
        timeout=30,
        partitions=1,
    )
    return [(r.key, r.value is None) for r in records]


def test_an_erased_user_stays_gone_when_the_partition_comes_back(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix, partitions=1)
    env = {**FAST_FAILOVER, "CHURNSTREAM_STORE": "rocksdb://"}
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=env, partitions=1)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=env, partitions=1)
    changelog = f"{a.app_id}-users-changelog"
    hours = itertools.count(10)

    def kept_login() -> None:
        hour = next(hours)
        produce(
            kafka_bootstrap,
            [
                (prefix + t, k, v)
                for t, k, v in [login(KEPT, f"{KEPT}-x{hour}", T0 + 3600.0 * hour)]
            ],
        )

    users = [(prefix + t, k, v) for u in (GONE, KEPT) for t, k, v in signup_and_logins(u, 3)]
    try:
        # 1. A alone holds both users in its RocksDB store.
        a.start()
        produce(kafka_bootstrap, users)
        wait_until(lambda: a.user(GONE) and a.user(KEPT), 90, "both users on A")
        wait_caught_up(a, input_topics(prefix), timeout=60)
        a.stop()

        # 2. B takes the partition over and erases the user.
        b.start()
        wait_until(lambda: b.user(KEPT), 90, "B recovered the partition")
        # Nothing of the user left to read: a redelivered event after the erasure would
        # start a fresh state (docs/security.md).
        wait_caught_up(b, input_topics(prefix), timeout=60)
        asyncio.run(publish(request_for(GONE, settings, "req-1"), kafka_bootstrap, settings))
        wait_until(lambda: b.metric("churnstream_erasures_total") == 1, 60, "the erasure on B")
        assert b.user(GONE) is None

        # 3. Compaction removes every record of the user, the tombstone included. B's writes
        # of the other user roll segments and keep the log dirty so the cleaner runs again.
        asyncio.run(_alter(kafka_bootstrap, changelog, FAST_COMPACTION))

        def user_gone_from_changelog() -> bool:
            kept_login()
            return all(
                key != GONE.encode() for key, _ in changelog_keys(kafka_bootstrap, changelog)
            )

        wait_until(user_gone_from_changelog, 180, "compaction removed the tombstone", every=2.0)
        b.stop()

        # 4. A gets the partition back with its old store.
        a.start()
        wait_until(lambda: a.user(KEPT), 90, "A recovered the partition")
        kept_login()  # A writes to the changelog again
        wait_until(
            lambda: (a.user(KEPT) or {}).get("features", {}).get("logins_28d", 0) >= 5,
            60,
            "A applied a new event",
        )
        assert a.user(GONE) is None, "the erased user came back from A's store"
        assert all(
            key != GONE.encode() or tombstone
            for key, tombstone in changelog_keys(kafka_bootstrap, changelog)
        ), "the erased user was written back to the changelog"
    except BaseException:
        for name, w in (("A", a), ("B", b)):
            print(f"--- worker {name} log tail ---\n{w.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()
