"""`churnstream deliver`, the I/O part: sinks, the `churn.alerts` consumer loop and its metrics.

What is decided without I/O (routing, bodies, signature, back-off) is in model/delivery.py.
At least once, never lost: the offsets of a batch are committed only after every alert in it
was sent to each sink its routes name, or, for a sink that failed past its retry budget (or
refused it for good), a dead-letter record naming the sink and the reason was acknowledged by
the broker. A process that dies before the commit delivers the batch again (receivers dedupe
on the `Idempotency-Key`). Holdout alerts are skipped. Several processes share the work
through their consumer group. It is a plain aiokafka consumer: no state, no Faust.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Counter, Histogram

from churnstream.model.delivery import (
    IDEMPOTENCY_HEADER,
    JSONL,
    SLACK,
    DeliveryConfig,
    SinkConfig,
    is_holdout,
    jsonl_line,
    retryable,
    slack_body,
    webhook_headers,
)
from churnstream.stream.contract.dlq import RECORD_LIMIT, dead_letter_of
from churnstream.stream.contract.topics import ALERTS
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

__all__ = [
    "Deliverer",
    "DeliveryMetrics",
    "HttpSink",
    "JsonlSink",
    "Sink",
    "SinkFailed",
    "deliver_loop",
    "make_sinks",
    "run_delivery",
]

log = logging.getLogger(__name__)

INVALID_ALERT: Final = "invalid_alert"
DELIVERY_FAILED: Final = "delivery_failed"
ALERT_RESULTS: Final = ("routed", "holdout", "unrouted", "invalid")
SECONDS_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class DeliveryMetrics:
    """Metrics of one `deliver` process on its own registry. Labels: `sink` (a configured
    name, so bounded by the file) and `result`; never a user."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.alerts = Counter(
            "churnstream_delivery_alerts",
            "Alerts read from churn.alerts by result: routed, holdout (skipped), unrouted "
            "(no route matched), invalid (dead-lettered)",
            ["result"],
            registry=self.registry,
        )
        self.sent = Counter(
            "churnstream_delivery_sent",
            "Alerts a sink accepted",
            ["sink"],
            registry=self.registry,
        )
        self.failed = Counter(
            "churnstream_delivery_failed",
            "Failed attempts of a sink (retried or not)",
            ["sink"],
            registry=self.registry,
        )
        self.dead_lettered = Counter(
            "churnstream_delivery_dead_lettered",
            "Alerts a sink failed past its retry budget, sent to the dead-letter topic",
            ["sink"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "churnstream_delivery_seconds",
            "Seconds from the first attempt to a sink's acceptance (retries included)",
            ["sink"],
            buckets=SECONDS_BUCKETS,
            registry=self.registry,
        )

    def prebind(self, sinks: Mapping[str, SinkConfig]) -> None:
        """Create every series at 0 so rates and alerts see them before the first event."""
        for result in ALERT_RESULTS:
            self.alerts.labels(result)
        for name in sinks:
            self.sent.labels(name)
            self.failed.labels(name)
            self.dead_lettered.labels(name)


class SinkFailed(Exception):
    """A sink gave up on an alert; `str()` is the reason (never a URL or a secret)."""


class Sink(Protocol):
    """Sends one alert (the parsed record and its bytes as received); raises `SinkFailed`."""

    name: str

    async def deliver(self, alert: Mapping[str, Any], raw: bytes) -> None: ...


Attempt = tuple[str | None, bool]
"""(None, _) on success, else (reason, permanent): a permanent failure is not retried."""


class _Retrying:
    """Attempts with exponential back-off per the sink's `RetryPolicy`, counted in metrics."""

    def __init__(
        self,
        config: SinkConfig,
        metrics: DeliveryMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.name = config.name
        self.config = config
        self.metrics = metrics
        self._sleep = sleep

    async def _attempt(self, alert: Mapping[str, Any], raw: bytes) -> Attempt:
        raise NotImplementedError

    async def deliver(self, alert: Mapping[str, Any], raw: bytes) -> None:
        retry = self.config.retry
        started = time.monotonic()
        for attempt in range(1, retry.max_attempts + 1):
            reason, permanent = await self._attempt(alert, raw)
            if reason is None:
                self.metrics.sent.labels(self.name).inc()
                self.metrics.seconds.labels(self.name).observe(time.monotonic() - started)
                return
            self.metrics.failed.labels(self.name).inc()
            if permanent:
                raise SinkFailed(f"{reason} (not retried)")
            if attempt < retry.max_attempts:
                await self._sleep(retry.delay(attempt))
        raise SinkFailed(f"{reason} after {retry.max_attempts} attempts")


class HttpSink(_Retrying):
    """A generic webhook (the alert record as the JSON body, idempotency key, HMAC signature)
    or a Slack-compatible incoming webhook (`{"text": ...}`)."""

    def __init__(
        self,
        config: SinkConfig,
        session: aiohttp.ClientSession,
        metrics: DeliveryMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, metrics, sleep)
        self._session = session

    def request(self, alert: Mapping[str, Any], raw: bytes) -> tuple[bytes, dict[str, str]]:
        """Body and headers of the POST."""
        if self.config.type == SLACK:
            headers = {
                "Content-Type": "application/json",
                IDEMPOTENCY_HEADER: str(alert.get("alert_id", "")),
            }
            return slack_body(alert), headers
        return raw, webhook_headers(alert, raw, self.config.secret)

    async def _attempt(self, alert: Mapping[str, Any], raw: bytes) -> Attempt:
        body, headers = self.request(alert, raw)
        timeout_s = self.config.retry.timeout_s
        try:
            async with self._session.post(
                self.config.url,
                data=body,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                # A redirect would need the receiver's trust anew; report it instead.
                allow_redirects=False,
            ) as resp:
                await resp.read()
                if 200 <= resp.status < 300:
                    return None, False
                return f"HTTP {resp.status}", not retryable(resp.status)
        except TimeoutError:
            return f"no answer within {timeout_s:g} s", False
        except aiohttp.ClientError as exc:
            # The class only: an exception's text may hold the URL, and with it a token.
            return type(exc).__name__, False


class JsonlSink(_Retrying):
    """Appends each alert as one JSON line to a file (flushed and fsynced before it counts as
    sent). Lines of concurrent alerts never interleave: one write per line under a lock."""

    def __init__(
        self,
        config: SinkConfig,
        metrics: DeliveryMetrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        super().__init__(config, metrics, sleep)
        self._lock = asyncio.Lock()

    async def _attempt(self, alert: Mapping[str, Any], raw: bytes) -> Attempt:
        line = jsonl_line(raw)
        try:
            async with self._lock:
                await asyncio.to_thread(self._append, line)
        except OSError as exc:
            return f"cannot write the file ({exc.strerror})", False
        return None, False

    def _append(self, line: bytes) -> None:
        # Opened per line so that a rotated file is picked up at the next alert.
        with Path(self.config.path).open("ab") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def make_sinks(
    config: DeliveryConfig, session: aiohttp.ClientSession, metrics: DeliveryMetrics
) -> dict[str, Sink]:
    """One sink object per configured sink."""
    sinks: dict[str, Sink] = {}
    for name, sink in config.sinks.items():
        sinks[name] = (
            JsonlSink(sink, metrics) if sink.type == JSONL else HttpSink(sink, session, metrics)
        )
    return sinks


DeadLetter = Callable[[ConsumerRecord, str, str], Awaitable[None]]
"""Send a dead-letter record for (consumed record, error, detail) and wait for the broker."""


class Deliverer:
    """Decides what happens to one consumed alert record and does it."""

    def __init__(
        self,
        config: DeliveryConfig,
        sinks: Mapping[str, Sink],
        dead_letter: DeadLetter,
        metrics: DeliveryMetrics,
    ) -> None:
        self.config = config
        self.sinks = sinks
        self.dead_letter = dead_letter
        self.metrics = metrics

    async def handle(self, record: ConsumerRecord) -> None:
        """Returns once the alert was delivered to every routed sink, skipped, or dead-lettered
        for each sink that failed; raises only if a dead-letter record could not be sent."""
        raw = record.value or b""
        try:
            alert = orjson.loads(raw)
        except orjson.JSONDecodeError:
            alert = None
        if not isinstance(alert, dict):
            self.metrics.alerts.labels("invalid").inc()
            await self.dead_letter(record, INVALID_ALERT, "alert record is not a JSON object")
            return
        if is_holdout(alert):
            self.metrics.alerts.labels("holdout").inc()
            return
        names = self.config.sinks_for(alert)
        if not names:
            self.metrics.alerts.labels("unrouted").inc()
            return
        self.metrics.alerts.labels("routed").inc()
        outcomes = await asyncio.gather(
            *(self._send(self.sinks[name], alert, raw) for name in names)
        )
        for name, reason in zip(names, outcomes, strict=True):
            if reason is not None:
                await self.dead_letter(record, DELIVERY_FAILED, f"sink {name}: {reason}")
                self.metrics.dead_lettered.labels(name).inc()
                log.warning(
                    "alert %s dead-lettered: sink %s: %s", alert.get("alert_id"), name, reason
                )

    @staticmethod
    async def _send(sink: Sink, alert: Mapping[str, Any], raw: bytes) -> str | None:
        try:
            await sink.deliver(alert, raw)
        except SinkFailed as exc:
            return str(exc)
        except Exception as exc:
            # A bug or an alert a sink cannot handle must not stop every later alert (the
            # batch would be delivered, and fail, again after each restart): dead-letter it.
            log.exception("sink %s failed on alert %s", sink.name, alert.get("alert_id"))
            return f"{type(exc).__name__} (not retried)"
        return None


async def deliver_loop(
    consumer: AIOKafkaConsumer,
    deliverer: Deliverer,
    stop: asyncio.Event,
    *,
    max_in_flight: int,
) -> int:
    """Deliver batches until `stop` is set (the batch in hand is finished first); commit each
    batch's offsets once all its alerts are done. Returns the number of records handled."""
    gate = asyncio.Semaphore(max_in_flight)
    handled = 0

    async def one(record: ConsumerRecord) -> None:
        async with gate:
            await deliverer.handle(record)

    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500, max_records=max_in_flight * 8)
        if not batch:
            continue
        # A TaskGroup: if a dead-letter send fails, the rest is cancelled and nothing is
        # committed, so the whole batch is delivered again after the restart. The first error
        # is raised as itself, so the command reports it on one line.
        try:
            async with asyncio.TaskGroup() as group:
                for records in batch.values():
                    for record in records:
                        group.create_task(one(record))
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None
        handled += sum(len(records) for records in batch.values())
        await _commit(consumer, batch)
    return handled


async def _commit(consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, list[Any]]) -> None:
    offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items()}
    try:
        await consumer.commit(offsets)
    except (CommitFailedError, IllegalStateError) as exc:
        # The partitions moved to another process, which delivers them again (same keys).
        log.warning("commit after delivery failed (%s); the new owner delivers again", exc)


async def run_delivery(
    settings: Settings,
    config: DeliveryConfig,
    bootstrap: str,
    stop: asyncio.Event,
    metrics: DeliveryMetrics,
) -> int:
    """Consume `churn.alerts` in the delivery group until `stop` is set."""
    options = client_options(settings)
    group = config.group_id or f"{settings.app_id}-deliver"
    consumer = AIOKafkaConsumer(
        settings.topic(ALERTS),
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset=config.start,
        **options,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, **options
    )
    dlq_topic = settings.topic(config.dead_letter_topic)

    async def dead_letter(record: ConsumerRecord, error: str, detail: str) -> None:
        key, value = dead_letter_of(record, error, detail, max_bytes=RECORD_LIMIT)
        await producer.send_and_wait(dlq_topic, value, key=key)

    metrics.prebind(config.sinks)
    await producer.start()
    try:
        await consumer.start()
        try:
            async with aiohttp.ClientSession() as session:
                deliverer = Deliverer(
                    config, make_sinks(config, session, metrics), dead_letter, metrics
                )
                log.info(
                    "delivering %s (group %s) to %s",
                    settings.topic(ALERTS),
                    group,
                    ", ".join(f"{s.name} ({s.type})" for s in config.sinks.values()),
                )
                return await deliver_loop(
                    consumer, deliverer, stop, max_in_flight=config.max_in_flight
                )
        finally:
            await consumer.stop()
    finally:
        await producer.stop()
