"""agents.delivery against a real HTTP server on 127.0.0.1: retries, timeouts, slow answers,
permanent refusals, the JSONL sink, dead letters, holdout, and commits only after delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import TopicPartition
from http_receiver import http_receiver

from churnstream.agents.delivery import (
    Deliverer,
    DeliveryMetrics,
    HttpSink,
    JsonlSink,
    SinkFailed,
    deliver_loop,
    make_sinks,
)
from churnstream.model.delivery import (
    DeliveryConfig,
    RetryPolicy,
    Route,
    SinkConfig,
    parse_config,
)

ALERT: dict[str, Any] = {
    "alert_id": "a" * 32,
    "kind": "churn_risk",
    "user_id": "u1",
    "segment": "saas",
    "ts": "2026-02-02T02:40:00.000Z",
    "severity": "critical",
    "value": 0.82,
    "threshold": 0.5,
    "drivers": [{"feature": "days_since_login", "value": 12.0, "contribution": 1.0}],
    "action": {"code": "check_in", "text": "Call the customer."},
    "message": "Risk 0.82 (critical)",
}
RAW = orjson.dumps(ALERT)
FAST = RetryPolicy(max_attempts=3, timeout_s=2.0, backoff_s=0.01, backoff_max_s=0.05)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def value(metric: Any, *labels: str) -> float:
    return float(metric.labels(*labels)._value.get())


async def with_session(go: Callable[[aiohttp.ClientSession], Awaitable[Any]]) -> Any:
    async with aiohttp.ClientSession() as session:
        return await go(session)


def deliver_http(
    config: SinkConfig, alert: dict[str, Any] = ALERT, raw: bytes = RAW
) -> DeliveryMetrics:
    metrics = DeliveryMetrics()
    asyncio.run(with_session(lambda s: HttpSink(config, s, metrics).deliver(alert, raw)))
    return metrics


def webhook(url: str, retry: RetryPolicy = FAST, secret: bytes | None = b"s3cret") -> SinkConfig:
    return SinkConfig("crm", "webhook", url=url, secret=secret, retry=retry)


def test_webhook_posts_the_record_signed_with_the_idempotency_key() -> None:
    with http_receiver("ok") as rx:
        metrics = deliver_http(webhook(rx.url))
    (req,) = rx.requests
    assert req.body == RAW
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Idempotency-Key"] == ALERT["alert_id"]
    expected = "sha256=" + hmac.new(b"s3cret", RAW, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(req.headers["X-Churnstream-Signature"], expected)
    assert value(metrics.sent, "crm") == 1
    assert value(metrics.failed, "crm") == 0


def test_failures_are_retried_with_the_same_key_until_accepted() -> None:
    with http_receiver(503, 500, "ok") as rx:
        metrics = deliver_http(webhook(rx.url))
    assert len(rx.requests) == 3
    assert set(rx.keys()) == {ALERT["alert_id"]}
    assert value(metrics.failed, "crm") == 2
    assert value(metrics.sent, "crm") == 1


def test_a_sink_failing_past_its_budget_gives_up_with_the_reason() -> None:
    with http_receiver(503) as rx, pytest.raises(SinkFailed, match="HTTP 503 after 3 attempts"):
        deliver_http(webhook(rx.url))
    assert len(rx.requests) == 3


def test_a_permanent_refusal_is_not_retried() -> None:
    with http_receiver(400) as rx, pytest.raises(SinkFailed, match=r"HTTP 400 \(not retried\)"):
        deliver_http(webhook(rx.url))
    assert len(rx.requests) == 1


def test_a_server_that_does_not_answer_times_out_and_is_retried() -> None:
    retry = RetryPolicy(max_attempts=2, timeout_s=0.3, backoff_s=0.01)
    with (
        http_receiver("hang") as rx,
        pytest.raises(SinkFailed, match=r"no answer within 0\.3 s after 2 attempts"),
    ):
        deliver_http(webhook(rx.url, retry))
    assert len(rx.requests) == 2


def test_a_slow_answer_within_the_timeout_is_a_success() -> None:
    retry = RetryPolicy(max_attempts=1, timeout_s=5.0)
    with http_receiver("slow", slow_s=0.5) as rx:
        metrics = deliver_http(webhook(rx.url, retry))
    assert len(rx.requests) == 1
    assert value(metrics.sent, "crm") == 1


def test_a_timeout_then_an_answer_is_delivered() -> None:
    retry = RetryPolicy(max_attempts=3, timeout_s=0.3, backoff_s=0.01)
    with http_receiver("hang", "ok") as rx:
        metrics = deliver_http(webhook(rx.url, retry))
    assert len(rx.requests) == 2
    assert value(metrics.failed, "crm") == 1 and value(metrics.sent, "crm") == 1


def test_connection_refused_names_no_url() -> None:
    with http_receiver("ok") as rx:
        url = rx.url + "?token=SECRET"
    # The server is gone: nothing listens on the port any more.
    with pytest.raises(SinkFailed) as info:
        deliver_http(webhook(url))
    assert "SECRET" not in str(info.value) and "127.0.0.1" not in str(info.value)
    assert str(info.value).endswith("after 3 attempts")


def test_slack_sink_posts_a_text_message() -> None:
    with http_receiver("ok") as rx:
        deliver_http(SinkConfig("chat", "slack", url=rx.url, retry=FAST))
    (req,) = rx.requests
    text = orjson.loads(req.body)["text"]
    assert "customer `u1` (saas)" in text and "Call the customer." in text
    assert "X-Churnstream-Signature" not in req.headers


def test_jsonl_sink_appends_lines_and_fails_on_an_unwritable_path(tmp_path: Path) -> None:
    path = tmp_path / "alerts.jsonl"
    metrics = DeliveryMetrics()
    sink = JsonlSink(SinkConfig("file", "jsonl", path=str(path), retry=FAST), metrics)

    async def go() -> None:
        await asyncio.gather(*(sink.deliver(ALERT, RAW) for _ in range(20)))

    asyncio.run(go())
    lines = path.read_bytes().splitlines()
    assert len(lines) == 20 and all(orjson.loads(line) == ALERT for line in lines)
    bad = JsonlSink(
        SinkConfig("file", "jsonl", path=str(tmp_path / "no" / "a.jsonl"), retry=FAST), metrics
    )
    with pytest.raises(SinkFailed, match="cannot write the file"):
        asyncio.run(bad.deliver(ALERT, RAW))


# -- Deliverer and the loop -----------------------------------------------------------------


def config_for(url_ok: str, url_bad: str, path: Path) -> DeliveryConfig:
    doc = {
        "sinks": [
            {"name": "good", "type": "webhook", "url": url_ok, "backoff_s": 0.01},
            {
                "name": "bad",
                "type": "webhook",
                "url": url_bad,
                "max_attempts": 2,
                "backoff_s": 0.01,
            },
            {"name": "file", "type": "jsonl", "path": str(path)},
        ],
        "routes": [
            {"sinks": ["good", "file"]},
            {"sinks": ["bad"], "segments": ["course"]},
        ],
    }
    return parse_config(doc, {})


class Letters:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[int, str, str]] = []
        self.fail = fail

    async def __call__(self, record: Any, error: str, detail: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((record.offset, error, detail))


def run_deliverer(config: DeliveryConfig, records: list[Rec], letters: Letters) -> DeliveryMetrics:
    metrics = DeliveryMetrics()

    async def go(session: aiohttp.ClientSession) -> None:
        deliverer = Deliverer(config, make_sinks(config, session, metrics), letters, metrics)
        for record in records:
            await deliverer.handle(record)

    asyncio.run(with_session(go))
    return metrics


def rec(offset: int, alert: dict[str, Any] | None = None, raw: bytes | None = None) -> Rec:
    return Rec("churn.alerts", 0, offset, b"u1", raw if raw is not None else orjson.dumps(alert))


def test_deliverer_skips_holdout_dead_letters_failed_sinks_only(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    with http_receiver("ok") as good, http_receiver(503) as bad:
        letters = Letters()
        records = [
            rec(0, {**ALERT, "alert_id": "saas"}),
            rec(1, {**ALERT, "alert_id": "course", "segment": "course"}),
            rec(2, {**ALERT, "alert_id": "hold", "holdout": True}),
            rec(3, raw=b"not json"),
        ]
        metrics = run_deliverer(config_for(good.url, bad.url, path), records, letters)
    assert good.keys() == ["saas", "course"]
    assert bad.keys() == ["course", "course"]
    assert letters.sent == [
        (1, "delivery_failed", "sink bad: HTTP 503 after 2 attempts"),
        (3, "invalid_alert", "alert record is not a JSON object"),
    ]
    assert [orjson.loads(line)["alert_id"] for line in path.read_bytes().splitlines()] == [
        "saas",
        "course",
    ]
    assert value(metrics.alerts, "holdout") == 1
    assert value(metrics.alerts, "routed") == 2
    assert value(metrics.alerts, "invalid") == 1
    assert value(metrics.dead_lettered, "bad") == 1
    assert value(metrics.sent, "good") == 2


class FakeConsumer:
    """Hands out one scripted batch per getmany, then sets `stop`; records commits."""

    def __init__(self, batches: list[list[Rec]], stop: asyncio.Event) -> None:
        self.batches = batches
        self.stop = stop
        self.commits: list[dict[TopicPartition, int]] = []

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Rec]]:
        if not self.batches:
            self.stop.set()
            return {}
        out: dict[TopicPartition, list[Rec]] = {}
        for r in self.batches.pop(0):
            out.setdefault(TopicPartition(r.topic, r.partition), []).append(r)
        return out

    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


def test_loop_commits_each_batch_after_its_alerts_are_delivered(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    config = DeliveryConfig(
        sinks={"file": SinkConfig("file", "jsonl", path=str(path), retry=FAST)},
        routes=(Route(("file",)),),
    )
    metrics = DeliveryMetrics()
    seen_at_commit: list[int] = []

    async def go() -> int:
        stop = asyncio.Event()
        batches = [[rec(i, {**ALERT, "alert_id": str(i)}) for i in range(3)], [rec(3, ALERT)]]
        consumer = FakeConsumer(batches, stop)
        original = consumer.commit

        async def commit(offsets: dict[TopicPartition, Any]) -> None:
            seen_at_commit.append(len(path.read_bytes().splitlines()))
            await original(offsets)

        consumer.commit = commit  # type: ignore[method-assign]
        deliverer = Deliverer(config, make_sinks(config, None, metrics), Letters(), metrics)  # type: ignore[arg-type]
        handled = await deliver_loop(consumer, deliverer, stop, max_in_flight=2)  # type: ignore[arg-type]
        assert consumer.commits == [
            {TopicPartition("churn.alerts", 0): 3},
            {TopicPartition("churn.alerts", 0): 4},
        ]
        return handled

    assert asyncio.run(go()) == 4
    assert seen_at_commit == [3, 4]


def test_loop_commits_nothing_when_a_dead_letter_cannot_be_sent(tmp_path: Path) -> None:
    with http_receiver(400) as rx:
        config = DeliveryConfig(
            sinks={"crm": webhook(rx.url)},
            routes=(Route(("crm",)),),
        )
        metrics = DeliveryMetrics()

        async def go(session: aiohttp.ClientSession) -> FakeConsumer:
            stop = asyncio.Event()
            consumer = FakeConsumer([[rec(0, ALERT), rec(1, ALERT)]], stop)
            deliverer = Deliverer(
                config, make_sinks(config, session, metrics), Letters(fail=True), metrics
            )
            with pytest.raises(ConnectionError, match="broker down"):
                await deliver_loop(consumer, deliverer, stop, max_in_flight=4)  # type: ignore[arg-type]
            return consumer

        consumer = asyncio.run(with_session(go))
    assert consumer.commits == []


class Broken:
    name = "broken"

    async def deliver(self, alert: Any, raw: bytes) -> None:
        raise KeyError("a bug")


def test_a_sink_that_raises_unexpectedly_dead_letters_the_alert() -> None:
    config = DeliveryConfig(
        sinks={"broken": SinkConfig("broken", "webhook", url="http://x")},
        routes=(Route(("broken",)),),
    )
    letters, metrics = Letters(), DeliveryMetrics()
    deliverer = Deliverer(config, {"broken": Broken()}, letters, metrics)
    asyncio.run(deliverer.handle(rec(7, ALERT)))
    assert letters.sent == [(7, "delivery_failed", "sink broken: KeyError (not retried)")]
