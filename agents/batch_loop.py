"""The process agent's cycle for one batch of input, with every part injected.

For each batch (agents/intake.py), under the worker's state lock:
1. if the consumer moved to another generation or assignment, start over from the committed
   offsets: Faust moves every assigned partition (not only the lost ones) back to its
   committed offset, so everything held, unacked or pending is delivered again and is
   forgotten here;
2. each record is admitted once, in offset order per partition (the input guard), opened in
   the ack ledger, then validated (invalid and re-keyed records are done at once) or held in
   the event-time aligner;
3. the events the aligner releases are applied (the partitions far ahead of a lagging one are
   not fetched meanwhile when many events are held), due labels are swept, and the batch's
   checkpoint commits: outputs and changelog sent and acknowledged, store written, records
   done, offsets committed (agents/checkpoint.py).
`tick` runs the same release and commit on a timer, so held events and throttled commits do
not wait for the next record. The parts come in through the constructor, so the loop is
tested with fakes (tests/unit/agents/test_batch_loop.py); agents/process.py wires the real ones.

Input goes before a day boundary's rows: each turn makes rows for a short wall-time budget
only (agents/processor.py), and the timer makes them turn after turn only while no input
waits (a batch waiting for the lock, or records queued for the next one): an event waits
behind one turn of rows at most, not behind every turn queued before it. Input goes no
further than those rows allow, though: an event at or past the detector's `intake_until` waits
in the aligner until the rows before it are made (a source or the model waited for, a
backfill publishing one topic after another).

Three rules keep a fault from freezing or corrupting what the worker holds:
- nothing runs while the consumer rebalances or Faust recovers the tables (`Guard.ready`):
  a batch fetched before the rebalance is dropped (delivered again once it is over) and the
  timer waits, so the due-label index is rebuilt only from a completely recovered table;
- each checkpoint carries the lease it was taken under (`Guard.lease`) and raises `Fenced`
  before writing anything once the group moved on (agents/checkpoint.py);
- a turn that does not end normally (fenced, or an error outside the per-record handling in
  agents/processor.py) restarts the next one from the last commit: everything held or open in
  the ack ledger is forgotten and the consumer is sent back to the committed offsets, so no
  taken record stays open forever and commits go on. Counted in
  `churnstream_batches_dropped_total{reason=fenced|failed}`. Failures in a row back off
  (0.5 s doubling up to 30 s, batches meanwhile are left to be delivered again), so a
  persistent bug does not spin the worker.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from churnstream.agents.acks import AckLedger
from churnstream.agents.checkpoint import Checkpoint, Fenced, Lease, Outbox
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.ordering import EventTimeAligner
from churnstream.agents.outputs import OutputRefused
from churnstream.stream.contract.events import Event
from churnstream.stream.contract.timefmt import rfc3339

log = logging.getLogger(__name__)

TP = tuple[str, int]
UNRANKED = 99  # tie-break rank of a topic outside the contract's order
FAILURE_BACKOFF_S = (0.5, 30.0)  # after a failed turn: first pause, longest pause


class Guard(Protocol):
    """agents/input_guard.InputGuard: admits each input record once, in offset order."""

    def ready(self) -> bool: ...

    def changed(self) -> bool: ...

    def revoked(self) -> frozenset[TP]: ...

    def lease(self) -> Lease: ...

    async def sync(self, rewind: bool = False) -> Mapping[TP, int]: ...

    async def watch(self) -> None: ...

    def take(self, message: Any) -> bool | None: ...

    async def settle(self, message: Any) -> bool: ...

    def lagging(self) -> list[TP]: ...

    def hold_back(self, sources: frozenset[TP]) -> None: ...


class Processor(Protocol):
    """agents/processor.EventProcessor: validates, applies and turns results into outputs."""

    def validate(self, message: Any, out: Outbox) -> Event | None: ...

    def apply(self, event: Event, message: Any, out: Outbox) -> float | None: ...

    def finish(self, out: Outbox) -> None: ...

    def reset(self, revoked: frozenset[TP]) -> None: ...

    def waiting(self, now: float) -> bool: ...

    def holding(self) -> bool: ...

    def rows_ready(self) -> bool: ...

    def status(self, now: float) -> dict[str, Any]: ...

    def intake_until(self) -> float: ...

    def held_past(self, held: Mapping[TP, int]) -> None: ...


@dataclass(frozen=True)
class Clock:
    """The loop's three clocks: hold times, durations (metrics) and wall time (latency)."""

    monotonic: Callable[[], float] = time.monotonic
    perf: Callable[[], float] = time.perf_counter
    wall: Callable[[], float] = time.time


class BatchLoop:
    def __init__(
        self,
        *,
        guard: Guard,
        processor: Processor,
        aligner: EventTimeAligner[tuple[Event, Any]],
        ledger: AckLedger,
        committer: OffsetCommitter,
        checkpoints: Callable[..., Checkpoint],  # called with lease=, the rest bound
        rank: Mapping[str, int],
        metrics: WorkerMetrics,
        lock: asyncio.Lock,
        clock: Clock = Clock(),
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self.guard = guard
        self.processor = processor
        self.aligner = aligner
        self.ledger = ledger
        self.committer = committer
        self.checkpoints = checkpoints
        self.rank = rank
        self.metrics = metrics
        # The loop, its timer and erasures change user records; one at a time.
        self.lock = lock
        self.clock = clock
        # Input records queued for the next batch (the agent's queue, once it exists).
        self.backlog = backlog
        self._arriving = 0  # batches waiting for the lock
        # Set when a turn did not end normally: the next one starts from the last commit.
        self.restart = False
        self._failures = 0  # failed turns in a row
        self._paused_until = -float("inf")  # monotonic time: no turn before it

    async def run(self, batch: list[Any]) -> None:
        """Process one batch of Faust events and commit what it finished."""
        self._arriving += 1  # the timer's next turn of rows waits for it
        try:
            await self.lock.acquire()
        finally:
            self._arriving -= 1
        try:
            if not self.guard.ready() or self._backing_off():
                # Fetched before a rebalance whose recovery is not over (Faust delivers these
                # again from the committed offsets once it is), or while a failure backs off
                # (the restart sends the consumer back to them).
                self.metrics.input_repeats.inc(len(batch))
                return
            started = self.clock.perf()
            await self._turn(self._run(batch))
            self.metrics.observe_batch(len(batch), self.clock.perf() - started)
        finally:
            self.lock.release()

    async def _run(self, batch: list[Any]) -> None:
        await self._check_assignment()
        guard, ledger, processor, rank = self.guard, self.ledger, self.processor, self.rank
        checkpoint = self.checkpoints(lease=guard.lease())
        arrived = self.clock.monotonic()
        for event in batch:
            msg = event.message
            take = guard.take(msg)
            if take is None:
                take = await guard.settle(msg)
            if not take:
                continue  # a repeat, or beyond a hole being read again: not ours
            ledger.open(event)
            valid = processor.validate(msg, checkpoint)
            if valid is None:
                checkpoint.done(event)
                continue
            tiebreak = (rank.get(msg.topic, UNRANKED), msg.partition, msg.offset)
            source = (msg.topic, msg.partition)
            self.aligner.push(source, valid.ts, tiebreak, (valid, event), arrived)
        await self._release_and_commit(checkpoint)

    async def tick(self) -> None:
        """The timer's turn: release what is due, commit what is pending (skipped while a
        batch or an erasure holds the lock: they commit themselves, and while the consumer
        rebalances or recovers the tables)."""
        if not self._may_tick():
            return
        async with self.lock:
            await self._turn(self._tick())
        # The rest of a boundary's rows, turn after turn, while no input waits; the consumer
        # and the agent get the loop between turns, to hand over records.
        while True:
            await asyncio.sleep(0)
            if not (self.processor.rows_ready() and not self._input_waiting() and self._may_tick()):
                return
            async with self.lock:
                await self._turn(self._tick())

    def status(self, now: float) -> dict[str, Any]:
        """The processor's status at monotonic time `now`, and the events held in the aligner
        by input topic; `intake_held` names the event time intake stopped at, if it did."""
        held: dict[str, int] = {}
        for (topic, _), n in self.aligner.held().items():
            held[topic] = held.get(topic, 0) + n
        until = self.processor.intake_until() if self.aligner.limited else None
        return {
            **self.processor.status(now),
            "events_held": held,
            "intake_held": None if until is None else rfc3339(until),
        }

    def _may_tick(self) -> bool:
        return not self.lock.locked() and self.guard.ready() and not self._backing_off()

    def _input_waiting(self) -> bool:
        return self._arriving > 0 or self.backlog() > 0

    async def _tick(self) -> None:
        await self._check_assignment()
        # Decisions waiting for a source or a model go on once it arrives or the limit
        # passes, also when no input record comes.
        waiting = self.processor.waiting(self.clock.monotonic())
        if len(self.aligner) or waiting:
            checkpoint = self.checkpoints(lease=self.guard.lease())
            await self._release_and_commit(checkpoint, resume=waiting)
        await self.committer.commit()

    async def _turn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run one turn; unless it ends normally, the next turn starts from the last commit.

        A fenced batch and an error outside the per-record handling are counted and logged,
        not raised: the agent and its timer keep running. `OutputRefused` (the worker stops)
        and cancellation go on up.
        """
        ended = False
        try:
            await work
            ended = True
            self._failures = 0
        except Fenced:
            self.metrics.batch_dropped("fenced").inc()
            log.warning("batch dropped: its partitions were revoked while it was written")
        except OutputRefused:
            raise
        except Exception:
            self.metrics.batch_dropped("failed").inc()
            self._failures += 1
            first, longest = FAILURE_BACKOFF_S
            pause = min(first * 2 ** min(self._failures - 1, 16), longest)
            self._paused_until = self.clock.monotonic() + pause
            log.exception(
                "batch failed outside the per-record handling; restarting from the last commit"
            )
        finally:
            if not ended:
                self.restart = True

    def _backing_off(self) -> bool:
        return self.clock.monotonic() < self._paused_until

    async def _check_assignment(self) -> None:
        """After a rebalance or a turn that did not end normally, forget everything not
        committed and start over (the consumer is sent back to the committed offsets)."""
        guard = self.guard
        changed = guard.changed()
        if changed or self.restart:
            revoked = guard.revoked()
            self.aligner.clear()
            self.ledger.clear()
            self.committer.forget()
            self.processor.reset(revoked)
            # Records below these offsets are gone unprocessed: commit past them.
            self.committer.skip_to(await guard.sync(rewind=self.restart))
            self.restart = False
            if changed:
                self.metrics.rebalances.inc()
        await guard.watch()

    async def _release_and_commit(self, checkpoint: Checkpoint, resume: bool = False) -> None:
        """Apply what the aligner releases, then commit the checkpoint if a record is done (or
        `resume`: held decisions may go on without a new record)."""
        aligner, metrics, processor = self.aligner, self.metrics, self.processor
        forced = aligner.forced
        lagging = self.guard.lagging()
        blocked = processor.holding()
        until = processor.intake_until
        released = aligner.drain(lagging, self.clock.monotonic(), blocked=blocked, until=until)
        appended: list[float] = []
        # While the detector holds a boundary for its model, the next event stays held: the
        # rows of that boundary must read the state `replay` reads (docs/architecture.md).
        while not blocked and (item := next(released, None)) is not None:
            valid, event = item
            checkpoint.done(event)
            ts = processor.apply(valid, event.message, checkpoint)
            if ts is not None:
                appended.append(ts)
            blocked = processor.holding()
        if aligner.limited:
            # Sources held past the rows not made yet have delivered beyond them: decisions
            # need not wait for them.
            processor.held_past(aligner.held())
        # Back-pressure: partitions far ahead wait unread while the lagging ones catch up; while
        # the detector holds a boundary for its model nothing is applied, so none is read on
        # (the frontier's partitions filled the buffer past its bound during those holds).
        self.guard.hold_back(aligner.ahead(lagging, -math.inf if blocked else until()))
        metrics.events_held.set(len(aligner))
        metrics.events_released_early.inc(aligner.forced - forced)
        if not checkpoint.handled and not resume:
            return
        processor.finish(checkpoint)
        await checkpoint.commit()
        now = self.clock.wall()
        latency = metrics.event_to_score_latency_seconds
        for ts in appended:
            latency.observe(max(0.0, now - ts))
