"""BatchLoop with fakes around the real ledger, aligner, committer and checkpoint (no Kafka).

Partition p of topic `logins` stands for a worker's input; a record's value is its event time,
or b"bad" for one that validation dead-letters. The fake guard admits records in offset order
from the group's committed offsets, as the real one does after asking the broker.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

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
from churnstream.agents.batch_loop import BatchLoop, Clock
from churnstream.agents.checkpoint import Checkpoint, Outbox
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.ordering import EventTimeAligner
from churnstream.stream.contract.topics import INPUT_TOPICS
from churnstream.stream.settings import Settings

P0, P1 = TP("logins", 0), TP("logins", 1)


class FakeGuard:
    """The input guard over the fake group: offset order from the committed offsets."""

    def __init__(self, group: RecordingCommits) -> None:
        self.group = group
        self.generation = 1  # the consumer's current generation
        self.synced: tuple[int, frozenset[TP]] | None = None
        self.assigned: frozenset[TP] = frozenset()
        self.expected: dict[TP, int] = {}
        self.lagging_sources: list[tuple[str, int]] = []
        self.paused: frozenset[tuple[str, int]] = frozenset()
        self.recovering = False  # the consumer rebalances or Faust recovers the tables
        self.rewinds = 0  # syncs that sent the consumer back to the committed offsets
        self.log_start: dict[TP, int] = {}  # retention removed everything below it

    def rebalance(self, assignment: set[TP]) -> None:
        """The group moves to a new generation (a worker joined, left or restarted)."""
        self.group.assignment = assignment
        self.generation += 1

    def ready(self) -> bool:
        return not self.recovering

    def changed(self) -> bool:
        return self.synced != (self.generation, frozenset(self.group.assignment))

    def lease(self) -> Callable[[], bool]:
        synced = self.synced
        return lambda: not self.recovering and not self.changed() and self.synced == synced

    def revoked(self) -> frozenset[TP]:
        return self.assigned - self.group.assignment

    async def sync(self, rewind: bool = False) -> dict[TP, int]:
        self.rewinds += rewind
        self.assigned = frozenset(self.group.assignment)
        self.synced = (self.generation, self.assigned)
        self.expected = {tp: self.group.committed.get(tp, 0) for tp in self.assigned}
        expired = {
            tp: start
            for tp, start in self.log_start.items()
            if tp in self.assigned and self.expected[tp] < start
        }
        self.expected.update(expired)
        return expired

    async def watch(self) -> None:
        pass

    def take(self, message: Msg) -> bool | None:
        tp = TP(message.topic, message.partition)
        want = self.expected.get(tp)
        if want is None or message.offset < want:
            return False
        if message.offset > want:
            return None
        self.expected[tp] = want + 1
        return True

    async def settle(self, message: Msg) -> bool:
        raise AssertionError("these tests deliver no offset gaps")

    def lagging(self) -> list[tuple[str, int]]:
        return self.lagging_sources

    def hold_back(self, sources: frozenset[tuple[str, int]]) -> None:
        self.paused = sources


@dataclass(frozen=True)
class Happened:
    """Stands in for a contract event: the aligner only reads its time."""

    ts: float


class FakeProcessor:
    """Applying a record changes the state of user u<partition> and scores that user."""

    def __init__(self, store: RecordingStore) -> None:
        self.store = store
        self.applied: list[tuple[int, int]] = []
        self.resets: list[frozenset[TP]] = []
        self._scored: list[bytes] = []
        self.held: list[bytes] = []  # users whose decisions wait (for a source or a model)
        self.failures = 0  # finish() calls that raise first
        self.hold_at: float | None = None  # applying this event time holds a boundary
        self.model_held = False  # a boundary waits for its model: no event may be applied
        self.until = math.inf  # events at or after this event time wait (rows not made yet)
        self.past: list[dict[TP, int]] = []  # what was held when intake stopped at `until`

    def validate(self, message: Msg, out: Outbox) -> Happened | None:
        if message.value == b"bad":
            out.produce("churn.dlq", None, b"bad")
            return None
        return Happened(float(message.value))

    def apply(self, event: Happened, message: Msg, out: Outbox) -> float | None:
        self.applied.append((message.partition, message.offset))
        user = f"u{message.partition}".encode()
        self.store.changed[user] = message.value
        self._scored.append(user)
        self.model_held |= event.ts == self.hold_at
        return None

    def holding(self) -> bool:
        return self.model_held

    def rows_ready(self) -> bool:
        return False  # no day boundary's rows (tests/unit/agents/test_row_pacing.py)

    def intake_until(self) -> float:
        return self.until

    def held_past(self, held: Mapping[TP, int]) -> None:
        self.past.append(dict(held))

    def status(self, now: float) -> dict[str, Any]:
        return {"waiting_for": [], "model_held": None}

    def finish(self, out: Outbox) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("a bug outside the per-record handling")
        for user in self._scored:
            out.produce("churn.risk-scores", user, b"score")
        self._scored.clear()

    def waiting(self, now: float) -> bool:
        # The wait ends: the held decisions are made and go out at the next finish.
        self._scored += self.held
        waited = bool(self.held)
        self.held = []
        return waited

    def reset(self, revoked: frozenset[TP]) -> None:
        self.resets.append(revoked)
        self.store.changed.clear()  # as the repository forgets unacknowledged records


class World:
    """One worker: the loop and its parts, everything but Kafka."""

    def __init__(self, *, grace_s: float = 0.0, commit_failures: int = 0) -> None:
        self.journal: Journal = []
        self.clock = FakeClock()
        self.group = RecordingCommits(self.journal, {P0, P1}, failures=commit_failures)
        self.guard = FakeGuard(self.group)
        self.store = RecordingStore(self.journal)
        self.sender = RecordingSender(self.journal)
        self.processor = FakeProcessor(self.store)
        self.metrics = WorkerMetrics()
        self.aligner: EventTimeAligner[Any] = EventTimeAligner(grace_s=grace_s)
        ledger = AckLedger()
        committer = OffsetCommitter(self.group.commit_offsets, 1.0, self.clock)
        self.loop = BatchLoop(
            guard=self.guard,
            processor=self.processor,  # type: ignore[arg-type]
            aligner=self.aligner,
            ledger=ledger,
            committer=committer,
            checkpoints=partial(
                Checkpoint,
                self.sender,
                self.store,
                ledger,
                committer,
                self.metrics.observe_flush,
                self.clock,
            ),
            rank={"logins": 0},
            metrics=self.metrics,
            lock=asyncio.Lock(),
            clock=Clock(self.clock, self.clock, self.clock),
        )

    async def batch(self, *records: tuple[int, int, bytes]) -> None:
        await self.loop.run([Ev(Msg("logins", p, offset, value)) for p, offset, value in records])

    def metric(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(f"churnstream_{name}")

    def dropped(self, reason: str) -> float | None:
        return self.metrics.registry.get_sample_value(
            "churnstream_batches_dropped_total", {"reason": reason}
        )

    def steps(self) -> list[str]:
        return [step for step, _ in self.journal]


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def test_a_batch_is_applied_sent_acknowledged_stored_and_committed() -> None:
    async def scenario() -> None:
        w = World()
        await w.batch((0, 0, b"10"), (0, 1, b"bad"), (1, 0, b"20"))
        assert w.processor.applied == [(0, 0), (1, 0)]
        assert w.steps() == ["flush", "send", "written", "commit"]
        assert w.journal[1][1] == [
            (CHANGELOG, b"u0"),
            (CHANGELOG, b"u1"),
            ("churn.dlq", None),
            ("churn.risk-scores", b"u0"),
            ("churn.risk-scores", b"u1"),
        ]
        assert w.group.committed == {P0: 2, P1: 1}
        assert w.store.data == {b"u0": b"10", b"u1": b"20"}
        assert w.metric("rebalances_total") == 1  # the first assignment
        assert w.metric("batch_records_count") == 1

    run(scenario())


def test_a_held_event_holds_back_the_commit_until_the_timer_releases_it() -> None:
    async def scenario() -> None:
        w = World()
        w.guard.lagging_sources = [("logins", 1)]  # p1 has unread records: p0 must wait
        await w.batch((0, 0, b"10"), (0, 1, b"bad"))
        assert w.processor.applied == []
        assert w.journal[1] == ("send", [("churn.dlq", None)])  # outputs go out at once...
        assert w.group.committed == {}  # ...but offset 1 is not committed past held offset 0
        assert w.metric("events_held") == 1
        w.guard.lagging_sources = []
        await w.loop.tick()
        assert w.processor.applied == [(0, 0)]
        assert w.group.committed == {P0: 2}
        assert w.metric("events_held") == 0

    run(scenario())


def test_no_event_is_applied_while_a_boundary_waits_for_its_model() -> None:
    async def scenario() -> None:
        w = World()
        w.processor.hold_at = 20.0  # this event moves the watermark past a held boundary
        await w.batch((0, 0, b"10"), (1, 0, b"20"), (0, 1, b"30"), (1, 1, b"40"))
        # The rest stay held, in order, and uncommitted: replay makes the rows first.
        assert w.processor.applied == [(0, 0), (1, 0)]
        assert w.group.committed == {P0: 1, P1: 1}
        assert w.metric("events_held") == 2
        await w.loop.tick()  # still no model: nothing moves
        assert w.processor.applied == [(0, 0), (1, 0)]
        w.processor.model_held = False  # the snapshot arrived
        w.clock.now += 1.0  # the next commit is due
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (1, 0), (0, 1), (1, 1)]
        assert w.group.committed == {P0: 2, P1: 2}
        assert w.metric("events_held") == 0

    run(scenario())


def test_events_past_the_rows_not_made_yet_wait_and_are_named_to_the_processor() -> None:
    async def scenario() -> None:
        w = World()
        w.processor.until = 25.0  # rows not made yet read states up to here
        await w.batch((0, 0, b"10"), (1, 0, b"20"), (0, 1, b"30"), (1, 1, b"40"))
        assert w.processor.applied == [(0, 0), (1, 0)]
        assert w.group.committed == {P0: 1, P1: 1}
        # The processor learns which sources delivered past it (decisions need not wait for
        # them); the status shows it.
        assert w.processor.past == [{P0: 1, P1: 1}]
        status = w.loop.status(0.0)
        assert status["events_held"] == {"logins": 2}
        assert status["intake_held"] == "1970-01-01T00:00:25.000Z"
        # Held far longer than max_hold_s: the caller's wait, not a stalled source.
        w.clock.now += 10 * w.aligner.max_hold_s
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (1, 0)]
        assert w.aligner.forced == 0
        w.processor.until = 35.0  # the rows were made
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (1, 0), (0, 1)]
        w.processor.until = math.inf
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (1, 0), (0, 1), (1, 1)]
        assert w.loop.status(0.0)["intake_held"] is None

    run(scenario())


def test_under_back_pressure_nothing_is_read_on_while_a_boundary_waits_for_its_model() -> None:
    async def scenario() -> None:
        w = World()
        w.aligner.max_buffered = 4
        w.processor.hold_at = 10.0
        # p1 lags (unread records): it holds the frontier and would be read on.
        w.guard.lagging_sources = [("logins", 1)]
        await w.batch((0, 0, b"10"), (1, 0, b"20"), (0, 1, b"30"), (0, 2, b"40"))
        # 10 goes and holds a boundary; 3 held is over half the bound: every partition is
        # paused, p1 too, though it holds the frontier (it would be read on otherwise).
        assert w.processor.applied == [(0, 0)]
        assert w.guard.paused == {("logins", 0), ("logins", 1)}
        w.guard.lagging_sources = []
        w.processor.model_held = False
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (1, 0), (0, 1), (0, 2)]
        assert w.guard.paused == frozenset()

    run(scenario())


def test_records_fetched_past_the_bound_wait_their_turn_and_only_the_frontier_is_read() -> None:
    async def scenario() -> None:
        w = World()
        w.aligner.max_buffered = 4
        w.guard.lagging_sources = [("logins", 0), ("logins", 1)]
        # p0 far ahead hands out 6 records at once (fetched before any pause took effect): 7
        # held, over the bound, while p1 lags behind them.
        await w.batch((1, 0, b"5"), *((0, i, str(10 + i).encode()) for i in range(6)))
        assert w.processor.applied == [(1, 0)]
        assert w.aligner.forced == 0 and w.metric("events_released_early_total") == 0
        assert w.guard.paused == {("logins", 0)}  # p1 holds the frontier: read on
        # Long past max_hold_s, but p1 kept delivering: the frontier moved, nothing is early.
        w.clock.now += 2 * w.aligner.max_hold_s
        await w.batch((1, 1, b"12"))
        assert w.processor.applied == [(1, 0), (0, 0), (0, 1), (0, 2), (1, 1)]
        assert w.guard.paused == {("logins", 0)}  # 3 held: not yet under a quarter
        w.guard.lagging_sources = []  # p1 is caught up
        await w.loop.tick()
        assert w.processor.applied[5:] == [(0, 3), (0, 4), (0, 5)]
        assert w.guard.paused == frozenset()  # drained: p0 is fetched again
        assert w.metric("events_released_early_total") == 0

    run(scenario())


def test_what_the_worker_fetches_keeps_a_catch_up_under_the_aligners_bound(tmp_path: Path) -> None:
    """Catching up, about one fetch per assigned input partition is held on top of the
    aligner's high mark, with a batch and the agent's queue (tests/unit/test_ordering.py, a
    catch-up through a consumer). With the worker's settings that fits under the aligner's
    bound: 4 partitions per input topic, records of 130 bytes (the simulator's smallest mean;
    Kafka's own overhead per record only makes a fetch hold fewer). Faust's default fetch of
    1 MiB held up to 168,383 events in the 800 x 75 catch-up."""
    from churnstream.agents.app import create_app

    settings = Settings(data_dir=tmp_path, partitions=4)
    conf = create_app(settings, bootstrap="127.0.0.1:9").conf
    bound = EventTimeAligner().max_buffered
    per_fetch = conf.consumer_max_fetch_size // 130
    in_flight = settings.flush_max_events + conf.stream_buffer_maxsize
    held = bound // 2 + in_flight + len(INPUT_TOPICS) * settings.partitions * per_fetch
    assert held <= bound


def test_a_lagging_partition_that_never_delivers_releases_the_rest_after_max_hold_s() -> None:
    async def scenario() -> None:
        w = World()
        w.aligner.max_buffered = 4
        w.guard.lagging_sources = [("logins", 1)]  # unread records that never come
        await w.batch((1, 0, b"5"), *((0, i, str(10 + i).encode()) for i in range(6)))
        assert w.processor.applied == [(1, 0)]
        assert w.guard.paused == {("logins", 0)}
        w.clock.now += w.aligner.max_hold_s - 1.0
        await w.loop.tick()
        assert w.processor.applied == [(1, 0)]  # still within max_hold_s
        w.clock.now += 2.0
        await w.loop.tick()
        assert w.processor.applied[1:] == [(0, i) for i in range(6)]
        assert w.metric("events_released_early_total") == 6
        assert w.guard.paused == frozenset()

    run(scenario())


def test_a_rebalance_in_the_middle_of_a_batch() -> None:
    async def scenario() -> None:
        w = World(grace_s=5.0)
        await w.batch((0, 0, b"5"))  # committed at once; the next commit is due in a second
        # While the next batch waits for the broker, the group rebalances: p1 goes elsewhere.
        w.sender.while_sending = lambda: w.guard.rebalance({P0})
        # p1's offset 1 (event time 30) is held for event-time order: p0 is only at 10.
        await w.batch((0, 1, b"10"), (1, 0, b"bad"), (1, 1, b"30"))
        assert w.processor.applied == [(0, 0), (0, 1)]
        # Acknowledged after the group moved on: fenced, nothing stored, nothing done.
        assert w.steps()[-2:] == ["flush", "send"]
        assert w.store.data == {b"u0": b"5"}
        assert w.dropped("fenced") == 1
        assert w.group.committed == {P0: 1}
        w.sender.while_sending = None
        w.clock.now += 10.0  # the hold is over, but p1 belongs to another worker now
        # The new generation starts again at p0's committed offset.
        await w.batch((0, 1, b"10"), (0, 2, b"40"))
        assert w.processor.resets == [frozenset(), frozenset({P1})]
        # p0:1 is applied again (its pending commit was forgotten), p1's held record never.
        assert w.processor.applied == [(0, 0), (0, 1), (0, 1), (0, 2)]
        await w.loop.tick()
        assert w.processor.applied == [(0, 0), (0, 1), (0, 1), (0, 2)]
        assert w.group.committed == {P0: 3}
        assert b"u1" not in w.store.data
        # Nothing of the revoked partition was even asked to be committed.
        assert all(P1 not in offsets for step, offsets in w.journal if step == "commit")
        assert w.metric("rebalances_total") == 2
        assert w.metric("events_held") == 0
        assert len(w.loop.ledger) == 0  # p1's held record is no longer waited for

    run(scenario())


def test_a_committed_offset_below_the_log_start_is_moved_up_without_a_record() -> None:
    # An idle partition whose unprocessed records retention removed: left there, every sync
    # would count them again and the lag would show them behind for good.
    async def scenario() -> None:
        w = World()
        w.group.committed = {P0: 3, P1: 2}
        w.guard.log_start = {P0: 10}
        await w.loop.tick()
        assert w.group.committed == {P0: 10, P1: 2}
        w.guard.rebalance({P0, P1})
        w.clock.now += 1.0
        await w.loop.tick()  # nothing left below the log start: nothing to commit
        assert [step for step in w.steps() if step == "commit"] == ["commit"]
        await w.batch((0, 10, b"5"))
        assert w.group.committed == {P0: 11, P1: 2}

    run(scenario())


def test_a_failed_commit_is_not_fatal_and_its_records_are_processed_again() -> None:
    async def scenario() -> None:
        w = World(commit_failures=1)
        await w.batch((0, 0, b"10"), (0, 1, b"11"))
        assert w.steps() == ["flush", "send", "written", "commit failed"]
        assert w.group.committed == {}
        w.guard.rebalance({P0, P1})  # e.g. the worker restarts: from the committed offsets
        w.clock.now += 1.0
        await w.batch((0, 0, b"10"), (0, 1, b"11"))
        assert w.processor.applied == [(0, 0), (0, 1), (0, 0), (0, 1)]
        assert w.group.committed == {P0: 2}

    run(scenario())


def test_the_timer_waits_while_a_batch_or_an_erasure_holds_the_state_lock() -> None:
    async def scenario() -> None:
        w = World()
        async with w.loop.lock:
            await w.loop.tick()
        assert w.guard.synced is None  # it did not even look at the assignment
        await w.loop.tick()
        assert w.guard.synced is not None

    run(scenario())


def test_decisions_that_waited_go_out_at_a_tick_without_a_new_record() -> None:
    async def scenario() -> None:
        w = World()
        await w.batch((0, 0, b"10"))
        w.journal.clear()
        w.processor.held = [b"u9"]
        await w.loop.tick()
        assert w.steps()[:2] == ["flush", "send"]
        assert ("churn.risk-scores", b"u9") in w.journal[1][1]

    run(scenario())


def test_an_error_outside_the_per_record_handling_restarts_from_the_last_commit() -> None:
    """Records taken by a failed batch must not stay open in the ack ledger (commits would
    stop for good): the next turn forgets them and the consumer delivers them again."""

    async def scenario() -> None:
        w = World()
        await w.batch((0, 0, b"10"))
        w.processor.failures = 1
        await w.batch((0, 1, b"11"), (0, 2, b"12"))  # raises in finish(): not out of the loop
        assert w.dropped("failed") == 1
        assert w.group.committed == {P0: 1}
        w.clock.now += 1.0
        # Sent back to the committed offset, the consumer delivers offset 1 on again.
        await w.batch((0, 1, b"11"), (0, 2, b"12"), (0, 3, b"13"))
        assert w.guard.rewinds == 1
        assert w.processor.applied[-3:] == [(0, 1), (0, 2), (0, 3)]
        assert w.group.committed == {P0: 4}
        assert len(w.loop.ledger) == 0
        assert w.metric("rebalances_total") == 1  # a restart is not a rebalance

    run(scenario())


def test_a_failed_timer_turn_also_restarts_from_the_last_commit() -> None:
    async def scenario() -> None:
        w = World()
        w.guard.lagging_sources = [("logins", 1)]
        await w.batch((0, 0, b"10"))  # held for p1
        w.guard.lagging_sources = []
        w.processor.failures = 1
        await w.loop.tick()
        assert w.dropped("failed") == 1
        w.clock.now += 1.0
        await w.batch((0, 0, b"10"), (0, 1, b"11"))
        assert w.group.committed == {P0: 2}
        assert len(w.loop.ledger) == 0

    run(scenario())


def test_nothing_runs_while_the_consumer_rebalances_or_recovers_the_tables() -> None:
    """The due-label index (processor.reset) is rebuilt only from a recovered table, and a
    batch fetched before the rebalance is left to be delivered again."""

    async def scenario() -> None:
        w = World()
        await w.batch((0, 0, b"10"))
        assert w.processor.resets == [frozenset()]
        w.guard.recovering = True
        w.guard.rebalance({P0})
        await w.loop.tick()
        await w.batch((0, 1, b"11"))  # fetched under the old generation
        assert w.processor.resets == [frozenset()]
        assert w.processor.applied == [(0, 0)]
        assert w.metric("input_repeats_total") == 1
        w.guard.recovering = False
        await w.loop.tick()
        assert w.processor.resets == [frozenset(), frozenset({P1})]
        await w.batch((0, 1, b"11"))
        assert w.processor.applied == [(0, 0), (0, 1)]

    run(scenario())


def test_a_batch_fenced_by_a_rebalance_that_began_while_it_was_sent_writes_nothing() -> None:
    async def scenario() -> None:
        w = World()

        def revoke() -> None:
            w.guard.recovering = True  # partitions revoked, the new assignment not there yet

        w.sender.while_sending = revoke
        await w.batch((0, 0, b"10"))
        assert w.steps() == ["flush", "send"]
        assert w.store.data == {}
        assert w.group.committed == {}
        assert w.dropped("fenced") == 1

    run(scenario())


def test_failures_in_a_row_back_off_and_leave_their_batches_to_be_delivered_again() -> None:
    async def scenario() -> None:
        w = World()
        w.processor.failures = 2
        await w.batch((0, 0, b"10"))  # fails: no turn for 0.5 s
        await w.batch((0, 1, b"11"))  # within the pause: not even taken
        assert w.processor.applied == [(0, 0)]
        assert w.metric("input_repeats_total") == 1
        w.clock.now += 0.5
        await w.batch((0, 0, b"10"), (0, 1, b"11"))  # fails again: 1 s now
        w.clock.now += 0.9
        await w.loop.tick()
        assert w.guard.rewinds == 1  # the timer did not restart either
        w.clock.now += 0.1
        await w.batch((0, 0, b"10"), (0, 1, b"11"))
        assert w.dropped("failed") == 2
        assert w.group.committed == {P0: 2}

    run(scenario())
