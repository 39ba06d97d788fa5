"""The trainer agent: the one consumer of `churn.examples` (one partition, so one trainer).

Each batch of labelled examples is learned, then a snapshot of every segment that learned is
published to the compacted `churn.models` topic (key = segment), and only then are the examples
acked. The snapshot carries the highest example offset it covers in a header, so a restarted
trainer resumes from the latest snapshot and skips the examples already inside it, and the
latest label due time it learned (`labels_until`, from the worker's `churnstream-closes`
header), so workers score each day with the model as of that day (model/scoring.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from churnstream.agents.configure import model_config
from churnstream.agents.context import WorkerContext
from churnstream.agents.model_feed import COVERS_HEADER, latest_snapshots
from churnstream.agents.outputs import Record
from churnstream.agents.processor import CLOSES_HEADER, decode_example
from churnstream.model.trainer import Trainer
from churnstream.stream.contract.dlq import dead_letter_of
from churnstream.stream.contract.topics import DLQ, MODELS

log = logging.getLogger(__name__)


def register(ctx: WorkerContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    from churnstream.features import FEATURE_NAMES

    trainer = Trainer(model_config(settings), FEATURE_NAMES, settings.snapshot_every)
    covered: dict[str, int] = {}
    models_topic = settings.topic(MODELS)
    dlq_topic, max_bytes = settings.topic(DLQ), settings.max_record_bytes

    @app.agent(ctx.examples, name="churnstream-trainer", concurrency=1)
    async def train(stream: Any) -> None:
        for segment, (snapshot, offset) in (await latest_snapshots(ctx)).items():
            model = trainer.restore(snapshot)
            covered[segment] = offset
            log.info("trainer resumed %s model at version %d", segment, model.version)
        async for batch in stream.noack_take(1000, 1.0):
            learned: dict[str, int] = {}
            dead: list[Record] = []
            for event in batch:
                offset = event.message.offset
                try:
                    example = decode_example(event.message.value)
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("undecodable example at offset %d sent to the DLQ", offset)
                    detail = f"undecodable labelled example ({type(exc).__name__})"
                    key, value = dead_letter_of(
                        event.message, "internal_error", detail, max_bytes=max_bytes
                    )
                    dead.append((dlq_topic, key, value, None))
                    metrics.dlq("internal_error").inc()
                    continue
                if offset <= covered.get(example.segment, -1):
                    continue  # already inside the snapshot we resumed from
                step = trainer.learn(example)
                if any(k == CLOSES_HEADER for k, _ in event.message.headers or ()):
                    trainer.close(example)  # its snapshot now covers the worker's release
                learned[step.segment] = offset
                metrics.label_learned(step.segment, example.label).inc()
                if step.drift:
                    metrics.drift(step.segment).inc()
                    log.warning("drift detected in the %s model's log loss", step.segment)
            sent = []
            for segment, offset in learned.items():
                covered[segment] = offset
                headers = [(COVERS_HEADER, str(offset).encode())]
                sent.append(
                    await app.producer.send(
                        models_topic,
                        segment.encode(),
                        trainer.snapshot(segment),
                        None,
                        time.time(),
                        headers,
                    )
                )
                report = trainer.quality[segment].report()
                mean, rate = report["mean_score"], report["positive_rate"]
                metrics.set_model(
                    segment,
                    auc=report["roc_auc"],
                    log_loss=report["window_log_loss"],
                    calibration_gap=None if mean is None else mean - rate,
                )
            await asyncio.gather(*sent)  # the snapshot is durable before its examples are acked
            if dead:
                await ctx.outputs.send(dead)
            for event in batch:
                await stream.ack(event)
