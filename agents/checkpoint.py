"""One batch's effects made durable in a fixed order: the worker's commit protocol.

A batch of input changes user records and produces outputs (scores, alerts, examples, DLQ and
re-keyed records). Its input offsets may be committed only once all of that is on the broker,
or a crash would lose it; and the table's store may hold a user record only once its changelog
record is on the broker, or a restarted worker with a RocksDB store would hold a state its
changelog lacks. A `Checkpoint` collects one batch's outputs and the input records it handled;
`commit()` then, in this order:

1. sends the changed users' changelog records and the outputs as record batches and waits for
   the broker's acknowledgement of all of them (agents/outputs.py: a failed send is sent again,
   with back-off, until acknowledged, so an outage stalls the worker instead of losing data);
2. writes the acknowledged records to the store, with the changelog offsets they reached
   (agents/repository.py);
3. marks the handled input records done; only the finished prefix of each partition counts
   (agents/acks.py), so a record still held for event-time order holds back the later ones;
4. commits the offsets after that prefix (agents/commits.py, at most once per interval); a
   failed commit is logged and not fatal: those records are processed again after a rebalance
   or restart, and applied once (per-user offsets).

A checkpoint is made under a lease: the consumer generation and input assignment its records
were taken under (agents/input_guard.InputGuard.lease). Before every send attempt, before the
store write and before the commit it checks that the lease still holds; once the group moved on
(a rebalance began, or the worker was dropped from the group while it retried a send) it raises
`Fenced` and writes nothing more: a worker that lost its partitions cannot land older changelog
values after the new owner's, nor overwrite its store or commits. The records are delivered
again from the committed offsets, to whichever worker owns them now. Only a send already in
flight when the lease ends can still land (Kafka without transactions cannot recall it).

Like Quix Streams' `Checkpoint.commit`, one object per batch. The ledger and the committer
outlive it (a record may be admitted in one batch and released in a later one); after a
rebalance the batch loop clears both (agents/batch_loop.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from churnstream.agents.acks import AckLedger
from churnstream.agents.commits import OffsetCommitter
from churnstream.agents.outputs import Headers, Record
from churnstream.agents.repository import ChangelogRecord

Offsets = dict[tuple[str, int], int]  # last offset written, by (topic, partition)
# True while the generation and assignment a batch was taken under still hold.
Lease = Callable[[], bool]


class Fenced(Exception):
    """The batch's lease ended: the group moved on, nothing more of the batch may be written."""


class Sender(Protocol):
    """agents/outputs.OutputWriter: sends records, returns once the broker has them all."""

    async def send(
        self, records: list[Record], before_attempt: Callable[[], None] | None = None
    ) -> Offsets: ...


class ChangelogStore(Protocol):
    """agents/repository.TableRepository: changed records out, acknowledged ones into the store."""

    def flush(self) -> list[ChangelogRecord]: ...

    def written(self, last_offsets: Mapping[tuple[str, int], int]) -> None: ...


class Outbox(Protocol):
    """Where the event handling puts the output records of the current batch."""

    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> None: ...


class Checkpoint:
    __slots__ = (
        "_committer",
        "_done",
        "_lease",
        "_ledger",
        "_observe_flush",
        "_outbox",
        "_sender",
        "_store",
        "_timer",
    )

    def __init__(
        self,
        sender: Sender,
        store: ChangelogStore,
        ledger: AckLedger,
        committer: OffsetCommitter,
        observe_flush: Callable[[float], None],
        timer: Callable[[], float] = time.perf_counter,
        *,
        lease: Lease,
    ) -> None:
        self._sender = sender
        self._lease = lease
        self._store = store
        self._ledger = ledger
        self._committer = committer
        self._observe_flush = observe_flush  # seconds from encoding the state to its ack
        self._timer = timer
        self._outbox: list[Record] = []
        self._done: list[Any] = []

    def produce(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None
    ) -> None:
        """An output record of this batch, sent by `commit` before any input counts as done."""
        self._outbox.append((topic, key, value, headers))

    def done(self, event: Any) -> None:
        """An input record whose effects are all in this checkpoint."""
        self._done.append(event)

    @property
    def handled(self) -> bool:
        """True once an input record is done in this checkpoint (there is something to commit)."""
        return bool(self._done)

    def _hold(self) -> None:
        if not self._lease():
            raise Fenced("the partitions of this batch were revoked or the group moved on")

    async def commit(self) -> None:
        """Send, await the acks, write the store, mark the inputs done, commit their offsets.

        Raises `Fenced` (nothing more written) once the batch's lease no longer holds.
        """
        started = self._timer()
        self._hold()
        records: list[Record] = [*self._store.flush(), *self._outbox]
        self._outbox = []
        if records:
            last = await self._sender.send(records, self._hold)
            self._hold()  # acknowledged after the group moved on: the store keeps what it had
            self._store.written(last)
        self._observe_flush(self._timer() - started)
        self._hold()
        ledger = self._ledger
        for event in self._done:
            ledger.finish(event)
        self._committer.done(ledger.ready())
        await self._committer.commit()
