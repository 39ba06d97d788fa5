"""Every worker follows `churn.models` and hot-swaps the newest snapshot per segment.

A plain aiokafka consumer without a group: each worker must see every snapshot, which a Faust
agent (one consumer group, partitions split between workers) would not give. It runs in the
worker's event loop, so installing a model never races the scoring code.
"""

from __future__ import annotations

import asyncio
import logging
import time

from aiokafka import AIOKafkaConsumer, TopicPartition

from churnstream.agents.context import WorkerContext
from churnstream.model.learner import SegmentModel
from churnstream.stream.contract import topics as t
from churnstream.stream.kafka.client import client_options

log = logging.getLogger(__name__)

COVERS_HEADER = "churnstream-covers-offset"


def _consumer(ctx: WorkerContext) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=ctx.bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 2**20,
        fetch_max_bytes=64 * 2**20,
        **client_options(ctx.settings),
    )


async def latest_snapshots(ctx: WorkerContext) -> dict[str, tuple[bytes, int]]:
    """Latest snapshot per segment and the example offset it covers, read to the log end."""
    consumer = _consumer(ctx)
    tp = TopicPartition(ctx.settings.topic(t.MODELS), 0)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        latest: dict[str, tuple[bytes, int]] = {}
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.key and record.value:
                    covers = int(dict(record.headers).get(COVERS_HEADER, b"-1"))
                    latest[record.key.decode()] = (record.value, covers)
        return latest
    finally:
        await consumer.stop()


def register(ctx: WorkerContext) -> None:
    scorer = ctx.detector.scorer
    metrics = ctx.metrics

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
                    try:
                        model = SegmentModel.from_snapshot(record.value)
                    except Exception:  # a broken snapshot must not stop scoring
                        log.exception("ignoring an unreadable model snapshot")
                        continue
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
