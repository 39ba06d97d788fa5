"""The trainer agent: the one consumer of `churn.examples` (one partition, so one trainer).

Learned examples are published as snapshots of their segments to the compacted `churn.models`
topic (key = segment) and only then acked. A segment's snapshot is published once it learned
`snapshot_every` examples, when its model becomes ready, or when it learned the last label of a
worker's release (`labels_until`, from the worker's `churnstream-closes` header: workers score
each day with the model as of that day, model/scoring.py, and wait for it); then every segment
with unpublished learning is published and every example taken so far acked. Each snapshot
carries the highest example offset it covers and its version in headers.

The partition can move to another worker. Whenever it is assigned (and before the first
example), the trainer restores the newest readable snapshot of every segment, skips the examples
inside it, and goes on above the highest published version (model/trainer.py), whatever model
it held: what it learned but did not publish was not acked and comes again.

A snapshot an operator publishes while the trainer runs (`churnstream model import|rollback`,
a backfill; agents/model_feed.py hands it over) replaces the trainer's model of its segment
before the next examples are learned, so the trainer continues from it instead of publishing
its own model over it; what it learned and had not published is dropped. If the trainer
published a higher version after it (a race), it publishes the adopted model again above that.
Snapshots are signed when a key is set (model/snapshot_signing.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from churnstream.agents.configure import model_config
from churnstream.agents.context import WorkerContext
from churnstream.agents.model_feed import (
    COVERS_HEADER,
    ORIGIN_HEADER,
    VERSION_HEADER,
    Published,
    latest_snapshots,
    snapshot_check,
)
from churnstream.agents.outputs import Record
from churnstream.agents.processor import CLOSES_HEADER, decode_example
from churnstream.model.snapshot_signing import SnapshotRefused
from churnstream.model.trainer import Trainer
from churnstream.stream.contract.dlq import dead_letter_of
from churnstream.stream.contract.topics import DLQ, EXAMPLES, MODELS

log = logging.getLogger(__name__)


def register(ctx: WorkerContext) -> None:
    app, settings, metrics = ctx.app, ctx.settings, ctx.metrics
    from churnstream.features import FEATURE_NAMES

    check = snapshot_check(settings)
    trainer = Trainer(model_config(settings), FEATURE_NAMES, settings.snapshot_every, check=check)
    covered: dict[str, int] = {}  # per segment: the highest example offset in its model
    floor: dict[str, int] = {}  # per segment: the highest version known published
    seen: dict[str, int] = {}  # per segment: the newest `churn.models` offset taken into account
    dirty: dict[str, int] = {}  # per segment: the last offset learned and not yet published
    pending: list[Any] = []  # events taken and not acked: not all inside a published snapshot
    stale = [True]  # the models must be restored before the next example is learned
    examples_topic, models_topic = settings.topic(EXAMPLES), settings.topic(MODELS)
    dlq_topic, max_bytes = settings.topic(DLQ), settings.max_record_bytes

    async def on_assigned(_sender: Any, assigned: set[Any], **_: Any) -> None:
        if any(tp.topic == examples_topic for tp in assigned):
            stale[:] = [True]

    app.on_partitions_assigned.connect(on_assigned)

    async def take_over() -> None:
        published = await latest_snapshots(ctx)
        # Faust delivers from the committed offset again: nothing taken before stays ours.
        pending.clear()
        dirty.clear()
        for segment in trainer.models:
            mine = published.get(segment, Published())
            restored = trainer.restore(segment, [s for s, _ in mine.snapshots], mine.floor)
            for reason in restored.reasons:
                metrics.snapshot_refused(reason)
            if restored.skipped:
                why = ", ".join(restored.reasons)
                log.error("skipped %d %s snapshots (%s)", restored.skipped, segment, why)
            used = restored.skipped < len(mine.snapshots)
            covered[segment] = mine.snapshots[restored.skipped][1] if used else -1
            floor[segment], seen[segment] = mine.floor, mine.last_offset
            log.info("trainer took %s model at version %d", segment, restored.model.version)

    def adopt_operator_snapshots() -> bool:
        """Continue from the snapshots operators published since the last look; True if one
        must be published again (the trainer published a higher version after it)."""
        again = False
        for segment, (offset, data, covers) in list(ctx.operator_snapshots.items()):
            if offset <= seen.get(segment, -1) or segment not in trainer.models:
                continue
            seen[segment] = offset
            try:
                behind = trainer.adopt(segment, data, floor.get(segment, 0))
            except SnapshotRefused as e:  # model_feed loaded it with the same check: unlikely
                log.error(
                    "cannot continue from the %s snapshot at offset %d: %s", segment, offset, e
                )
                continue
            version = trainer.models[segment].version
            floor[segment] = max(floor.get(segment, 0), version)
            covered[segment] = max(covered.get(segment, -1), covers)
            dirty.pop(segment, None)  # its learning since the last publish is dropped
            if behind:
                dirty[segment] = covered[segment]
                again = True
            log.info(
                "trainer continues %s from the snapshot an operator published at offset %d "
                "(version %d)",
                segment,
                offset,
                version,
            )
        return again

    async def publish() -> None:
        sent = []
        for segment, offset in dirty.items():
            covered[segment] = offset
            version = trainer.models[segment].version
            floor[segment] = max(floor.get(segment, 0), version)
            headers = [
                (COVERS_HEADER, str(offset).encode()),
                (VERSION_HEADER, str(version).encode()),
                (ORIGIN_HEADER, b"trainer"),
            ]
            snapshot = check.sign(trainer.snapshot(segment))
            sent.append(
                await app.producer.send(
                    models_topic, segment.encode(), snapshot, None, time.time(), headers
                )
            )
        for future in sent:
            await future  # the snapshot is durable before its examples are acked
        dirty.clear()

    @app.agent(ctx.examples, name="churnstream-trainer", concurrency=1)
    async def train(stream: Any) -> None:
        async for batch in stream.noack_take(1000, 1.0):
            if stale:
                stale.clear()
                await take_over()
            due = adopt_operator_snapshots()
            pending.extend(batch)
            dead: list[Record] = []
            for event in batch:
                offset = event.message.offset
                try:
                    example = decode_example(event.message.value)
                    if example.segment not in trainer.models:
                        raise ValueError("unknown segment")
                except (ValueError, KeyError, TypeError) as exc:
                    log.error("undecodable example at offset %d sent to the DLQ", offset)
                    detail = f"undecodable labelled example ({type(exc).__name__})"
                    key, value = dead_letter_of(
                        event.message, "internal_error", detail, max_bytes=max_bytes
                    )
                    dead.append((dlq_topic, key, value, None))
                    metrics.dlq("internal_error").inc()
                    continue
                if offset <= covered[example.segment]:
                    continue  # inside the snapshot we took over
                step = trainer.learn(example)
                if step.duplicate:
                    metrics.examples_duplicate.inc()
                else:
                    dirty[step.segment] = offset
                    metrics.label_learned(step.segment, example.label).inc()
                closes = any(k == CLOSES_HEADER for k, _ in event.message.headers or ())
                if closes and trainer.close(example):
                    # Its snapshot now covers the worker's release, which workers wait for.
                    due = True
                    dirty.setdefault(step.segment, offset)
                due |= step.snapshot_due
                if step.drift:
                    metrics.drift(step.segment).inc()
                    log.warning("drift detected in the %s model's log loss", step.segment)
            if dead:
                await ctx.outputs.send(dead)
            # An operator's snapshot that arrived meanwhile is not published over.
            due |= adopt_operator_snapshots()
            if due or not dirty:
                segments = list(dirty)
                await publish()
                for segment in segments:
                    report = trainer.quality[segment].report()
                    mean, rate = report["mean_score"], report["positive_rate"]
                    metrics.set_model(
                        segment,
                        auc=report["roc_auc"],
                        log_loss=report["window_log_loss"],
                        calibration_gap=None if mean is None else mean - rate,
                    )
                for event in pending:
                    await stream.ack(event)
                pending.clear()
