"""Every worker follows `churn.models` and hot-swaps the newest snapshot per segment.

A plain aiokafka consumer without a group: each worker must see every snapshot, which a Faust
agent (one consumer group, partitions split between workers) would not give. It runs in the
worker's event loop, so installing a model never races the scoring code.

Snapshots are loaded through one `SnapshotCheck` (model.snapshot_signing): signed with the
configured key, a data document, features this code computes, of the segment it is keyed by;
a refused one is counted by reason and skipped. A snapshot an operator published
(`churnstream model import|rollback`, or a backfill: the `churnstream-origin` header) is also
handed to the trainer, which continues learning from it (agents/trainer.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.agents.context import WorkerContext
from churnstream.features import FEATURE_NAMES
from churnstream.model.snapshot_signing import SnapshotCheck, SnapshotRefused
from churnstream.stream.contract import topics as t
from churnstream.stream.kafka.client import client_options, security_settings
from churnstream.stream.settings import Settings

log = logging.getLogger(__name__)

COVERS_HEADER = "churnstream-covers-offset"
# The snapshot's model version, readable without unpickling it: a trainer that takes over goes
# above it even when that snapshot cannot be restored.
VERSION_HEADER = "churnstream-model-version"
# Who published a snapshot: the trainer, or an operator whose snapshot the trainer adopts.
ORIGIN_HEADER = "churnstream-origin"
OPERATOR_ORIGINS = frozenset({"import", "rollback", "backfill"})
# A rollback's source version (its content is that version's, under a new, higher version).
ROLLBACK_HEADER = "churnstream-rollback-of"
# Older snapshots kept per segment to fall back on when the newest cannot be restored.
FALLBACKS = 3


def snapshot_check(settings: Settings) -> SnapshotCheck:
    """How this deployment loads snapshots: its signing key, pickle trust, feature names."""
    key = security_settings(settings).snapshot_key()
    return SnapshotCheck.of(key, settings.trust_pickled_snapshots, FEATURE_NAMES)


@dataclass
class Published:
    """What `churn.models` holds for one segment: the last snapshots, newest first, each with
    the example offset it covers, the highest version any snapshot announced, and the offset
    of the segment's newest record."""

    snapshots: deque[tuple[bytes, int]] = field(default_factory=lambda: deque(maxlen=FALLBACKS))
    floor: int = 0
    last_offset: int = -1


def _consumer(ctx: WorkerContext) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=ctx.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 2**20,
        fetch_max_bytes=64 * 2**20,
        **client_options(ctx.settings),
    )


def _int_header(headers: dict[str, bytes], name: str, default: int) -> int:
    try:
        return int(headers.get(name, b""))
    except ValueError:  # absent (older snapshots) or unreadable: as if absent
        return default


async def latest_snapshots(ctx: WorkerContext) -> dict[str, Published]:
    """The last snapshots per segment, the offsets they cover and the highest version, read to
    the log end."""
    consumer = _consumer(ctx)
    tp = TopicPartition(ctx.settings.topic(t.MODELS), 0)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: defaultdict[str, Published] = defaultdict(Published)
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key and record.value:
                    headers = dict(record.headers)
                    published = latest[record.key.decode()]
                    covers = _int_header(headers, COVERS_HEADER, -1)
                    published.snapshots.appendleft((record.value, covers))
                    version = _int_header(headers, VERSION_HEADER, 0)
                    published.floor = max(published.floor, version)
                    published.last_offset = record.offset
        return dict(latest)
    finally:
        await consumer.stop()


def _one_line(error: Exception) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def register(ctx: WorkerContext) -> None:
    scorer = ctx.detector.scorer
    metrics = ctx.metrics
    check = snapshot_check(ctx.settings)

    @ctx.app.task
    async def follow_models() -> None:
        consumer = _consumer(ctx)
        tp = TopicPartition(ctx.settings.topic(t.MODELS), 0)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            made_at: dict[str, float] = {}
            while True:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if not record.value:
                        continue
                    segment = (record.key or b"").decode(errors="replace")
                    try:
                        model = check.load(record.value, segment)
                    except SnapshotRefused as e:  # a broken or hostile snapshot: score on
                        metrics.snapshot_refused(e.reason)
                        log.error(
                            "ignoring model snapshot at offset %d (%s): %s",
                            record.offset,
                            e.reason,
                            _one_line(e),
                        )
                        continue
                    headers = dict(record.headers or ())
                    if headers.get(ORIGIN_HEADER, b"").decode(errors="replace") in (
                        OPERATOR_ORIGINS
                    ):
                        covers = _int_header(headers, COVERS_HEADER, -1)
                        ctx.operator_snapshots[segment] = (record.offset, record.value, covers)
                    if scorer.install(model):
                        made_at[model.segment] = record.timestamp / 1000.0
                        metrics.set_model(model.segment, version=model.version)
                now = time.time()
                for segment, ts in made_at.items():
                    metrics.set_model(segment, age_seconds=max(0.0, now - ts))
        except asyncio.CancelledError:
            raise
        finally:
            await consumer.stop()
