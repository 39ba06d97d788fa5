"""What the agents of one worker share: topics, the user table, the detector and metrics.

A user's records, state and erasures must land on one partition number everywhere: the worker
writes its table itself with the key's partition (murmur2 modulo `settings.partitions`, not
Faust's table partitioner), so an input, re-keyed, erasure or changelog topic with another
partition count would split one user into two states. `partition_problems` finds such topics
before the worker starts (`churnstream worker` refuses to start on any).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import faust

from churnstream.agents import faust_private
from churnstream.agents.configure import alert_policy, live_engine_config
from churnstream.agents.metrics import METRICS, WorkerMetrics
from churnstream.agents.outputs import OutputWriter
from churnstream.agents.repository import TableRepository
from churnstream.agents.store_guard import StoreGuard
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.scoring import Scorer
from churnstream.stream.contract import topics as t
from churnstream.stream.kafka.admin import CHANGELOG_CONFIG, existing_topics, topic_config_value
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings


def _raw_topic(app: faust.App, *names: str, **kw: Any) -> faust.TopicT:
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **kw
    )


@dataclass
class WorkerContext:
    app: faust.App
    settings: Settings
    bootstrap: str
    metrics: WorkerMetrics
    inputs: faust.TopicT
    scores: faust.TopicT
    alerts: faust.TopicT
    dlq: faust.TopicT
    rekeyed: faust.TopicT
    examples: faust.TopicT
    models: faust.TopicT
    table: Any
    repo: TableRepository
    detector: Detector
    outputs: OutputWriter
    # Held while user records change and their changelog writes are sent (process, erasure).
    state_lock: asyncio.Lock
    # Why the worker stopped itself (outputs the broker refuses for good); None while it runs.
    fatal: str | None = None
    # Per segment, the newest snapshot an operator published (offset, bytes, covers): the
    # trainer continues from it (agents/model_feed.py fills it, agents/trainer.py takes it).
    operator_snapshots: dict[str, tuple[int, bytes, int]] = field(default_factory=dict)

    async def partition_problems(self) -> list[str]:
        """One line per keyed topic on the broker whose partition count is not
        `settings.partitions` (a topic not created yet is made with that count)."""
        name = self.settings.topic
        keyed = [name(topic) for topic in t.INPUT_TOPICS.values()]
        keyed += [name(t.REKEYED), name(t.ERASURE), self.table.changelog_topic.get_topic_name()]
        counts = await existing_topics(self.settings, bootstrap=self.bootstrap)
        expected = self.settings.partitions
        return [
            f"topic {topic} has {counts[topic]} partitions, expected {expected} "
            "(settings.partitions)"
            for topic in keyed
            if topic in counts and counts[topic] != expected
        ]

    @classmethod
    def build(cls, app: faust.App, settings: Settings, bootstrap: str) -> WorkerContext:
        name = settings.topic
        inputs = _raw_topic(
            app, *(name(topic) for topic in t.INPUT_TOPICS.values()), name(t.REKEYED)
        )
        table = app.Table(
            "users",
            key_type=bytes,
            value_type=bytes,
            partitions=settings.partitions,
            # Writes happen at flush time, outside any one event, so the partition comes from
            # the key (murmur2, the same partitioner producers use for the input topics).
            use_partitioner=True,
            # Compaction and tombstone retention as `topics create` sets them, when Faust
            # creates the changelog itself.
            extra_topic_configs=dict(CHANGELOG_CONFIG),
        )
        changelog = table.changelog_topic.get_topic_name()

        async def tombstone_retention_s() -> float | None:
            ms = await topic_config_value(
                settings, changelog, "delete.retention.ms", bootstrap=bootstrap
            )
            return None if ms is None else float(ms) / 1000.0

        guard = StoreGuard(
            settings.data_dir / f"{settings.app_id}-store-stamps.json",
            table.data,
            settings.partitions,
            tombstone_retention_s,
        )
        faust_private.before_table_recovery(table, guard.before_recovery)
        config = live_engine_config(settings)
        repo = TableRepository(
            table,
            config.features,
            changelog,
            dlq_topic=name(t.DLQ),
            on_quarantine=METRICS.state_quarantined.inc,
            on_expire=METRICS.users_expired.inc,
            on_written=guard.stamp,
        )
        detector = Detector(
            config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo
        )
        return cls(
            app=app,
            settings=settings,
            bootstrap=bootstrap,
            metrics=METRICS,
            inputs=inputs,
            scores=_raw_topic(app, name(t.SCORES)),
            alerts=_raw_topic(app, name(t.ALERTS)),
            dlq=_raw_topic(app, name(t.DLQ)),
            rekeyed=_raw_topic(app, name(t.REKEYED)),
            examples=_raw_topic(app, name(t.EXAMPLES)),
            models=_raw_topic(app, name(t.MODELS)),
            table=table,
            repo=repo,
            detector=detector,
            outputs=OutputWriter(
                bootstrap,
                {
                    **client_options(settings),
                    "request_timeout_ms": int(settings.output_timeout_s * 1000),
                },
                METRICS.output_send_retries.inc,
                dlq_topic=name(t.DLQ),
                on_refused=METRICS.refused,
            ),
            state_lock=asyncio.Lock(),
        )
