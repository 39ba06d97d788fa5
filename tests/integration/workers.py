"""Real churnstream workers for integration tests: subprocesses of `churnstream worker`.

Helpers wait on conditions with deadlines (metrics, consumer offsets, records), never on fixed
sleeps, and every worker is stopped by its owner (use `running_worker` as a context manager).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from churnstream.agents.configure import engine_config
from churnstream.features import UserState
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC, REKEYED
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.devtools.observe import metric_sum, scrape
from churnstream.stream.devtools.observe import wait_until as wait_until  # for the tests
from churnstream.stream.devtools.processes import ManagedProcess, start_worker, worker_env
from churnstream.stream.devtools.simulator import SimRecord
from churnstream.stream.devtools.simulator.kafka_sink import record_bytes
from churnstream.stream.kafka.admin import create_topics
from churnstream.stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """One `churnstream worker` subprocess with its own ports and data directory."""

    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        data_dir: Path,
        *,
        app_id: str | None = None,
        env: dict[str, str] | None = None,
        partitions: int = 4,
        log_level: str = "info",
    ) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.data_dir = data_dir
        self.app_id = app_id or prefix.strip(".") or "churnstream-test"
        self.metrics_port = free_port()
        self.web_port = free_port()
        self.partitions = partitions
        self.extra_env = env or {}
        self.log_level = log_level
        self.proc: ManagedProcess | None = None
        self.log_path = data_dir / f"worker-{self.web_port}.log"

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def env(self) -> dict[str, str]:
        # Nothing from the developer's shell: the test alone decides the worker's settings.
        base = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
        env = worker_env(
            base,
            self.bootstrap,
            topic_prefix=self.prefix,
            app_id=self.app_id,
            data_dir=self.data_dir / "faust",
            metrics_port=self.metrics_port,
            web_port=self.web_port,
            partitions=self.partitions,
            flush_interval_s=0.5,
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Appended: a worker restarted on the same directory keeps one log.
        self.proc = start_worker(
            self.env(), self.log_path, log_level=self.log_level, cwd=ROOT, append=True
        )
        self.proc.wait_ready(lambda: self.scrape() is not None, timeout, "metrics endpoint")
        return self

    def _alive(self) -> bool:
        if self.proc is None:
            raise AssertionError("worker not started")
        self.proc.check_alive()
        return True

    def log_tail(self, lines: int = 60) -> str:
        return self.proc.log_tail(lines) if self.proc is not None else "(no log)"

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None:
            self.proc.kill(sig)

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is not None:
            self.proc.stop(timeout)

    # -- observation --------------------------------------------------------------------------

    def scrape(self) -> str | None:
        return scrape(self.metrics_port, timeout=2.0)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels` (0 if none)."""
        return metric_sum(self.scrape(), name, **labels)

    def status(self) -> dict[str, Any]:
        """The worker's `GET /status/`: what it waits for and the events it holds."""
        url = f"http://127.0.0.1:{self.web_port}/status/"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return orjson.loads(resp.read())

    def received(self, topic: str) -> float:
        """Records of `topic` the worker has taken: processed, or held for event-time order."""
        consumed = self.metric("churnstream_records_consumed_total", topic=topic)
        return consumed + self.status()["events_held"].get(self.prefix + topic, 0)

    def user(self, user_id: str) -> dict[str, Any] | None:
        url = f"http://127.0.0.1:{self.web_port}/users/{user_id}/"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return orjson.loads(resp.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


@contextlib.contextmanager
def running_worker(*args: Any, **kwargs: Any) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(*args, **kwargs)
    try:
        yield worker.start()
    except BaseException:
        sys.stderr.write(f"--- worker log tail ---\n{worker.log_tail()}\n")
        raise
    finally:
        worker.stop()


# -- Kafka helpers ----------------------------------------------------------------------------


def make_topics(bootstrap: str, prefix: str, partitions: int = 4) -> Settings:
    settings = Settings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CHURNSTREAM_TOPIC_PREFIX": prefix,
            "CHURNSTREAM_PARTITIONS": str(partitions),
        }
    )
    asyncio.run(create_topics(settings, bootstrap=bootstrap))
    return settings


def produce(bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]]) -> int:
    """Send (topic, key, value) records with acks=all; returns the count."""

    async def go() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 2**20
        )
        await producer.start()
        n = 0
        try:
            futures = []
            for topic, key, value in records:
                futures.append(await producer.send(topic, value, key=key))
                n += 1
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return n

    return asyncio.run(go())


def consume(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Any]], bool],
    timeout: float,
    partitions: int | None = None,
) -> list[Any]:
    """Read `topic` from the beginning until `until(records)` holds; fails after `timeout`.

    `partitions`: assign partitions 0..n-1 directly instead of subscribing (a subscription
    only starts once the topic's metadata is known, which a just-created topic may lack).
    """

    async def go() -> list[Any]:
        consumer = AIOKafkaConsumer(
            *([] if partitions else [topic]),
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=16 * 2**20,
            max_partition_fetch_bytes=8 * 2**20,
        )
        await consumer.start()
        try:
            if partitions:
                tps = [TopicPartition(topic, p) for p in range(partitions)]
                consumer.assign(tps)
                await consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    out.extend(records)
                if until(out):
                    return out
            raise AssertionError(f"{topic}: condition not met after {timeout} s ({len(out)} read)")
        finally:
            await consumer.stop()

    return asyncio.run(go())


async def _partitions(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of `topics`, from the broker's metadata (a consumer knows only its own)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(desc["topic"], part["partition"])
        for desc in described
        for part in desc["partitions"]
    )


def produce_located(
    bootstrap: str, records: Iterable[tuple[str, bytes | None, bytes | None]]
) -> list[tuple[str, int, int]]:
    """Like `produce`, in order, but returns each record's (topic, partition, offset)."""

    async def go() -> list[tuple[str, int, int]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=4 * 2**20
        )
        await producer.start()
        try:
            futures = [await producer.send(topic, value, key=key) for topic, key, value in records]
            metas = await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [(m.topic, m.partition, m.offset) for m in metas]

    return asyncio.run(go())


def consumer_lag(bootstrap: str, group: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """Records of `topics` not yet covered by `group`'s committed offsets, per partition."""

    async def go() -> dict[tuple[str, int], int]:
        tps = await _partitions(bootstrap, topics)
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        finally:
            await consumer.stop()
            await admin.close()
        lag = {}
        for tp in tps:
            meta = committed.get(tp)
            done = meta.offset if meta is not None and meta.offset >= 0 else 0
            lag[(tp.topic, tp.partition)] = ends[tp] - done
        return lag

    return asyncio.run(go())


def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[tuple[str, int], int]:
    """The offset after the last record of every partition of `topics`."""

    async def go() -> dict[tuple[str, int], int]:
        tps = await _partitions(bootstrap, topics)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            ends = await consumer.end_offsets(tps)
        finally:
            await consumer.stop()
        return {(tp.topic, tp.partition): end for tp, end in ends.items()}

    return asyncio.run(go())


def wait_caught_up(
    worker: WorkerProcess, topics: Iterable[str], timeout: float
) -> dict[tuple[str, int], int]:
    """Wait until the worker's group has committed every record of `topics`.

    The worker acks a record only after its state is in the table and Faust commits only acked
    offsets after flushing its producer, so zero lag means every record's effects are visible.
    """
    names = sorted(set(topics))
    deadline = time.monotonic() + timeout
    while True:
        worker._alive()
        lag = consumer_lag(worker.bootstrap, worker.app_id, names)
        if lag and not any(lag.values()):
            return lag
        if time.monotonic() > deadline:
            behind = {tp: n for tp, n in lag.items() if n}
            held = worker.metric("churnstream_events_held")
            consumed = worker.metric("churnstream_records_consumed_total")
            raise AssertionError(
                f"group {worker.app_id} still behind after {timeout} s: {behind}; "
                f"worker consumed {consumed:.0f} records and holds {held:.0f} events"
            )
        time.sleep(0.5)


def input_topics(prefix: str) -> list[str]:
    """Every topic the process agent consumes: the six contract topics and churn.rekeyed."""
    return [f"{prefix}{name}" for name in (*INPUT_TOPICS.values(), REKEYED)]


def sim_to_kafka(
    prefix: str, records: Iterable[SimRecord]
) -> list[tuple[str, bytes | None, bytes | None]]:
    """Simulator records as (topic, key, value) with the topic prefix applied."""
    return [
        (prefix + r.topic, None if r.key is None else r.key.encode(), record_bytes(r))
        for r in records
    ]


# -- expectations -----------------------------------------------------------------------------


def clean_pass(
    records: Iterable[tuple[str, bytes | None]], settings: Settings | None = None
) -> dict[str, UserState]:
    """Per-user feature state after ONE in-process pass over (contract topic, value) records.

    Invalid records are skipped; valid events are applied in event-time order (ties: contract
    topic order, then arrival), which is the order the worker's aligner releases them in.
    """
    settings = settings or Settings()
    config = engine_config(settings).features
    rank = {name: i for i, name in enumerate(INPUT_TOPICS.values())}
    events = []
    for i, (topic, value) in enumerate(records):
        event = parse(KIND_BY_TOPIC[topic], value, settings.max_record_bytes)
        if not isinstance(event, Invalid):
            events.append((event.ts, rank[topic], i, event))
    events.sort(key=lambda e: e[:3])
    states: dict[str, UserState] = {}
    for *_, event in events:
        state = states.get(event.user_id)
        if state is None:
            state = states[event.user_id] = UserState.new(event.user_id, config)
        state.apply(event)
    return states


def feature_mismatches(
    actual: dict[str, Any], expected: dict[str, float], tol: float = 1e-9
) -> dict[str, tuple[Any, float]]:
    """Features whose served value differs from the expected one (NaN equals NaN/null)."""
    bad: dict[str, tuple[Any, float]] = {}
    for name, want in expected.items():
        got = actual.get(name)
        if got is None or (isinstance(got, float) and math.isnan(got)):
            if not math.isnan(want):
                bad[name] = (got, want)
        elif math.isnan(want) or not math.isclose(got, want, rel_tol=tol, abs_tol=tol):
            bad[name] = (got, want)
    return bad


def produce_day_by_day(worker: WorkerProcess, prefix: str, records: list[SimRecord]) -> None:
    """Produce one event-time day, wait until the worker committed it, then the next.

    Parity is about the same events in the same order. A worker that keeps up processes its
    partitions in event-time order; one catching up on a whole history at once releases early
    (see agents/ordering.py), so the test plays the history the way a live stream arrives.
    """
    for _, day in itertools.groupby(records, key=lambda r: int(r.ts // 86400)):
        produce(worker.bootstrap, sim_to_kafka(prefix, day))
        wait_caught_up(worker, input_topics(prefix), timeout=60)


def assert_state_matches(worker: WorkerProcess, sims: list[SimRecord]) -> None:
    """Every user's served features equal a clean single pass over `sims`."""
    expected = clean_pass(
        (s.topic, v) for s, (_, _, v) in zip(sims, sim_to_kafka("", sims), strict=True)
    )
    assert len(expected) >= 200
    unknown, wrong = [], {}
    for user, state in expected.items():
        view = worker.user(user)
        if view is None:
            unknown.append(user)
            continue
        diff = feature_mismatches(view["features"], state.features())
        if diff:
            wrong[user] = diff
    assert unknown == []
    assert wrong == {}, f"{len(wrong)} users differ, e.g. {next(iter(wrong.items()), None)}"
