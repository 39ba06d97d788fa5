"""What the process agent does with one input record: validate it, route it, apply it.

The Kafka-free half of the agent's batch loop (agents/batch_loop.py): each record is parsed
and validated (invalid -> `churn.dlq`, with the reason), pseudonymised and re-keyed when its
key is not its user id (-> `churn.rekeyed`, applied when it comes back on the partition that
owns the user), or returned as an event for the event-time aligner. Released events are applied
by the detector; `finish` sweeps due labels and turns the detector's outputs into records. All
output records go to the current batch's checkpoint (agents/checkpoint.py), sent before the
batch's inputs count as done. A bug in validation or in the detector dead-letters the record
instead of stalling its partition.

`waiting` applies the wall-clock limits of the detector's waits (domain code has no wall
clock): an input source that lags or has not started and does not advance for `source_wait_s`
is marked idle, and daily rows held for the model as of their boundary for `model_wait_s` are
scored with the models at hand; both are counted, and the sources waited for are logged.
`status` says what a worker waits for right now (the worker's `GET /status/`, shown by
`churnstream tail --status`).
"""

from __future__ import annotations

import gc
import logging
import math
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

import orjson

from churnstream.agents.checkpoint import Outbox
from churnstream.agents.configure import DAILY_ROWS_BUDGET_S
from churnstream.agents.erasure import ERASED_USER
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.redelivery import mark, origin_header, origin_of, seen
from churnstream.agents.repository import TableRepository
from churnstream.model.engine import Detector
from churnstream.model.labels import Example
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.dlq import dead_letter_of
from churnstream.stream.contract.events import EVENT_TYPES, Event
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.kafka.client import security_settings
from churnstream.stream.settings import Settings

log = logging.getLogger(__name__)

KIND_HEADER = "churnstream-kind"
# On the last example of each segment in one release: the trainer's model then covers their
# due time (model.trainer.Trainer.close).
CLOSES_HEADER = "churnstream-closes"


class EventProcessor:
    def __init__(
        self,
        settings: Settings,
        metrics: WorkerMetrics,
        detector: Detector,
        repo: TableRepository,
        *,
        rows_budget_s: float = DAILY_ROWS_BUDGET_S,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.metrics = metrics
        # Wall time a turn may spend making daily rows (at least one row): events go first.
        self.rows_budget_s = rows_budget_s
        self.clock = clock
        self.detector = detector
        self.repo = repo
        self.prefix = settings.topic_prefix
        self.kinds = {settings.topic(name): kind for kind, name in t.INPUT_TOPICS.items()}
        # Input topic -> the kind the watermark knows its sources by (re-keyed records: none).
        self.event_kinds = {topic: EVENT_TYPES[name].kind for topic, name in self.kinds.items()}
        self.rekeyed_topic = settings.topic(t.REKEYED)
        self.dlq_topic = settings.topic(t.DLQ)
        self.scores_topic = settings.topic(t.SCORES)
        self.alerts_topic = settings.topic(t.ALERTS)
        self.examples_topic = settings.topic(t.EXAMPLES)
        self.max_bytes = settings.max_record_bytes
        self.max_future_s = settings.max_future_skew_s
        security = security_settings(settings)
        self.pseudo = security.pseudonymizer()
        self.blocked = security.blocked_users().__contains__
        # Tie-break of equal event times: the contract's topic order, then re-keyed records.
        self.rank = {name: i for i, name in enumerate([*self.kinds, self.rekeyed_topic])}
        self.source_wait_s = settings.source_wait_s
        self.model_wait_s = settings.model_wait_s
        self._lagging: dict[Hashable, tuple[float, float]] = {}  # progress, wall time since
        self._held_since: tuple[float, float] | None = None  # held boundary, wall time since

    def short(self, topic: str) -> str:
        prefix = self.prefix
        return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic

    def dead_letter(
        self, message: Any, error: str, detail: str, out: Outbox, *, keep_data: bool = True
    ) -> None:
        """Record -> churn.dlq with the reason; `keep_data=False` drops key and payload (an
        erased user's data must not be kept there)."""
        # With pseudonymisation on, a record not yet re-keyed still holds the raw id.
        raw_ids = self.pseudo.enabled and message.topic != self.rekeyed_topic
        key, value = dead_letter_of(
            message,
            error,
            detail,
            max_bytes=self.max_bytes,
            keep_data=keep_data,
            pseudonymise=self.pseudo if raw_ids else None,
        )
        out.produce(self.dlq_topic, key, value)
        self.metrics.dlq(error.split(":", 1)[0]).inc()

    def validate(self, message: Any, out: Outbox) -> Event | None:
        """`classify`, with a bug in it dead-lettering the record instead of stalling."""
        try:
            return self.classify(message, out)
        except Exception:
            log.exception("unexpected error validating a record; sent to the DLQ")
            self.dead_letter(message, "internal_error", "validation raised; see worker log", out)
            return None

    def classify(self, message: Any, out: Outbox) -> Event | None:
        """A valid event keyed by its user, or None once dead-lettered or re-keyed."""
        topic = message.topic
        rekeyed_topic, metrics = self.rekeyed_topic, self.metrics
        if topic == rekeyed_topic:
            kind = dict(message.headers or ()).get(KIND_HEADER, b"").decode() or None
        else:
            kind = self.kinds.get(topic)
        value = message.value
        # Event time may run ahead of the wall clock at intake by the allowed skew, no more.
        not_after = time.time() + self.max_future_s
        result = (
            parse(kind, value, self.max_bytes, not_after=not_after)
            if kind
            else Invalid("unknown_kind", topic)
        )
        if isinstance(result, Invalid):
            self.dead_letter(message, result.error, result.detail, out)
            metrics.consumed(self.short(topic), "invalid").inc()
            return None
        if self.pseudo.enabled and topic != rekeyed_topic:
            # The raw id must reach no state and no output: the record is rewritten with the
            # pseudonym and goes through churn.rekeyed to the partition that owns the pseudonym.
            alias = self.pseudo(result.user_id)
            doc = orjson.loads(value)
            doc["user_id"] = alias
            headers = [(KIND_HEADER, kind.encode()), origin_header(message)]
            out.produce(rekeyed_topic, alias.encode(), orjson.dumps(doc), headers)
            metrics.consumed(self.short(topic), "rekeyed").inc()
            return None
        if self.blocked(result.user_id):
            self.dead_letter(
                message, ERASED_USER, "user is on the erasure block list", out, keep_data=False
            )
            metrics.consumed(self.short(topic), "invalid").inc()
            return None
        user_key = result.user_id.encode()
        if topic != rekeyed_topic and message.key != user_key:
            # Send it to the partition that owns the user; applied when it comes back.
            headers = [(KIND_HEADER, kind.encode()), origin_header(message)]
            out.produce(rekeyed_topic, user_key, value, headers)
            metrics.consumed(self.short(topic), "rekeyed").inc()
            return None
        return result

    def apply(self, event: Event, message: Any, out: Outbox) -> float | None:
        """Apply one released event; returns its append time if it was scored (latency).

        A bug must not stall the partition: the record is dead-lettered instead. A re-keyed
        copy of a record already applied (re-sent after a crash) is dropped as redelivered
        (agents/redelivery.py).
        """
        detector = self.detector
        topic = message.topic
        origin = origin_of(message) if topic == self.rekeyed_topic else None
        if origin is not None and seen(self.repo, event.user_id, origin):
            self.metrics.consumed(self.short(topic), "redelivered").inc()
            return None
        try:
            n_scores = len(detector.out.scores)
            outcome = detector.handle(event, (topic, message.partition, message.offset))
            if origin is not None:
                mark(self.repo, event.user_id, origin)
        except Exception:
            log.exception("unexpected error applying an event; sent to the DLQ")
            self.dead_letter(message, "internal_error", "apply raised; see worker log", out)
            return None
        self.metrics.consumed(self.short(message.topic), outcome).inc()
        return message.timestamp if len(detector.out.scores) > n_scores else None

    def waiting(self, now: float) -> bool:
        """Apply the wait limits at wall time `now`; True while decisions wait (or a limit just
        passed, or daily rows remain to be made), so the caller sweeps and commits what they
        now allow."""
        detector, metrics = self.detector, self.metrics
        wm = detector.watermark
        lagging: dict[Hashable, tuple[float, float]] = {}
        passed = False
        for source in wm.lagging():
            progress = wm.progress(source)
            prev = self._lagging.get(source)
            if prev is None or prev[0] != progress:
                if prev is None:
                    log.info("waiting for input source %s (behind or not started)", source)
                lagging[source] = (progress, now)
            elif now - prev[1] >= self.source_wait_s:
                log.warning(
                    "input source %s idle after %.0f s: going on without it", source, now - prev[1]
                )
                wm.mark_idle(source)
                metrics.sources_given_up.labels(wm.kind_of(source) or str(source)).inc()
                passed = True
            else:
                lagging[source] = prev
        self._lagging = lagging
        metrics.sources_waited_for.set(len(lagging))
        held = detector.held
        if held is None:
            self._held_since = None
        elif self._held_since is None or self._held_since[0] != held:
            self._held_since = (held, now)
        elif now - self._held_since[1] >= self.model_wait_s:
            log.warning("no model snapshot as of a daily boundary after %.0f s", self.model_wait_s)
            detector.decide_held()
            self._held_since = None
            passed = True
        # Rows of a boundary spread over sweeps go on on the timer when no record comes.
        return passed or detector.held is not None or detector.rows_due

    def holding(self) -> bool:
        """True while the detector holds a boundary's daily rows for the model as of it: no
        event is applied meanwhile, since those rows must read the states `replay` reads (its
        inline trainer installs the model before its next event). A snapshot that arrived
        since is tried first (a sweep)."""
        detector = self.detector
        if detector.held is not None:
            self._sweep()
        return detector.held is not None

    def intake_until(self) -> float:
        """Events at or after this event time wait (model/engine.py `Detector.intake_until`)."""
        return self.detector.intake_until

    def held_past(self, held: Mapping[tuple[str, int], int]) -> None:
        """Intake stopped at `intake_until` with `held` events by input partition: each kind
        with events held there has delivered past the rows that wait, so its sources waited for
        count as idle now (in a replay a kind that lags is idle at once). A kind that has
        nothing held is still waited for, up to `source_wait_s`."""
        wm = self.detector.watermark
        kinds = {self.event_kinds.get(topic) for topic, _ in held}
        for source in wm.lagging():
            kind = source if isinstance(source, str) else wm.kind_of(source)
            if kind in kinds:
                log.debug("input source %s delivered past the rows waiting: not waited for", source)
                wm.mark_idle(source)

    def status(self, now: float) -> dict[str, Any]:
        """What decisions wait for at wall time `now`, as of the last `waiting` call: each input
        source waited for (topic/partition, or a kind that has not started) with its progress
        and how long it has been waited for, and the daily boundary held for a model."""
        wm = self.detector.watermark
        sources = []
        for source, (progress, since) in self._lagging.items():
            if isinstance(source, tuple):
                name, kind = f"{self.short(source[0])}/{source[1]}", wm.kind_of(source)
            else:
                name, kind = f"{source} (not started)", str(source)
            sources.append(
                {
                    "source": name,
                    "kind": kind,
                    "progress": None if progress == -math.inf else rfc3339(progress),
                    "waited_s": round(now - since, 1),
                    "limit_s": self.source_wait_s,
                }
            )
        held = self._held_since
        return {
            "waiting_for": sources,
            "model_held": None
            if held is None
            else {
                "boundary": rfc3339(held[0]),
                "waited_s": round(now - held[1], 1),
                "limit_s": self.model_wait_s,
            },
        }

    def rows_ready(self) -> bool:
        """True while daily rows the watermark passed can be made now (not held for a model):
        the timer makes them turn after turn while no input waits."""
        detector = self.detector
        return detector.held is None and detector.rows_due

    def finish(self, out: Outbox) -> None:
        """Make daily rows for at most `rows_budget_s` and sweep due labels under the
        watermark, then hand the detector's outputs to `out`."""
        self._sweep()
        produced = self.detector.out.drain()
        metrics = self.metrics
        for score in produced.scores:
            out.produce(self.scores_topic, score["user_id"].encode(), orjson.dumps(score))
            metrics.observe_score(score["segment"], score["source"], score["score"])
        for alert in produced.alerts:
            out.produce(self.alerts_topic, alert["user_id"].encode(), orjson.dumps(alert))
            metrics.alert(alert["kind"], alert["severity"]).inc()
        last = {e.segment: i for i, e in enumerate(produced.examples)}
        closes = [(CLOSES_HEADER, b"1")]
        for i, example in enumerate(produced.examples):
            headers = closes if last[example.segment] == i else None
            out.produce(
                self.examples_topic, example.segment.encode(), encode_example(example), headers
            )
        for reason, n in produced.held.items():
            if reason.endswith("_limit"):
                metrics.decisions_at_limit.labels(reason.removesuffix("_limit")).inc(n)
            else:
                metrics.decisions_held.labels(reason).inc(n)

    def _sweep(self) -> None:
        clock = self.clock
        deadline = clock() + self.rows_budget_s
        self.detector.sweep(lambda: clock() >= deadline)

    def reset(self, revoked: Iterable[tuple[str, int]]) -> None:
        """After a rebalance the table is the only truth: drop cached and unacknowledged user
        records (their inputs are delivered again), the revoked partitions' watermarks, and
        rebuild the due-label index from the partitions now owned; then freeze what survives
        (`settle_memory`)."""
        self.repo.forget()
        self.detector.watermark.forget(revoked)
        self.detector.reschedule(self.repo.records())
        settle_memory()


def settle_memory() -> None:
    """Collect, then take what survives out of every later collection (`gc.freeze`).

    A full (generation 2) collection scans every tracked object and stalls intake meanwhile:
    the worker's modules alone (Faust, aiokafka, River: ~120,000 objects) took 0.3 s of one on
    the loaded development machine, paid again at each of the tens of them a 100k-user boundary
    runs (every record decoded for a row adds to the oldest generation). Frozen objects are
    still freed once unreferenced; only reference cycles among them that become garbage later
    are never collected, and what is alive after startup or a rebalance (modules, the
    detector's indexes) lives on. At each rebalance: the cache was just dropped.
    """
    gc.collect()
    gc.freeze()


def encode_example(example: Example) -> bytes:
    return orjson.dumps(example.to_dict())


def decode_example(value: bytes) -> Example:
    return Example.from_dict(orjson.loads(value))
