"""The Kafka side of `agents.input_sequence.InputSequence`: nothing lost, nothing taken twice.

At every new consumer generation the guard reads the group's committed offsets from the broker
(the log start where nothing is committed): that is where processing resumes. Each delivered
record of an input partition is then admitted only in offset order. A jump is checked against
the broker with a small consumer of its own (no group): if the broker holds records inside the
jump, the Faust consumer is sent back to the first of them and the records beyond are dropped
until it arrives; if it holds none (transaction markers, deleted segments), the jump is taken.
A partition that delivers nothing for a while although its log end shows more records (its
last records were dropped, so no later record can reveal the hole) is read again the same way.
Counted in `churnstream_input_gaps_total{kind=lost|empty|stalled}` and
`churnstream_input_repeats_total`.

Records may also be gone for good: retention or delete-records can remove records the group
never processed, so its committed offset (or the offset expected next) lies below the log
start. Processing then goes on from the log start, and the offsets skipped are counted in
`churnstream_input_records_expired_total{topic}`. A committed offset found below the log start
is moved up to it by the next commit (`sync` returns it): on an idle partition it would stay
there, counted again at every rebalance and behind for good in the lag gauge and lag tools.
The guard never seeks below the log start (the consumer would fall back to the log start and
be sent back again, forever on an idle topic) and never asks the broker in a way that resets
to the log end (which would skip the records that arrive meanwhile).

`ready` is false while the consumer rebalances or Faust recovers the tables (the batch loop does
nothing then), and `lease` is what a batch's checkpoint checks before it writes: the generation
and input assignment the batch was taken under (agents/checkpoint.py).

The guard also knows which partitions still have unread records (`lagging`: the log end, as of
the consumer's last fetch, beyond what was received, or not known yet), which the event-time
aligner must wait for, and stops fetching the partitions it names as ahead (`hold_back`,
back-pressure during a catch-up; `churnstream_input_partitions_paused`). A paused partition is
not taken for stalled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from churnstream.agents import faust_private
from churnstream.agents.input_sequence import Admit, InputSequence
from churnstream.agents.metrics import WorkerMetrics
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

log = logging.getLogger(__name__)

TP = tuple[str, int]
BROKER_TIMEOUT_S = 10.0
STALL_S = 10.0  # no record although the log end is further: the consumer is sent back


class InputGuard:
    def __init__(
        self,
        app: Any,
        settings: Settings,
        bootstrap: str,
        metrics: WorkerMetrics,
        topics: Iterable[str],
    ) -> None:
        self.app = app
        self.group = settings.app_id
        self.bootstrap = bootstrap
        self.options = client_options(settings)
        self.metrics = metrics
        self.topics = frozenset(topics)
        self.sequence = InputSequence()
        self._still: dict[TP, tuple[int | None, float]] = {}  # expected offset, since when
        self.paused: frozenset[TP] = frozenset()  # input partitions not fetched (back-pressure)
        self.generation: int | None = None
        self.assigned: frozenset[TP] = frozenset()
        self._probe: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    # -- generations --------------------------------------------------------------------------

    def ready(self) -> bool:
        """False while the consumer rebalances or Faust recovers the tables: Faust sets
        `rebalancing` when partitions are revoked and clears it once the new assignment's
        tables are recovered and its stream partitions resumed (faust-streaming 0.15.3
        `App.on_rebalance_start` / `on_rebalance_end`)."""
        return not self.app.rebalancing

    def lease(self) -> Callable[[], bool]:
        """True while the generation and input assignment of the last `sync` still hold and no
        rebalance has begun (a batch taken now may be written while it is true)."""
        app, generation, assigned = self.app, self.generation, self.assigned

        def held() -> bool:
            return (
                not app.rebalancing
                and app.consumer_generation_id == generation
                and self._input_assignment() == assigned
            )

        return held

    def changed(self) -> bool:
        """True when the consumer moved to another generation or assignment since `sync`."""
        app = self.app
        if app.consumer_generation_id != self.generation:
            return True
        return self._input_assignment() != self.assigned

    def _input_assignment(self) -> frozenset[TP]:
        return frozenset(
            (tp.topic, tp.partition)
            for tp in self.app.consumer.assignment()
            if tp.topic in self.topics
        )

    def revoked(self) -> frozenset[TP]:
        """Input partitions of the last `sync` that the consumer no longer has."""
        return self.assigned - self._input_assignment()

    def lagging(self) -> list[TP]:
        """Assigned input partitions whose log end is beyond what this worker received, or not
        known yet (not fetched since the assignment: it may hold anything).

        Also right for a paused partition: Faust's pause only stops handing out its records,
        aiokafka still fetches it once ahead, so a caught-up partition paused under
        back-pressure shows a further log end (lagging) as soon as new records reach it."""
        highwater = self.app.consumer.highwater
        out = []
        for tp in self.app.consumer.assignment():
            if tp.topic not in self.topics:
                continue
            end = highwater(tp)
            source = (tp.topic, tp.partition)
            if end is None or end > (self.sequence.expected(source) or 0):
                out.append(source)
        return out

    def hold_back(self, sources: frozenset[TP]) -> None:
        """Fetch no records of `sources` (input partitions) and again of the others paused so
        far. Left alone while the consumer rebalances: Faust pauses and resumes then."""
        if sources == self.paused or self.app.rebalancing:
            return
        consumer = self.app.consumer
        by_tp = {(a.topic, a.partition): a for a in consumer.assignment()}
        pause = [by_tp[s] for s in sources - self.paused if s in by_tp]
        resume = [by_tp[s] for s in self.paused - sources if s in by_tp]
        if pause:
            faust_private.pause_fetching(consumer, pause)
        if resume:
            faust_private.resume_fetching(consumer, resume)
        self.paused = sources
        self.metrics.input_partitions_paused.set(len(sources))

    async def sync(self, rewind: bool = False) -> dict[TP, int]:
        """Start every assigned input partition at the group's committed offset (or its log
        start, if retention removed what lay between). `rewind`: the batch loop dropped what
        it had taken, so the consumer is also sent back to those offsets (a rebalance does
        that itself). Returns the partitions whose committed offset lay below the log start,
        with their log start: nothing is taken yet, so that may be committed."""
        taken = dict(self.sequence.items())
        self.generation = self.app.consumer_generation_id
        self.assigned = self._input_assignment()
        expired: dict[TP, int] = {}
        try:
            starts = await self._start_offsets(self.assigned, expired) if self.assigned else {}
        except Exception:  # the broker did not answer: check from each first record instead
            log.warning(
                "committed offsets unavailable; input offsets are checked from the first "
                "record of each partition on",
                exc_info=True,
            )
            # Faust's record of the last commit, so a rewind still goes back far enough.
            committed = faust_private.committed_offsets(self.app.consumer) if rewind else {}
            starts = {
                (tp.topic, tp.partition): offset
                for tp, offset in committed.items()
                if offset is not None and (tp.topic, tp.partition) in self.assigned
            }
        self.sequence.reset(starts)
        faust_private.forget_rewinds(self.app.consumer)
        self._still.clear()
        # The rebalance's recovery resumed every assigned partition.
        self.paused = frozenset()
        self.metrics.input_partitions_paused.set(0)
        if rewind:
            # Only partitions with records taken beyond the start: elsewhere nothing is owed,
            # and a seek whose record never comes would be repeated on an idle partition.
            for tp, start in starts.items():
                if taken.get(tp, start) > start:
                    await self._reseek(tp, start)
        return expired

    async def _start_offsets(self, tps: frozenset[TP], expired: dict[TP, int]) -> dict[TP, int]:
        """Where each partition starts; `expired` gets those whose committed offset lies below
        the log start, with the log start."""
        parts = [TopicPartition(t, p) for t, p in tps]
        admin = await self._admin_client()
        committed = await asyncio.wait_for(
            admin.list_consumer_group_offsets(self.group, partitions=parts), BROKER_TIMEOUT_S
        )
        # Nothing committed: the consumer starts at the log start (auto_offset_reset); a
        # committed offset below it: those records expired unprocessed.
        probe = await self._probe_consumer()
        begins = await asyncio.wait_for(probe.beginning_offsets(parts), BROKER_TIMEOUT_S)
        starts: dict[TP, int] = {}
        for tp in parts:
            meta = committed.get(tp)
            begin = begins[tp]
            source = (tp.topic, tp.partition)
            if meta is not None and meta.offset >= 0:
                if meta.offset < begin:
                    self._expired(source, meta.offset, begin)
                    expired[source] = begin
                starts[source] = max(meta.offset, begin)
            else:
                starts[source] = begin
        return starts

    def _expired(self, tp: TP, offset: int, start: int) -> None:
        """Offsets `offset`..`start - 1` of `tp` were removed before this group read them."""
        self.metrics.input_records_expired.labels(tp[0]).inc(start - offset)
        log.warning(
            "input %s[%d]: offsets %d..%d were removed (retention or delete-records) before "
            "they were processed; going on from the log start",
            tp[0],
            tp[1],
            offset,
            start - 1,
        )

    async def _past_retention(self, tp: TP, offset: int) -> int:
        """`offset`, or the log start of `tp` if the records from `offset` on were removed
        (counted, and the sequence moves there)."""
        probe = await self._probe_consumer()
        part = TopicPartition(*tp)
        try:
            begins = await asyncio.wait_for(probe.beginning_offsets([part]), BROKER_TIMEOUT_S)
        except Exception:  # unknown: records may be there (the safe side)
            log.warning("log start of %s[%d] unavailable", tp[0], tp[1], exc_info=True)
            return offset
        start = begins[part]
        if start <= offset:
            return offset
        self._expired(tp, offset, start)
        self.sequence.skip_to(tp, start)
        return start

    # -- records ------------------------------------------------------------------------------

    def take(self, message: Any) -> bool | None:
        """True: process `message`; False: drop it (an older generation's, a repeat, or beyond
        a hole being read again); None: its offset jumped, `settle` asks the broker."""
        if message.generation_id != self.generation:
            # Fetched for an older generation: this one delivers it again from its committed
            # offset.
            self.metrics.input_repeats.inc()
            return False
        verdict = self.sequence.admit((message.topic, message.partition), message.offset)
        if verdict is Admit.NEXT:
            return True
        if verdict is Admit.GAP:
            return None
        if verdict is Admit.REPEAT:
            self.metrics.input_repeats.inc()
        return False

    async def settle(self, message: Any) -> bool:
        """Decide a jump to `message`: True if the broker holds nothing before it (take it);
        False if records are missing (the consumer is sent back to read them again)."""
        tp: TP = (message.topic, message.partition)
        expected = self.sequence.expected(tp)
        assert expected is not None
        expected = await self._past_retention(tp, expected)
        if expected >= message.offset:  # everything before it expired
            self.sequence.skip_to(tp, message.offset)
            return self.sequence.admit(tp, message.offset) is Admit.NEXT
        first = await self._first_offset(tp, expected)
        if first is not None and first >= message.offset:
            self.metrics.input_gap("empty").inc()
            self.sequence.skip_to(tp, message.offset)
            return self.sequence.admit(tp, message.offset) is Admit.NEXT
        self.metrics.input_gap("lost").inc()
        log.warning(
            "input %s[%d]: offsets %d..%d were not delivered; reading them again",
            tp[0],
            tp[1],
            expected,
            message.offset - 1,
        )
        await self._reseek(tp, expected if first is None else first)
        return False

    async def watch(self) -> None:
        """Send the consumer back where records are owed and nothing arrives.

        Two cases no later record reveals: a seek whose records did not come back (lost in
        another race), and a partition whose last records were dropped, by the consumer or
        here (fetched for an older generation), while the log end shows there is more. Both
        are left alone while the consumer is rebalancing or recovering tables.
        """
        if self.app.rebalancing:
            return
        now = time.monotonic()
        for tp, offset in self.sequence.overdue(now):
            await self._read_again(tp, offset)
        highwater = self.app.consumer.highwater
        for ftp in self.app.consumer.assignment():
            tp = (ftp.topic, ftp.partition)
            expected = self.sequence.expected(tp)
            end = highwater(ftp) if expected is not None else None
            still = self._still.get(tp)
            if (
                end is None
                or end <= expected
                or still is None
                or still[0] != expected
                or tp in self.paused
            ):
                self._still[tp] = (expected, now)
            elif now - still[1] >= STALL_S and not self.sequence.is_repairing(tp):
                self._still[tp] = (expected, now)
                self.metrics.input_gap("stalled").inc()
                log.warning(
                    "input %s[%d]: nothing from offset %d on for %.0f s while the log ends at "
                    "%d; reading again",
                    tp[0],
                    tp[1],
                    expected,
                    STALL_S,
                    end,
                )
                await self._read_again(tp, expected)

    async def _read_again(self, tp: TP, offset: int) -> None:
        """Send the consumer back to the broker's first record of `tp` at or after `offset`
        (at or after the log start, if retention removed `offset`)."""
        offset = await self._past_retention(tp, offset)
        first = await self._first_offset(tp, offset)
        await self._reseek(tp, offset if first is None else first)

    async def _reseek(self, tp: TP, offset: int) -> None:
        self.sequence.skip_to(tp, offset)
        self.sequence.repairing(tp, time.monotonic())
        consumer = self.app.consumer
        faust_tp = next((a for a in consumer.assignment() if (a.topic, a.partition) == tp), None)
        if faust_tp is None:
            return
        try:
            await asyncio.wait_for(
                faust_private.seek_back(consumer, faust_tp, offset), BROKER_TIMEOUT_S
            )
        except Exception:  # e.g. revoked meanwhile; `watch` seeks again if needed
            log.warning("seek of %s[%d] to %d failed", tp[0], tp[1], offset, exc_info=True)

    async def _first_offset(self, tp: TP, offset: int) -> int | None:
        """Offset of the broker's first record of `tp` at or after `offset` (None: unknown)."""
        probe = await self._probe_consumer()
        part = TopicPartition(*tp)
        probe.assign([part])
        probe.seek(part, offset)
        try:
            batch = await probe.getmany(
                part, timeout_ms=int(BROKER_TIMEOUT_S * 1000), max_records=1
            )
        except Exception:  # broker trouble: assume records are there (the safe side)
            log.exception("could not read %s[%d] at %d", tp[0], tp[1], offset)
            return None
        records = batch.get(part) or []
        return records[0].offset if records else None

    # -- clients ------------------------------------------------------------------------------

    async def _probe_consumer(self) -> AIOKafkaConsumer:
        if self._probe is None:
            probe = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                # Offsets removed meanwhile: read from the log start, never from the log end
                # (aiokafka's default), which would skip whatever arrives before the next read.
                auto_offset_reset="earliest",
                **self.options,
            )
            await probe.start()
            self._probe = probe
        return self._probe

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.options)
            await admin.start()
            self._admin = admin
        return self._admin

    async def close(self) -> None:
        if self._probe is not None:
            await self._probe.stop()
            self._probe = None
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
