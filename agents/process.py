"""The main agent: contract topics in; DLQ, re-keying, features, scores, labels and alerts out.

Batches come from `noack_take`, so nothing is acked until its effects are written:
1. each record is validated (invalid -> `churn.dlq`) or re-keyed if its key is not its user_id
   (-> `churn.rekeyed`); valid ones wait in the event-time aligner (stream.ordering);
2. events the aligner releases are applied by the detector in event-time order (idempotent per
   input offset and per event_id), then due labels are swept under the watermark;
3. outputs are queued and each changed user is written to the table once;
4. only then are the handled records acked; held ones stay unacked (and uncommitted). Faust
   flushes the producer (outputs and changelog) before it commits offsets, so a committed
   offset never covers lost state.
Concurrency stays 1: Faust can commit past in-flight records with more (faust-streaming #606).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from agents.context import WorkerContext
from agents.erasure import ERASED_USER
from model.labels import Example
from stream import topics as t
from stream.dlq import dlq_record
from stream.events import Event
from stream.kafka_client import security_settings
from stream.ordering import EventTimeAligner
from stream.validation import Invalid, parse

log = logging.getLogger(__name__)

KIND_HEADER = "churnstream-kind"
RELEASE_INTERVAL_S = 0.5


def register(ctx: WorkerContext) -> None:
    app, settings, metrics, detector = ctx.app, ctx.settings, ctx.metrics, ctx.detector
    prefix = settings.topic_prefix
    kinds = {settings.topic(name): kind for kind, name in t.INPUT_TOPICS.items()}
    rekeyed_topic = settings.topic(t.REKEYED)
    dlq_topic, scores_topic = settings.topic(t.DLQ), settings.topic(t.SCORES)
    alerts_topic, examples_topic = settings.topic(t.ALERTS), settings.topic(t.EXAMPLES)
    # Tie-break of equal event times: the contract's topic order, then partition and offset.
    rank = {name: i for i, name in enumerate([*kinds, rekeyed_topic])}
    max_bytes = settings.max_record_bytes
    security = security_settings(settings)
    pseudo = security.pseudonymizer()
    blocked = security.blocked_users().__contains__
    repo = ctx.repo
    aligner: EventTimeAligner[tuple[Event, Any]] = EventTimeAligner()
    assigned: set[Any] = set()
    received: dict[tuple[str, int], int] = {}  # next offset expected per source partition
    # Per partition, in offset order: [event, finished]. Acks go out only as the finished run
    # at the front: Faust 0.15.3 can commit past an unacked record when later ones are acked.
    pending_acks: dict[tuple[str, int], dict[int, list[Any]]] = {}

    def short(topic: str) -> str:
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    outbox: list[tuple[str, bytes | None, bytes, Any]] = []  # (topic, key, value, headers)

    def dead_letter(message: Any, error: str, detail: str, *, keep_data: bool = True) -> None:
        """Record -> churn.dlq with the reason; `keep_data=False` drops key and payload (an
        erased user's data must not be kept there)."""
        outbox.append(
            (
                dlq_topic,
                message.key if keep_data else None,
                dlq_record(
                    source_topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    error=error,
                    detail=detail,
                    payload=message.value if keep_data else None,
                    max_bytes=max_bytes,
                    received_at=time.time(),
                ),
                None,
            )
        )
        metrics.dlq(error.split(":", 1)[0]).inc()

    def classify(message: Any) -> Event | None:
        """A valid event keyed by its user, or None once dead-lettered or re-keyed."""
        topic = message.topic
        if topic == rekeyed_topic:
            kind = dict(message.headers or ()).get(KIND_HEADER, b"").decode() or None
        else:
            kind = kinds.get(topic)
        value = message.value
        result = parse(kind, value, max_bytes) if kind else Invalid("unknown_kind", topic)
        if isinstance(result, Invalid):
            dead_letter(message, result.error, result.detail)
            metrics.consumed(short(topic), "invalid").inc()
            return None
        if pseudo.enabled and topic != rekeyed_topic:
            # The raw id must reach no state and no output: the record is rewritten with the
            # pseudonym and goes through churn.rekeyed to the partition that owns the pseudonym.
            alias = pseudo(result.user_id)
            doc = orjson.loads(value)
            doc["user_id"] = alias
            outbox.append(
                (rekeyed_topic, alias.encode(), orjson.dumps(doc), [(KIND_HEADER, kind.encode())])
            )
            metrics.consumed(short(topic), "rekeyed").inc()
            return None
        if blocked(result.user_id):
            dead_letter(message, ERASED_USER, "user is on the erasure block list", keep_data=False)
            metrics.consumed(short(topic), "invalid").inc()
            return None
        user_key = result.user_id.encode()
        if topic != rekeyed_topic and message.key != user_key:
            # Send it to the partition that owns the user; applied when it comes back.
            outbox.append((rekeyed_topic, user_key, value, [(KIND_HEADER, kind.encode())]))
            metrics.consumed(short(topic), "rekeyed").inc()
            return None
        return result

    def apply(event: Event, message: Any) -> float | None:
        """Apply one released event; returns its append time if it was scored (latency)."""
        n_scores = len(detector.out.scores)
        outcome = detector.handle(event, (message.topic, message.partition, message.offset))
        metrics.consumed(short(message.topic), outcome).inc()
        return message.timestamp if len(detector.out.scores) > n_scores else None

    def lagging_sources() -> list[tuple[str, int]]:
        """Assigned input partitions whose log end is beyond what this worker received."""
        consumer: Any = app.consumer
        out = []
        for tp in assigned:
            if tp.topic not in rank:
                continue
            end = consumer.highwater(tp)
            source = (tp.topic, tp.partition)
            if end is not None and end > received.get(source, 0):
                out.append(source)
        return out

    def check_assignment() -> None:
        """After a rebalance, start over from the committed offsets.

        Faust moves every assigned partition (not only the lost ones) back to its committed
        offset, so everything held or unacked is delivered again: forget it all, and rebuild
        the due index from the partitions now owned.
        """
        current = set(app.consumer.assignment())
        if current != assigned:
            gone = {(tp.topic, tp.partition) for tp in assigned - current}
            assigned.clear()
            assigned.update(current)
            aligner.clear()
            pending_acks.clear()
            received.clear()
            detector.watermark.forget(gone)
            detector.reschedule(repo.records())
            metrics.rebalances.inc()

    def collect_outputs() -> None:
        out = detector.out.drain()
        for score in out.scores:
            outbox.append((scores_topic, score["user_id"].encode(), orjson.dumps(score), None))
            metrics.observe_score(score["segment"], score["source"], score["score"])
        for alert in out.alerts:
            outbox.append((alerts_topic, alert["user_id"].encode(), orjson.dumps(alert), None))
            metrics.alert(alert["kind"], alert["severity"]).inc()
        for example in out.examples:
            outbox.append((examples_topic, example.segment.encode(), encode_example(example), None))

    async def send_outbox() -> None:
        """Produce the batch's outputs straight to the Kafka producer and wait for the acks.

        Faust's `send_soon` buffer hands messages over one at a time and its flush may return
        before it is empty; outputs go to aiokafka directly, and the table's changelog buffer
        is drained explicitly, so that acking the inputs comes strictly after both.
        """
        producer = app.producer
        futures = [await producer.send(tp, k, v, None, None, h) for tp, k, v, h in outbox]
        outbox.clear()
        buffer = producer.buffer
        while buffer.size:
            await buffer.flush_atmost(buffer.size)
        await asyncio.gather(*futures)

    # The agent's batches and the release timer both process events; one at a time.
    lock = asyncio.Lock()
    stream_ref: list[Any] = []

    async def release_and_commit(done: list[Any]) -> None:
        """Apply what the aligner releases, write state and outputs, then ack `done` + them."""
        forced = aligner.forced
        released = aligner.release(lagging_sources(), time.monotonic())
        metrics.events_held.set(len(aligner))
        metrics.events_released_early.inc(aligner.forced - forced)
        appended: list[float] = []
        for valid, event in released:
            done.append(event)
            try:
                ts = apply(valid, event.message)
            except Exception:  # a bug must not stall the partition: dead-letter the record
                log.exception("unexpected error applying an event; sent to the DLQ")
                dead_letter(event.message, "internal_error", "apply raised; see worker log")
                continue
            if ts is not None:
                appended.append(ts)
        if not done:
            return
        detector.sweep()
        collect_outputs()
        flushed_at = time.perf_counter()
        repo.flush()
        await send_outbox()
        metrics.observe_flush(time.perf_counter() - flushed_at)
        stream = stream_ref[0]
        for event in done:
            msg = event.message
            slot = pending_acks.get((msg.topic, msg.partition), {}).get(msg.offset)
            if slot is not None:
                slot[1] = True
        for slots in pending_acks.values():
            while slots:
                offset, (first, finished) = next(iter(slots.items()))
                if not finished:
                    break
                del slots[offset]
                await stream.ack(first)
        now = time.time()
        latency = metrics.event_to_score_latency_seconds
        for ts in appended:
            latency.observe(max(0.0, now - ts))

    @app.agent(ctx.inputs, name="churnstream-process", concurrency=1)
    async def process(stream: Any) -> None:
        metrics.worker_up.set(1)
        stream_ref[:] = [stream]
        async for batch in stream.noack_take(settings.flush_max_events, settings.flush_interval_s):
            async with lock:
                started = time.perf_counter()
                check_assignment()
                done: list[Any] = []
                for event in batch:
                    msg = event.message
                    received[(msg.topic, msg.partition)] = msg.offset + 1
                    pending_acks.setdefault((msg.topic, msg.partition), {})[msg.offset] = [
                        event,
                        False,
                    ]
                    try:
                        valid = classify(msg)
                    except Exception:  # a bug must not stall the partition: dead-letter it
                        log.exception("unexpected error validating a record; sent to the DLQ")
                        dead_letter(msg, "internal_error", "validation raised; see worker log")
                        valid = None
                    if valid is None:
                        done.append(event)
                    else:
                        tiebreak = (rank.get(msg.topic, 99), msg.partition, msg.offset)
                        source = (msg.topic, msg.partition)
                        aligner.push(source, valid.ts, tiebreak, (valid, event), time.monotonic())
                await release_and_commit(done)
                metrics.observe_batch(len(batch), time.perf_counter() - started)

    @app.timer(RELEASE_INTERVAL_S)
    async def release_held() -> None:
        """Held events must not wait for the next record: once their sources caught up or their
        hold time is over they go out, also when no record arrives any more."""
        if not stream_ref or not len(aligner) or lock.locked():
            return
        async with lock:
            check_assignment()
            await release_and_commit([])


def encode_example(example: Example) -> bytes:
    return orjson.dumps(example.to_dict())


def decode_example(value: bytes) -> Example:
    return Example.from_dict(orjson.loads(value))
