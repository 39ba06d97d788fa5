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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from churnstream.agents.acks import AckLedger
from churnstream.agents.checkpoint import Checkpoint, Outbox
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.ordering import EventTimeAligner
from churnstream.stream.contract.events import Event

TP = tuple[str, int]
UNRANKED = 99  # tie-break rank of a topic outside the contract's order


class Guard(Protocol):
    """agents/input_guard.InputGuard: admits each input record once, in offset order."""

    def changed(self) -> bool: ...

    def revoked(self) -> frozenset[TP]: ...

    async def sync(self) -> None: ...

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
        checkpoints: Callable[[], Checkpoint],
        rank: Mapping[str, int],
        metrics: WorkerMetrics,
        lock: asyncio.Lock,
        clock: Clock = Clock(),
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

    async def run(self, batch: list[Any]) -> None:
        """Process one batch of Faust events and commit what it finished."""
        async with self.lock:
            started = self.clock.perf()
            await self._check_assignment()
            guard, ledger, processor, rank = self.guard, self.ledger, self.processor, self.rank
            checkpoint = self.checkpoints()
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
            self.metrics.observe_batch(len(batch), self.clock.perf() - started)

    async def tick(self) -> None:
        """The timer's turn: release what is due, commit what is pending (skipped while a
        batch or an erasure holds the lock: they commit themselves)."""
        if self.lock.locked():
            return
        async with self.lock:
            await self._check_assignment()
            # Decisions waiting for a source or a model go on once it arrives or the limit
            # passes, also when no input record comes.
            waiting = self.processor.waiting(self.clock.monotonic())
            if len(self.aligner) or waiting:
                await self._release_and_commit(self.checkpoints(), resume=waiting)
            await self.committer.commit()

    async def _check_assignment(self) -> None:
        """After a rebalance, forget everything not committed and start over."""
        guard = self.guard
        if guard.changed():
            revoked = guard.revoked()
            self.aligner.clear()
            self.ledger.clear()
            self.committer.forget()
            self.processor.reset(revoked)
            await guard.sync()
            self.metrics.rebalances.inc()
        await guard.watch()

    async def _release_and_commit(self, checkpoint: Checkpoint, resume: bool = False) -> None:
        """Apply what the aligner releases, then commit the checkpoint if a record is done (or
        `resume`: held decisions may go on without a new record)."""
        aligner, metrics, processor = self.aligner, self.metrics, self.processor
        forced = aligner.forced
        lagging = self.guard.lagging()
        released = aligner.release(lagging, self.clock.monotonic())
        # Back-pressure: partitions far ahead wait unread while the lagging ones catch up.
        self.guard.hold_back(aligner.ahead(lagging))
        metrics.events_held.set(len(aligner))
        metrics.events_released_early.inc(aligner.forced - forced)
        appended: list[float] = []
        for valid, event in released:
            checkpoint.done(event)
            ts = processor.apply(valid, event.message, checkpoint)
            if ts is not None:
                appended.append(ts)
        if not checkpoint.handled and not resume:
            return
        processor.finish(checkpoint)
        await checkpoint.commit()
        now = self.clock.wall()
        latency = metrics.event_to_score_latency_seconds
        for ts in appended:
            latency.observe(max(0.0, now - ts))
