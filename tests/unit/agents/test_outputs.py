"""OutputWriter: a failed send is sent again until the broker acknowledges it, except what no
retry can fix: a record too large for its topic is dead-lettered (or cut), a missing topic or a
denied write is refused at once, each counted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from churnstream.agents import outputs
from churnstream.agents.outputs import OutputRefused, OutputWriter, Record
from churnstream.stream.contract.dlq import decode_dlq, dlq_record


class FlakyBroker(OutputWriter):
    """Fails the first `failures` sends as a broker away for too long would."""

    def __init__(self, failures: int, retries: list[int]) -> None:
        super().__init__("127.0.0.1:9", {}, on_retry=lambda: retries.append(1), sleep=self.wait)
        self.failures = failures
        self.attempts: list[list[Record]] = []
        self.waits: list[float] = []

    async def wait(self, delay: float) -> None:
        self.waits.append(delay)  # the back-off, without waiting for it

    async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
        self.attempts.append(list(records))
        if len(self.attempts) <= self.failures:
            raise KafkaTimeoutError("batch expired")
        return {("t", 0): len(records) - 1}


def test_a_failed_send_is_retried_until_acknowledged() -> None:
    retries: list[int] = []
    writer = FlakyBroker(failures=2, retries=retries)
    records: list[Record] = [("t", b"u1", b"v1", None), ("t", b"u2", b"v2", None)]
    assert asyncio.run(writer.send(records)) == {("t", 0): 1}
    assert writer.attempts == [records] * 3  # the whole batch each time
    assert len(retries) == 2
    assert writer.waits == [outputs.RETRY_FIRST_S, 2 * outputs.RETRY_FIRST_S]


def test_other_errors_are_not_retried() -> None:
    class Broken(OutputWriter):
        async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
            raise ValueError("a record exceeds the batch size")

    with pytest.raises(ValueError, match="exceeds"):
        asyncio.run(Broken("127.0.0.1:9", {}).send([("t", None, b"v", None)]))


# --- what no retry can fix -------------------------------------------------------------------


class Refusing(OutputWriter):
    """Raises `error` on every send; topics have a `max.message.bytes` of `limit`."""

    def __init__(self, error: Exception | None = None, limit: int = 4096) -> None:
        self.refusals: list[str] = []
        super().__init__(
            "127.0.0.1:9",
            {},
            sleep=self.wait,
            dlq_topic="churn.dlq",
            on_refused=self.refusals.append,
        )
        self.error = error
        self.limit_bytes = limit
        self.attempts = 0
        self.waits: list[float] = []

    async def wait(self, delay: float) -> None:
        self.waits.append(delay)

    async def _max_message_bytes(self, topic: str) -> int:
        return self.limit_bytes

    async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
        self.attempts += 1
        if self.error is not None:
            raise self.error
        return {}


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnknownTopicOrPartitionError(), "unknown_topic"),
        (TopicAuthorizationFailedError("churn.scores"), "not_authorized"),
        (ClusterAuthorizationFailedError(), "not_authorized"),
    ],
)
def test_a_missing_topic_or_denied_write_is_refused_at_once(error: Exception, reason: str) -> None:
    writer = Refusing(error)
    with pytest.raises(OutputRefused, match=reason) as raised:
        asyncio.run(writer.send([("churn.scores", b"u", b"v", None)]))
    assert "churn.scores" in str(raised.value)
    assert writer.attempts == 1  # not retried forever in silence
    assert writer.refusals == [reason]


def test_a_record_too_large_for_its_topic_goes_to_the_dlq_instead() -> None:
    writer = Refusing(limit=4096)
    big = b'{"user_id": "u", "drivers": "' + b"x" * 20_000 + b'"}'
    fitted = asyncio.run(writer._fit(("churn.scores", b"u", big, None)))
    topic, key, value, headers = fitted
    assert (topic, key, headers) == ("churn.dlq", b"u", None)
    assert value is not None and len(value) + len(key) <= 4096
    doc = decode_dlq(value)
    assert (doc["error"], doc["source_topic"]) == ("output_too_large", "churn.scores")
    assert doc["payload_truncated"] and doc["payload_size"] == len(big)
    assert doc["payload"] == big[: len(doc["payload"])]
    assert writer.refusals == ["message_too_large"]
    small = ("churn.scores", b"u", b"{}", None)
    assert asyncio.run(writer._fit(small)) == small  # what fits is left alone


def test_a_dead_letter_record_too_large_for_the_dlq_is_cut_to_fit() -> None:
    writer = Refusing(limit=4096)
    payload = b"p" * 30_000
    dead = dlq_record(
        source_topic="behaviour.logins",
        partition=1,
        offset=9,
        error="not_json",
        detail="record value is not valid UTF-8 JSON",
        payload=payload,
        max_bytes=65536,
        received_at=1_772_366_400.0,
    )
    topic, _, value, _ = asyncio.run(writer._fit(("churn.dlq", b"k", dead, None)))
    assert topic == "churn.dlq" and value is not None and len(value) + 1 <= 4096
    doc = decode_dlq(value)
    assert (doc["error"], doc["partition"], doc["offset"]) == ("not_json", 1, 9)
    assert doc["payload_truncated"] and doc["payload_size"] == len(payload)
    assert doc["payload"] == payload[: len(doc["payload"])]


def test_message_too_large_lowers_the_limit_and_tries_again() -> None:
    class OnceTooLarge(Refusing):
        async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
            self.attempts += 1
            if self.attempts == 1:
                raise MessageSizeTooLargeError()
            return {("churn.scores", 0): 0}

    writer = OnceTooLarge(limit=8192)
    writer._limits["churn.scores"] = 8192  # what was read before the topic's limit changed
    assert asyncio.run(writer.send([("churn.scores", b"u", b"v", None)])) == {
        ("churn.scores", 0): 0
    }
    assert writer._limits["churn.scores"] == 4096  # read again, still too large: halved
    assert writer.refusals == ["message_too_large"]


def test_batches_stay_below_each_topics_limit() -> None:
    """Through the real batching: a topic with a 4 KiB `max.message.bytes` gets batches that
    fit it, another keeps the default; a record too large anywhere goes to the DLQ."""

    class Producer:
        def __init__(self) -> None:
            self.batches: list[tuple[str, int, int]] = []  # topic, records, bytes

        async def partitions_for(self, topic: str) -> set[int]:
            return {0}

        async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
            self.batches.append((topic, batch.record_count(), batch.size()))
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(SimpleNamespace(offset=100))
            return done

    class Writer(Refusing):
        async def start(self) -> Any:
            return producer

        async def _max_message_bytes(self, topic: str) -> int:
            return 4096 if topic == "small" else 1 << 20

        async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
            return await OutputWriter._send_once(self, records)

    producer = Producer()
    records: list[Record] = [
        (t, b"u%d" % i, b"v" * 200, None) for t in ("small", "big") for i in range(50)
    ]
    records.append(("big", b"u", b"w" * (2 << 20), None))
    writer = Writer()
    asyncio.run(writer.send(records))
    small = [b for b in producer.batches if b[0] == "small"]
    assert len(small) > 1 and all(size <= 4096 for _, _, size in small)
    assert sum(n for _, n, _ in small) == 50
    assert [n for t, n, _ in producer.batches if t == "big"] == [50]
    assert [n for t, n, _ in producer.batches if t == "churn.dlq"] == [1]
    assert writer.refusals == ["message_too_large"]
