"""Churnstream's topics on the broker: which topics, with what settings; creating them (and
waiting until they can be used) and comparing them with what is on the broker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

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
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.settings import Settings

if TYPE_CHECKING:
    from aiokafka.admin import AIOKafkaAdminClient

log = logging.getLogger(__name__)

LEADER_TIMEOUT_S: Final = 30.0
"""How long `create_topics` waits for every partition to have a leader that serves it."""
_POLL_S: Final = 0.1


class TopicsNotReady(ChurnstreamError, RuntimeError):
    """Some partitions had no serving leader before the deadline; the message names them."""


_DAY_MS: Final = 86_400_000

# How long each topic keeps personal data (docs/privacy.md has the table and the reasons):
# inputs long enough for replays and the longest feature window (28 days), outputs and dead
# letters two weeks for downstream systems, erasure requests a week (handled in seconds).
INPUT_RETENTION_MS: Final = 30 * _DAY_MS
OUTPUT_RETENTION_MS: Final = 14 * _DAY_MS
ERASURE_RETENTION_MS: Final = 7 * _DAY_MS

CHANGELOG_CONFIG: Final = {
    "cleanup.policy": "compact",
    # An erased or expired user's tombstone stays one day, so a worker recovering from the
    # changelog within a day sees it (a store older than that is rebuilt from the changelog:
    # agents/store_guard.py).
    "delete.retention.ms": str(_DAY_MS),
    # Older values of a user may be compacted at once, and are within 7 days: what erasure
    # leaves in the changelog is gone within a week.
    "min.compaction.lag.ms": "0",
    "max.compaction.lag.ms": str(7 * _DAY_MS),
}
"""Topic configuration of the `users` table's changelog, set by `topics create` and by the
worker when Faust creates the topic (agents/context.py)."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    retention_ms: int | None = None
    extra: tuple[tuple[str, str], ...] = ()
    """Further topic configuration, (name, value) pairs."""

    def config(self) -> dict[str, str]:
        cfg: dict[str, str] = {}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        if self.retention_ms is not None:
            cfg["retention.ms"] = str(self.retention_ms)
        cfg.update(self.extra)
        return cfg


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The contract's topics `churnstream topics create` makes (`changelog_spec` is the
    worker's own table changelog, which Faust makes if it is missing)."""
    n = settings.partitions
    t = settings.topic
    specs = [
        TopicSpec(t(name), n, retention_ms=INPUT_RETENTION_MS) for name in INPUT_TOPICS.values()
    ]
    specs += [
        TopicSpec(t(REKEYED), n, retention_ms=INPUT_RETENTION_MS),
        TopicSpec(t(ERASURE), n, retention_ms=ERASURE_RETENTION_MS),
        TopicSpec(t(SCORES), n, retention_ms=OUTPUT_RETENTION_MS),
        TopicSpec(t(ALERTS), n, retention_ms=OUTPUT_RETENTION_MS),
        TopicSpec(t(DLQ), n, retention_ms=OUTPUT_RETENTION_MS),
        # The proof that requests were honoured: kept as the broker's default says until the
        # operator sets what their compliance policy requires.
        TopicSpec(t(AUDIT), 1),
        # One partition: a single trainer sees every labelled example in order.
        TopicSpec(t(EXAMPLES), 1, retention_ms=OUTPUT_RETENTION_MS),
        # Compacted by segment key: the latest snapshot of each segment's model survives.
        TopicSpec(t(MODELS), 1, compacted=True),
    ]
    return specs


def changelog_topic(settings: Settings) -> str:
    """The `users` table's changelog: Faust names it after the app id, without the prefix."""
    return f"{settings.app_id}-users-changelog"


def changelog_spec(settings: Settings) -> TopicSpec:
    """The `users` changelog, compacted with the tombstone retention of CHANGELOG_CONFIG."""
    return TopicSpec(
        changelog_topic(settings), settings.partitions, extra=tuple(CHANGELOG_CONFIG.items())
    )


async def create_topics(
    settings: Settings,
    specs: Iterable[TopicSpec] | None = None,
    *,
    bootstrap: str | None = None,
    timeout: float = LEADER_TIMEOUT_S,
) -> list[str]:
    """Create missing topics (existing ones are left alone) and return once every partition of
    every topic in `specs` has a leader that serves requests (`TopicsNotReady` after `timeout`
    seconds). Returns the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from churnstream.stream.kafka.client import client_options

    deadline = time.monotonic() + timeout
    specs = list(specs if specs is not None else topic_specs(settings))
    bootstrap = bootstrap or settings.bootstrap_servers
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(settings))
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
        counts = await _wait_for_leaders_in_metadata(admin, [s.name for s in specs], deadline)
    finally:
        await admin.close()
    await _wait_until_leaders_serve(settings, bootstrap, counts, deadline)
    return [s.name for s in missing]


def leaderless(described: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Topic -> what is not ready yet, from a metadata response's topics (empty: all ready)."""
    from aiokafka.errors import for_code

    pending = {}
    for topic in described:
        name = topic["topic"]
        if topic["error_code"]:
            pending[name] = for_code(topic["error_code"]).__name__
        elif not topic["partitions"]:
            pending[name] = "no partitions yet"
        else:
            without = sorted(p["partition"] for p in topic["partitions"] if p["leader"] < 0)
            if without:
                pending[name] = "no leader for partition(s) " + ",".join(map(str, without))
    return pending


async def _wait_for_leaders_in_metadata(
    admin: AIOKafkaAdminClient, names: list[str], deadline: float
) -> dict[str, int]:
    """Poll metadata until each topic of `names` names a leader for every partition; returns
    the partition count of each."""
    while True:
        described = await admin.describe_topics(names)
        pending = leaderless(described)
        if not pending:
            return {t["topic"]: len(t["partitions"]) for t in described}
        if time.monotonic() >= deadline:
            detail = "; ".join(f"{name}: {why}" for name, why in sorted(pending.items()))
            raise TopicsNotReady(f"topics not ready in time ({detail})")
        await asyncio.sleep(_POLL_S)


async def _wait_until_leaders_serve(
    settings: Settings, bootstrap: str, counts: Mapping[str, int], deadline: float
) -> None:
    """Ask every partition's end offset: metadata names a leader a moment before that broker
    serves the partition, and a client starting in between gets NotLeaderForPartitionError
    warnings. The consumer retries this request quietly until each leader answers."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaTimeoutError

    from churnstream.stream.kafka.client import client_options

    partitions = [TopicPartition(name, p) for name, n in counts.items() for p in range(n)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        await asyncio.wait_for(
            consumer.end_offsets(partitions), max(deadline - time.monotonic(), 0.1)
        )
    except (TimeoutError, KafkaTimeoutError):
        raise TopicsNotReady(
            f"the leaders of {', '.join(sorted(counts))} did not serve their partitions in time"
        ) from None
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class TopicCheck:
    """One topic as `topics list` shows it: what the broker has against what churnstream needs."""

    name: str
    partitions: int | None
    """Partitions on the broker; None: the topic does not exist."""
    expected: int | None
    """Partitions churnstream needs; None: not one of churnstream's topics."""

    @property
    def problem(self) -> str | None:
        if self.expected is None:
            return None
        if self.partitions is None:
            return "missing"
        if self.partitions != self.expected:
            return f"has {self.partitions} partitions, expected {self.expected}"
        return None


def check_topics(
    specs: Iterable[TopicSpec], existing: Mapping[str, int], related: Iterable[str] = ()
) -> list[TopicCheck]:
    """Churnstream's topics in `specs` order, then the `related` ones that exist (e.g. Faust's
    own), sorted. `existing` maps every topic on the broker to its partition count."""
    specs = list(specs)
    checks = [TopicCheck(s.name, existing.get(s.name), s.partitions) for s in specs]
    ours = {s.name for s in specs}
    others = sorted(set(related) - ours)
    checks += [TopicCheck(name, existing[name], None) for name in others if name in existing]
    return checks


async def existing_topics(settings: Settings, *, bootstrap: str) -> dict[str, int]:
    """Every topic on the broker (internal `__*` ones left out) -> its partition count."""
    from aiokafka.admin import AIOKafkaAdminClient

    from churnstream.stream.kafka.client import client_options

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(settings))
    await admin.start()
    try:
        described = await admin.describe_topics()
    finally:
        await admin.close()
    return {
        t["topic"]: len(t["partitions"])
        for t in described
        if not t.get("is_internal") and not t["topic"].startswith("__")
    }


async def topic_config_value(
    settings: Settings, topic: str, name: str, *, bootstrap: str
) -> str | None:
    """The value of the configuration `name` of `topic` on the broker, or None when it cannot
    be read (no such topic, not allowed to describe it, the broker unreachable)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
    from aiokafka.errors import KafkaError

    from churnstream.stream.kafka.client import client_options

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_options(settings))
    try:
        await admin.start()
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, {name: None})
        for response in await admin.describe_configs([resource]):
            for error_code, _, _, _, entries in response.resources:
                for entry in entries if error_code == 0 else ():
                    if entry[0] == name:
                        return str(entry[1])
    except (KafkaError, OSError) as exc:
        log.warning("%s of %s not read (%s)", name, topic, type(exc).__name__)
    finally:
        await admin.close()
    return None
