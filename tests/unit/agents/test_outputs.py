"""OutputWriter: a failed send is sent again until the broker acknowledges it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError

from churnstream.agents import outputs
from churnstream.agents.outputs import OutputWriter, Record


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
