"""Backfill: a history through the replay's code path, its results written where workers look.

A business adopting churnstream has months of events. `churnstream backfill` runs them through
`model.replay.Replay` (the detector, labels, inline trainer and alerts the live worker uses)
and then hands the live system what the replay built, so alerts are useful on the first day:

- each segment's trained model goes to `churn.models`, above every version already published
  (workers install only a newer version), with the `covers` header at the last example on
  `churn.examples`: the trainer that restores it learns only the examples that come after;
- each user's record (features, pending labels, alert memory, next daily boundary) goes to the
  `users` table's changelog, keyed and partitioned as the worker writes it (agents/repository.py:
  the raw user id, murmur2 of the key), so a worker started afterwards recovers it as its own
  and rebuilds its schedules from it (`Detector.reschedule`);
- no historical score or alert is published unless asked: they are history, not news.

Events at or after `until` are left for the live stream (none if `until` is None); the event
time reached is printed and put on every snapshot it publishes (`churnstream-backfill-until`),
so the live stream takes over where the backfill stopped, without a gap or a double.

Run it before the workers start (a worker's table would overwrite and be overwritten): it
refuses a changelog that already holds records unless `force`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from churnstream.agents import configure
from churnstream.agents.model_feed import (
    COVERS_HEADER,
    ORIGIN_HEADER,
    VERSION_HEADER,
    snapshot_check,
)
from churnstream.agents.outputs import key_partition
from churnstream.model.partitioned import PartitionedReplay
from churnstream.model.replay import Replay
from churnstream.model.replay_input import LEFT_OUT, ReplayRecord, read_event
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.events import Event
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.kafka.admin import (
    changelog_spec,
    changelog_topic,
    create_topics,
    topic_specs,
)
from churnstream.stream.kafka.client import client_options, security_settings
from churnstream.stream.settings import Settings

UNTIL_HEADER = "churnstream-backfill-until"
PROGRESS_EVERY = 10_000  # events between progress calls
SEND_CHUNK = 5_000  # changelog records in flight before waiting for their acknowledgements


class BackfillError(ChurnstreamError, RuntimeError):
    """The backfill cannot write into this deployment; the message says why, on one line."""


@dataclass
class History:
    """What the history run built, before anything is published."""

    replay: Replay
    report: dict[str, Any]
    until: float | None
    reached: float = -math.inf  # latest event time applied
    after_until: int = 0  # records left for the live stream
    erased: int = 0  # events of users on the erasure block list, left out as the worker does
    seconds: float = 0.0


@dataclass
class Published:
    users: int = 0
    changelog: str = ""
    models: dict[str, int] = field(default_factory=dict)  # segment -> version published
    scores: int = 0
    alerts: int = 0


def run_history(
    records: Iterable[ReplayRecord],
    settings: Settings,
    *,
    until: float | None = None,
    scores_out: IO[bytes] | None = None,
    alerts_out: IO[bytes] | None = None,
    progress: Callable[[int, float], None] | None = None,
    progress_every: int = PROGRESS_EVERY,
    jobs: int = 1,
    by_user: bool = False,
) -> History:
    """Replay `records` (those with an event time before `until`) as `churnstream replay`
    does; `progress(records read, event time reached)` every `progress_every` records, with
    `jobs` processes (`Replay`; `by_user`: users partitioned over them, model/partitioned.py)."""
    started = time.monotonic()
    replay = configure.replay(
        settings, scores_out=scores_out, alerts_out=alerts_out, jobs=jobs, by_user=by_user
    )
    history = History(replay, {}, until)
    # The worker replaces a raw id by its pseudonym before any state sees it and drops the
    # events of erased users (the block list); so does this.
    security = security_settings(settings)
    pseudo, blocked = security.pseudonymizer(), security.blocked_users()

    def admit(event: Event) -> Event | None:
        if until is not None and event.ts >= until:
            history.after_until += 1
            return None
        history.reached = max(history.reached, event.ts)
        if pseudo.enabled:
            event = dataclasses.replace(event, user_id=pseudo(event.user_id))
        if event.user_id in blocked:
            history.erased += 1
            return None
        return event

    if isinstance(replay, PartitionedReplay):
        # Its reader parses and admits each record once, its processes their users' again
        # (the same answer; their counts are not these).
        replay.admit = admit
        replay.progress_every = progress_every
        read_so_far = None
        if progress is not None:
            read_so_far = lambda n: progress(n, history.reached)  # noqa: E731
        replay.run(records, read_so_far)
        history.report = replay.report()
        history.seconds = time.monotonic() - started
        return history
    read = 0
    try:
        for rec in records:
            read += 1
            if progress is not None and read % progress_every == 0:
                progress(read, history.reached)
            event = read_event(rec.kind, rec.value, settings.max_record_bytes, admit)
            if event is not LEFT_OUT:
                replay.feed_parsed(rec.kind, event)
        # What a live worker does after its last batch: the tied events, a sweep, the model.
        replay.finish()
    finally:
        replay.close()  # the score pool, if the loop failed
    history.report = replay.report()
    history.seconds = time.monotonic() - started
    return history


async def publish(
    history: History,
    settings: Settings,
    bootstrap: str,
    *,
    force: bool = False,
    scores: IO[bytes] | None = None,
    alerts: IO[bytes] | None = None,
) -> Published:
    """Write the users' records, the models and (if given) the scores and alerts JSONL."""
    changelog = changelog_topic(settings)
    await create_topics(
        settings, [*topic_specs(settings), changelog_spec(settings)], bootstrap=bootstrap
    )
    held = sum(await _end_offsets(settings, bootstrap, changelog, settings.partitions))
    if held and not force:
        raise BackfillError(
            f"{changelog} already holds {held:,} records: backfill a deployment before its "
            "workers run (--force writes anyway; stop every worker first)"
        )
    (examples_end,) = await _end_offsets(settings, bootstrap, settings.topic(t.EXAMPLES), 1)
    floors = await _published_versions(settings, bootstrap)
    check = snapshot_check(settings)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=16 << 20,
        **client_options(settings),
    )
    await producer.start()
    try:
        done = Published(changelog=changelog)
        done.users = await _send_all(
            producer,
            (
                (changelog, key, rec.to_bytes(), key_partition(key, settings.partitions))
                for key, rec in (
                    (uid.encode(), rec) for uid, rec in history.replay.repo.records.items()
                )
            ),
        )
        until = history.until if history.until is not None else history.reached
        for segment, model in history.replay.trainer.models.items():
            if model.version == 0:
                continue  # learned nothing: the live trainer starts this segment itself
            # Workers install only a version above theirs; a trainer continues above it.
            model.version = max(model.version, floors.get(segment, 0) + 1)
            headers = [
                # Every example on churn.examples so far is older than the history's model.
                (COVERS_HEADER, str(examples_end - 1).encode()),
                (VERSION_HEADER, str(model.version).encode()),
                (UNTIL_HEADER, repr(until).encode()),
                (ORIGIN_HEADER, b"backfill"),
            ]
            snapshot = check.sign(history.replay.trainer.snapshot(segment))
            await producer.send_and_wait(
                settings.topic(t.MODELS), snapshot, key=segment.encode(), headers=headers
            )
            done.models[segment] = model.version
        if scores is not None:
            done.scores = await _send_all(producer, _keyed(scores, settings.topic(t.SCORES)))
        if alerts is not None:
            done.alerts = await _send_all(producer, _keyed(alerts, settings.topic(t.ALERTS)))
        await producer.flush()
        return done
    finally:
        await producer.stop()


def _keyed(lines: IO[bytes], topic: str) -> Iterable[tuple[str, bytes, bytes, int | None]]:
    """Output messages of a JSONL file, keyed by their user as the worker keys them."""
    lines.seek(0)
    for line in lines:
        yield topic, orjson.loads(line)["user_id"].encode(), line.rstrip(b"\n"), None


async def _send_all(
    producer: AIOKafkaProducer, records: Iterable[tuple[str, bytes, bytes, int | None]]
) -> int:
    """Send every record; return once the broker acknowledged all of them (raises if not)."""
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    for topic, key, value, partition in records:
        pending.append(await producer.send(topic, value, key=key, partition=partition))
        if len(pending) >= SEND_CHUNK:
            await asyncio.gather(*pending)
            sent += len(pending)
            pending.clear()
    await asyncio.gather(*pending)
    return sent + len(pending)


def _consumer(settings: Settings, bootstrap: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 << 20,
        **client_options(settings),
    )


async def _end_offsets(
    settings: Settings, bootstrap: str, topic: str, partitions: int
) -> list[int]:
    """Log end offsets of `topic`'s partitions 0..partitions-1 (the topic exists)."""
    consumer = _consumer(settings, bootstrap)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        ends = await consumer.end_offsets(tps)
        return [ends[tp] for tp in tps]
    finally:
        await consumer.stop()


async def _published_versions(settings: Settings, bootstrap: str) -> dict[str, int]:
    """Highest model version ever published per segment (the snapshots' version header, read
    without decoding a snapshot)."""
    consumer = _consumer(settings, bootstrap)
    tp = TopicPartition(settings.topic(t.MODELS), 0)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        floors: dict[str, int] = {}
        while await consumer.position(tp) < end:
            for record in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, []):
                version = dict(record.headers).get(VERSION_HEADER, b"")
                if record.key and version.isdigit():
                    segment = record.key.decode()
                    floors[segment] = max(floors.get(segment, 0), int(version))
        return floors
    finally:
        await consumer.stop()
