"""Checkpoint: send -> broker acks -> store written -> records done -> offsets committed."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest
from aiokafka.errors import KafkaTimeoutError
from fake_records import (
    CHANGELOG,
    Ev,
    FakeClock,
    Journal,
    Msg,
    RecordingCommits,
    RecordingSender,
    RecordingStore,
)
from faust.types import TP

from churnstream.agents.acks import AckLedger
from churnstream.agents.checkpoint import Checkpoint, Fenced, Sender
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.outputs import OutputWriter, Record

P0, P1 = TP("logins", 0), TP("logins", 1)


def ev(partition: int, offset: int) -> Ev:
    return Ev(Msg("logins", partition, offset))


class Parts:
    """One worker's long-lived parts around its checkpoints, all fakes but the ledger."""

    def __init__(
        self, sender: Callable[[Journal], Sender] = RecordingSender, commit_failures: int = 0
    ) -> None:
        self.journal: Journal = []
        self.store = RecordingStore(self.journal)
        self.sender = sender(self.journal)
        self.commits = RecordingCommits(self.journal, {P0, P1}, failures=commit_failures)
        self.ledger = AckLedger()
        self.clock = FakeClock()
        self.committer = OffsetCommitter(self.commits.commit_offsets, 1.0, self.clock)
        self.flushes: list[float] = []
        self.held = True  # the lease of the generation the records were taken under

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(
            self.sender,
            self.store,
            self.ledger,
            self.committer,
            self.flushes.append,
            self.clock,
            lease=lambda: self.held,
        )

    def admit(self, *events: Ev) -> None:
        for event in events:
            self.ledger.open(event)


def test_commit_sends_then_writes_the_store_then_commits_the_done_records() -> None:
    parts = Parts()
    parts.admit(ev(0, 4), ev(1, 9))
    parts.store.changed[b"u1"] = b"state"
    cp = parts.checkpoint()
    cp.produce("churn.risk-scores", b"u1", b"score")
    cp.done(ev(0, 4))
    cp.done(ev(1, 9))
    asyncio.run(cp.commit())
    assert [step for step, _ in parts.journal] == ["flush", "send", "written", "commit"]
    # The changelog record goes in the same send as the outputs, before them.
    assert parts.journal[1] == ("send", [(CHANGELOG, b"u1"), ("churn.risk-scores", b"u1")])
    assert parts.journal[2] == ("written", {(CHANGELOG, 0): 0, ("churn.risk-scores", 0): 0})
    assert parts.commits.committed == {P0: 5, P1: 10}
    assert parts.store.data == {b"u1": b"state"}
    assert len(parts.ledger) == 0
    assert len(parts.flushes) == 1


def test_a_record_still_open_holds_back_the_later_ones_of_its_partition() -> None:
    parts = Parts()
    parts.admit(ev(0, 1), ev(0, 2), ev(1, 5))
    cp = parts.checkpoint()
    cp.done(ev(0, 2))  # offset 1 is still held (event-time order): 2 may not be committed
    cp.done(ev(1, 5))
    asyncio.run(cp.commit())
    assert parts.commits.committed == {P1: 6}
    parts.clock.now += 1.0
    later = parts.checkpoint()
    later.done(ev(0, 1))
    asyncio.run(later.commit())
    assert parts.commits.committed == {P0: 3, P1: 6}


class FlakyBroker(OutputWriter):
    """The real writer and its retry loop; the broker fails the first `failures` sends."""

    def __init__(self, journal: Journal, failures: int, delays: list[float]) -> None:
        async def no_wait(delay: float) -> None:
            delays.append(delay)

        super().__init__("127.0.0.1:9", {}, sleep=no_wait)
        self.journal = journal
        self.failures = failures

    async def _send_once(self, records: list[Record]) -> dict[tuple[str, int], int]:
        if self.failures:
            self.failures -= 1
            self.journal.append(("send failed", len(records)))
            raise KafkaTimeoutError("batch expired")
        self.journal.append(("send", len(records)))
        return {(CHANGELOG, 3): 41}


def test_a_failed_send_is_sent_again_and_the_store_written_only_after_the_ack() -> None:
    delays: list[float] = []
    parts = Parts(lambda journal: FlakyBroker(journal, failures=2, delays=delays))
    parts.admit(ev(0, 0))
    parts.store.changed[b"u1"] = b"state"
    cp = parts.checkpoint()
    cp.produce("churn.alerts", b"u1", b"alert")
    cp.done(ev(0, 0))
    asyncio.run(cp.commit())
    assert [step for step, _ in parts.journal] == [
        "flush",
        "send failed",
        "send failed",
        "send",  # the whole batch each time: changelog and output
        "written",
        "commit",
    ]
    assert all(n == 2 for step, n in parts.journal if step.startswith("send"))
    assert delays == [0.5, 1.0]  # back-off
    assert parts.commits.committed == {P0: 1}


def test_a_send_that_fails_for_good_writes_nothing_and_marks_nothing_done() -> None:
    class Broken:
        async def send(
            self, records: list[Record], before_attempt: Callable[[], None] | None = None
        ) -> dict[tuple[str, int], int]:
            raise ValueError("a record exceeds the batch size")

    parts = Parts(lambda _: Broken())
    parts.admit(ev(0, 0))
    parts.store.changed[b"u1"] = b"state"
    cp = parts.checkpoint()
    cp.done(ev(0, 0))
    with pytest.raises(ValueError, match="exceeds"):
        asyncio.run(cp.commit())
    assert parts.store.data == {}
    assert parts.commits.committed == {}
    assert len(parts.ledger) == 1  # still open: nothing commits past it


def test_a_failed_commit_is_logged_and_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    parts = Parts(commit_failures=1)
    parts.admit(ev(0, 0), ev(0, 1))
    cp = parts.checkpoint()
    cp.done(ev(0, 0))
    with caplog.at_level(logging.WARNING, logger="churnstream.agents.commits"):
        asyncio.run(cp.commit())
    assert "records will be processed again" in caplog.text
    assert parts.commits.committed == {}  # a restart now would process offset 0 again
    parts.clock.now += 1.0
    later = parts.checkpoint()
    later.done(ev(0, 1))
    asyncio.run(later.commit())
    assert parts.commits.committed == {P0: 2}


def test_a_worker_that_lost_its_partitions_while_retrying_sends_nothing_more() -> None:
    """The changelog value of a revoked worker must not land after the new owner's."""
    delays: list[float] = []
    parts = Parts(lambda journal: FlakyBroker(journal, failures=3, delays=delays))
    parts.admit(ev(0, 0))
    parts.store.changed[b"u1"] = b"old state"
    cp = parts.checkpoint()
    cp.done(ev(0, 0))

    async def rebalance_during_back_off(delay: float) -> None:
        delays.append(delay)
        parts.held = False  # the group moved on while this worker waited to retry

    parts.sender._sleep = rebalance_during_back_off  # type: ignore[attr-defined]
    with pytest.raises(Fenced):
        asyncio.run(cp.commit())
    assert [step for step, _ in parts.journal] == ["flush", "send failed"]
    assert parts.store.data == {}
    assert parts.commits.committed == {}


def test_records_acknowledged_after_the_lease_ended_are_not_stored_nor_committed() -> None:
    parts = Parts()
    parts.admit(ev(0, 0))
    parts.store.changed[b"u1"] = b"state"

    def revoke() -> None:
        parts.held = False

    parts.sender.while_sending = revoke  # type: ignore[attr-defined]
    cp = parts.checkpoint()
    cp.done(ev(0, 0))
    with pytest.raises(Fenced):
        asyncio.run(cp.commit())
    assert [step for step, _ in parts.journal] == ["flush", "send"]
    assert parts.store.data == {}
    assert parts.commits.committed == {}


def test_a_checkpoint_whose_lease_ended_before_it_commits_sends_nothing() -> None:
    parts = Parts()
    parts.admit(ev(0, 0))
    parts.store.changed[b"u1"] = b"state"
    cp = parts.checkpoint()
    cp.produce("churn.risk-scores", b"u1", b"score")
    cp.done(ev(0, 0))
    parts.held = False
    with pytest.raises(Fenced):
        asyncio.run(cp.commit())
    assert parts.journal == []
