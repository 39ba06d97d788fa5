"""The main agent: contract topics in; DLQ, re-keying, features, scores, labels and alerts out.

Batches come straight from the agent's channel queue (agents/intake.py), and nothing is acked
until its effects are written:
1. each record is admitted once, in offset order per partition (agents/input_guard.py), then
   validated (invalid -> `churn.dlq`) or re-keyed if its key is not its user_id
   (-> `churn.rekeyed`); valid ones wait in the event-time aligner (agents/ordering.py);
2. events the aligner releases are applied by the detector in event-time order (idempotent per
   input offset and per event_id), then due labels are swept under the watermark;
3. outputs are produced and each changed user is written to the table once; the producer's
   acks for both are awaited;
4. only then do the handled records count as done, in offset order per partition
   (agents/acks.py), and the worker commits the offsets after them itself (agents/commits.py);
   held ones stay uncommitted.
Concurrency stays 1: Faust can commit past in-flight records with more (faust-streaming #606).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from churnstream.agents.acks import AckLedger
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.context import WorkerContext
from churnstream.agents.erasure import ERASED_USER
from churnstream.agents.input_guard import InputGuard
from churnstream.agents.intake import batches
from churnstream.agents.ordering import EventTimeAligner
from churnstream.model.labels import Example
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.dlq import dead_letter_of
from churnstream.stream.contract.events import Event
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.kafka.client import security_settings

log = logging.getLogger(__name__)

KIND_HEADER = "churnstream-kind"
RELEASE_INTERVAL_S = 0.1


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
    aligner: EventTimeAligner[tuple[Event, Any]] = EventTimeAligner(grace_s=settings.order_grace_s)
    # Admits each input record once, in offset order per partition (see agents/input_guard).
    guard = InputGuard(app, settings, ctx.bootstrap, metrics, rank)
    app.on_before_shutdown.connect(lambda *_, **__: guard.close())
    acks = AckLedger()
    commits = OffsetCommitter(app)
    app.on_before_shutdown.connect(lambda *_, **__: commits.commit(force=True))
    outputs = ctx.outputs
    app.on_before_shutdown.connect(lambda *_, **__: outputs.stop())

    def short(topic: str) -> str:
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    outbox: list[tuple[str, bytes | None, bytes, Any]] = []  # (topic, key, value, headers)

    def dead_letter(message: Any, error: str, detail: str, *, keep_data: bool = True) -> None:
        """Record -> churn.dlq with the reason; `keep_data=False` drops key and payload (an
        erased user's data must not be kept there)."""
        key, value = dead_letter_of(
            message, error, detail, max_bytes=max_bytes, keep_data=keep_data
        )
        outbox.append((dlq_topic, key, value, None))
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
        highwater = app.consumer.highwater
        out = []
        for tp in app.consumer.assignment():
            if tp.topic not in rank:
                continue
            end = highwater(tp)
            source = (tp.topic, tp.partition)
            if end is not None and end > (guard.sequence.expected(source) or 0):
                out.append(source)
        return out

    async def check_assignment() -> None:
        """After a rebalance, start over from the committed offsets.

        Faust moves every assigned partition (not only the lost ones) back to its committed
        offset, so everything held or unacked is delivered again: forget it all, and rebuild
        the due index from the partitions now owned.
        """
        if guard.changed():
            gone = guard.assigned - {(tp.topic, tp.partition) for tp in app.consumer.assignment()}
            aligner.clear()
            acks.clear()
            commits.forget()
            repo.forget()
            detector.watermark.forget(gone)
            detector.reschedule(repo.records())
            await guard.sync()
            metrics.rebalances.inc()
        await guard.watch()

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

    async def send_outbox(changelog: list[Any]) -> None:
        """Send the batch's changelog records and outputs and wait until the broker has them
        all, so that acking the inputs comes strictly after both."""
        records = changelog + outbox
        outbox.clear()
        if records:
            repo.written(await outputs.send(records))

    # The agent's batches, the release timer and erasures change user records; one at a time.
    lock = ctx.state_lock
    running: list[bool] = []

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
        await send_outbox(repo.flush())
        metrics.observe_flush(time.perf_counter() - flushed_at)
        for event in done:
            acks.finish(event)
        commits.done(acks.ready())
        await commits.commit()
        now = time.time()
        latency = metrics.event_to_score_latency_seconds
        for ts in appended:
            latency.observe(max(0.0, now - ts))

    def validate(message: Any) -> Event | None:
        """`classify`, with a bug in it dead-lettering the record instead of stalling."""
        try:
            return classify(message)
        except Exception:
            log.exception("unexpected error validating a record; sent to the DLQ")
            dead_letter(message, "internal_error", "validation raised; see worker log")
            return None

    @app.agent(ctx.inputs, name="churnstream-process", concurrency=1)
    async def process(stream: Any) -> None:
        metrics.worker_up.set(1)
        running[:] = [True]
        linger = settings.flush_interval_s
        async for batch in batches(stream.channel.queue, settings.flush_max_events, linger):
            async with lock:
                started = time.perf_counter()
                await check_assignment()
                done: list[Any] = []
                arrived = time.monotonic()
                for event in batch:
                    msg = event.message
                    take = guard.take(msg)
                    if take is None:
                        take = await guard.settle(msg)
                    if not take:
                        continue  # a repeat, or beyond a hole being read again: not ours
                    acks.open(event)
                    valid = validate(msg)
                    if valid is None:
                        done.append(event)
                        continue
                    tiebreak = (rank.get(msg.topic, 99), msg.partition, msg.offset)
                    source = (msg.topic, msg.partition)
                    aligner.push(source, valid.ts, tiebreak, (valid, event), arrived)
                await release_and_commit(done)
                metrics.observe_batch(len(batch), time.perf_counter() - started)

    @app.timer(RELEASE_INTERVAL_S)
    async def release_held() -> None:
        """Held events must not wait for the next record: once their sources caught up or their
        hold time is over they go out, also when no record arrives any more."""
        if not running or lock.locked():
            return
        async with lock:
            await check_assignment()
            if len(aligner):
                await release_and_commit([])
            await commits.commit()


def encode_example(example: Example) -> bytes:
    return orjson.dumps(example.to_dict())


def decode_example(value: bytes) -> Example:
    return Example.from_dict(orjson.loads(value))
