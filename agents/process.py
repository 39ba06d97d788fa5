"""The main agent: contract topics in; DLQ, re-keying, features, scores, labels and alerts out.

Batches come from `noack_take`, so nothing is acked until the batch's state is written:
1. each record is validated (invalid -> `churn.dlq`), re-keyed if its key is not its user_id,
   or applied by the detector (idempotent per input offset and per event_id);
2. due labels are swept under the watermark;
3. outputs are queued, each changed user is written to the table once;
4. only then are the batch's records acked. Faust flushes the producer (outputs and
   changelog) before it commits offsets, so a committed offset never covers lost state.
Concurrency stays 1: Faust can commit past in-flight records with more (faust-streaming #606).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from agents.context import WorkerContext
from model.labels import Example
from stream import topics as t
from stream.dlq import dlq_record
from stream.validation import Invalid, parse

log = logging.getLogger(__name__)

KIND_HEADER = "churnstream-kind"


def register(ctx: WorkerContext) -> None:
    app, settings, metrics, detector = ctx.app, ctx.settings, ctx.metrics, ctx.detector
    prefix = settings.topic_prefix
    kinds = {settings.topic(name): kind for kind, name in t.INPUT_TOPICS.items()}
    rekeyed_topic = settings.topic(t.REKEYED)
    max_bytes = settings.max_record_bytes
    repo = ctx.repo
    assigned: set[Any] = set()

    def short(topic: str) -> str:
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    def handle_record(message: Any) -> float | None:
        """Process one record; returns its append time if it was scored, for latency."""
        topic = message.topic
        if topic == rekeyed_topic:
            kind = dict(message.headers or ()).get(KIND_HEADER, b"").decode() or None
        else:
            kind = kinds.get(topic)
        value = message.value
        result = parse(kind, value, max_bytes) if kind else Invalid("unknown_topic", topic)
        if isinstance(result, Invalid):
            ctx.dlq.send_soon(
                key=message.key,
                value=dlq_record(
                    source_topic=topic,
                    partition=message.partition,
                    offset=message.offset,
                    error=result.error,
                    detail=result.detail,
                    payload=value,
                    max_bytes=max_bytes,
                    received_at=time.time(),
                ),
            )
            metrics.consumed(short(topic), "invalid").inc()
            metrics.dlq(result.error.split(":", 1)[0]).inc()
            return None
        user_key = result.user_id.encode()
        if topic != rekeyed_topic and message.key != user_key:
            # Send it to the partition that owns the user; applied when it comes back.
            ctx.rekeyed.send_soon(
                key=user_key, value=value, headers=[(KIND_HEADER, kind.encode())]
            )
            metrics.consumed(short(topic), "rekeyed").inc()
            return None
        n_scores = len(detector.out.scores)
        outcome = detector.handle(result, (topic, message.partition, message.offset))
        metrics.consumed(short(topic), outcome).inc()
        return message.timestamp if len(detector.out.scores) > n_scores else None

    def ship_outputs() -> None:
        out = detector.out.drain()
        for score in out.scores:
            ctx.scores.send_soon(key=score["user_id"].encode(), value=orjson.dumps(score))
            metrics.observe_score(score["segment"], score["source"], score["score"])
        for alert in out.alerts:
            ctx.alerts.send_soon(key=alert["user_id"].encode(), value=orjson.dumps(alert))
            metrics.alert(alert["kind"], alert["severity"]).inc()
        for example in out.examples:
            ctx.examples.send_soon(key=example.segment.encode(), value=encode_example(example))

    def check_assignment() -> None:
        """After a rebalance, rebuild the due index from the partitions now owned."""
        current = set(app.consumer.assignment())
        if current != assigned:
            gone = {(tp.topic, tp.partition) for tp in assigned - current}
            assigned.clear()
            assigned.update(current)
            detector.watermark.forget(gone)
            detector.reschedule(repo.records())
            metrics.rebalances.inc()

    @app.agent(ctx.inputs, name="churnstream-process", concurrency=1)
    async def process(stream: Any) -> None:
        metrics.worker_up.set(1)
        async for batch in stream.noack_take(settings.flush_max_events, settings.flush_interval_s):
            started = time.perf_counter()
            check_assignment()
            appended: list[float] = []
            for event in batch:
                try:
                    ts = handle_record(event.message)
                except Exception:  # a bug must not stall the partition: dead-letter the record
                    log.exception("unexpected error processing a record; sent to DLQ")
                    msg = event.message
                    ctx.dlq.send_soon(
                        key=msg.key,
                        value=dlq_record(
                            source_topic=msg.topic,
                            partition=msg.partition,
                            offset=msg.offset,
                            error="internal_error",
                            detail="processing raised; see worker log",
                            payload=msg.value,
                            max_bytes=max_bytes,
                            received_at=time.time(),
                        ),
                    )
                    metrics.dlq("internal_error").inc()
                    continue
                if ts is not None:
                    appended.append(ts)
            detector.sweep()
            ship_outputs()
            flushed_at = time.perf_counter()
            repo.flush()
            metrics.observe_flush(time.perf_counter() - flushed_at)
            for event in batch:
                await stream.ack(event)
            now = time.time()
            latency = metrics.event_to_score_latency_seconds
            for ts in appended:
                latency.observe(max(0.0, now - ts))
            metrics.observe_batch(len(batch), time.perf_counter() - started)


def encode_example(example: Example) -> bytes:
    return orjson.dumps(example.to_dict())


def decode_example(value: bytes) -> Example:
    return Example.from_dict(orjson.loads(value))
