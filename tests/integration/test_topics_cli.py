"""`topics create|list` and `kafka status|stop` against the session's real broker.

`create_topics` must return only when every partition can be used at once: a producer that
starts right after it must not meet `NotLeaderForPartitionError` (what `make demo` used to open
with). `topics list` must report the broker's topics, not the ones `create` would make.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from churnstream.stream.cli.main import main
from churnstream.stream.kafka.admin import changelog_topic, create_topics, topic_specs
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> str:
    """The CLI's environment: the session broker (as an external one) and a fresh prefix."""
    for name in list(os.environ):
        if name.startswith("CHURNSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("CHURNSTREAM_TOPIC_PREFIX", fresh_topic_prefix)
    monkeypatch.setenv("CHURNSTREAM_APP_ID", f"{fresh_topic_prefix}app")
    monkeypatch.setenv("CHURNSTREAM_KAFKA_HOME", str(tmp_path / "no-local-broker"))
    return fresh_topic_prefix


async def _produce_to_every_partition(bootstrap: str, counts: dict[str, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        # Keyed: the compacted churn.models refuses records without a key.
        sent = [
            await producer.send(topic, b"x", key=b"k", partition=p)
            for topic, n in counts.items()
            for p in range(n)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _create_extra(bootstrap: str, names: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=3, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


def test_created_topics_are_usable_at_once(
    kafka_bootstrap: str, fresh_topic_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(topic_prefix=fresh_topic_prefix, bootstrap_servers=kafka_bootstrap)
    specs = topic_specs(settings)
    created = asyncio.run(create_topics(settings))
    assert created == [s.name for s in specs]
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        asyncio.run(
            _produce_to_every_partition(kafka_bootstrap, {s.name: s.partitions for s in specs})
        )
    not_leader = [r for r in caplog.records if "NotLeaderForPartition" in r.getMessage()]
    assert not not_leader, f"a topic was used before its leader served it: {not_leader[:3]}"
    # Existing topics are left alone, and waited for just the same.
    assert asyncio.run(create_topics(settings)) == []


def test_topics_list_shows_what_is_on_the_broker(
    cli_env: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = cli_env
    settings = Settings(topic_prefix=prefix, app_id=f"{prefix}app")
    names = [s.name for s in topic_specs(settings)] + [changelog_topic(settings)]

    assert main(["topics", "list"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert all(any(line.split() == [n, "-", "missing"] for line in out) for n in names)
    assert out[-1].startswith(f"0 of {len(names)} churnstream topics ok")

    assert main(["topics", "create", "--partitions", "2"]) == 0
    capsys.readouterr()
    asyncio.run(_create_extra(kafka_bootstrap, [f"{prefix}extra"]))

    assert main(["topics", "list"]) == 3  # CHURNSTREAM_PARTITIONS is 4: twelve have 2
    out = capsys.readouterr().out
    assert out.count("has 2 partitions, expected 4") == 12
    assert f"{prefix}churn.models" in out and "__consumer_offsets" not in out

    assert main(["topics", "list", "--partitions", "2"]) == 0
    rows = {line.split()[0]: line.split()[1:] for line in capsys.readouterr().out.splitlines()}
    assert rows[f"{prefix}behaviour.logins"] == ["2", "ok"]
    assert rows[f"{prefix}churn.models"] == ["1", "ok"]
    assert rows[f"{prefix}extra"] == ["3", "other"]
    assert rows[f"{prefix}app-users-changelog"] == ["2", "ok"]
    configs = asyncio.run(_configs(kafka_bootstrap, [n for n in rows if n.startswith(prefix)]))
    # Retention and compaction as docs/privacy.md states them.
    changelog = configs[f"{prefix}app-users-changelog"]
    assert changelog["cleanup.policy"] == "compact"
    assert changelog["delete.retention.ms"] == "86400000"
    assert changelog["max.compaction.lag.ms"] == "604800000"
    assert configs[f"{prefix}behaviour.logins"]["retention.ms"] == str(30 * 86_400_000)
    assert configs[f"{prefix}churn.dlq"]["retention.ms"] == str(14 * 86_400_000)
    assert configs[f"{prefix}privacy.erasure"]["retention.ms"] == str(7 * 86_400_000)


async def _configs(bootstrap: str, names: list[str]) -> dict[str, dict[str, str]]:
    """Topic -> its configuration on the broker (name -> value)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        responses = await admin.describe_configs(resources)
    finally:
        await admin.close()
    out: dict[str, dict[str, str]] = {}
    for response in responses:
        for resource in response.resources:
            out[resource[3]] = {entry[0]: entry[1] for entry in resource[4]}
    return out


def test_kafka_status_and_stop_of_an_external_broker(
    cli_env: str, kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["kafka", "status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"in use: external broker (KAFKA_BOOTSTRAP_SERVERS) at {kafka_bootstrap}")
    assert out.splitlines()[0].endswith(": answers")

    assert main(["kafka", "stop"]) == 0
    assert "churnstream did not start it and does not stop it" in capsys.readouterr().out
    assert main(["kafka", "status"]) == 0  # still there
