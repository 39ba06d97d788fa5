"""Creating churnstream's topics on the broker: which topics, with what settings."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from churnstream.stream.contract.topics import (
    ALERTS,
    AUDIT,
    DLQ,
    ERASURE,
    EXAMPLES,
    INPUT_TOPICS,
    MODELS,
    REKEYED,
    SCORES,
)
from churnstream.stream.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None

    def config(self) -> dict[str, str]:
        cfg: dict[str, str] = {}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        return cfg


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """All topics `churnstream topics create` makes (Faust creates its own changelogs)."""
    n = settings.partitions
    t = settings.topic
    specs = [TopicSpec(t(name), n) for name in INPUT_TOPICS.values()]
    specs += [
        TopicSpec(t(REKEYED), n),
        TopicSpec(t(ERASURE), n),
        TopicSpec(t(SCORES), n),
        TopicSpec(t(ALERTS), n),
        TopicSpec(t(DLQ), n),
        TopicSpec(t(AUDIT), 1),
        # One partition: a single trainer sees every labelled example in order.
        TopicSpec(t(EXAMPLES), 1),
        # Compacted by segment key: the latest snapshot of each segment's model survives.
        TopicSpec(t(MODELS), 1, compacted=True),
    ]
    return specs


async def create_topics(
    settings: Settings, specs: Iterable[TopicSpec] | None = None, *, bootstrap: str | None = None
) -> list[str]:
    """Create missing topics; existing ones are left alone. Returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from churnstream.stream.kafka.client import client_options

    specs = list(specs if specs is not None else topic_specs(settings))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap or settings.bootstrap_servers, **client_options(settings)
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        name=s.name,
                        num_partitions=s.partitions,
                        replication_factor=settings.replication,
                        topic_configs=s.config(),
                    )
                    for s in missing
                ]
            )
        for s in missing:
            log.info("created topic %s (%d partitions)", s.name, s.partitions)
        return [s.name for s in missing]
    finally:
        await admin.close()
