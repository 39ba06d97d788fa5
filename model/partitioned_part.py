"""One process of a replay with users partitioned over processes (model/partitioned.py).

A `Part` is a `Replay` of its users' events that observes every other valid event's time
(`Chunk`) and makes rows and labels only at the day boundaries, in lockstep with the
coordinator through `sync`. Its outputs carry a sort key (`Key`) by which the coordinator
merges those of every process in the order one process writes them.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

import orjson

from churnstream.features import FEATURE_NAMES
from churnstream.model.alert_policy import budget_rank
from churnstream.model.alerts import AlertPolicy
from churnstream.model.engine import Detector, EngineConfig, EventScore
from churnstream.model.evaluation import Truth
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.partitioned_input import INVALID, Chunk, owner
from churnstream.model.replay import TOPIC_RANK, MemoryRepository, Replay
from churnstream.model.replay_input import LEFT_OUT, Admit, ReplayRecord, read_event
from churnstream.model.score_pool import event_score_line
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.events import DAY_S, EVENT_TYPES, Event, Lifecycle
from churnstream.stream.contract.validation import Invalid

# An output's place: (event number, stage, boundary, user or segment, local number or rank).
Key = tuple[Any, ...]
Item = tuple[Key, bytes | dict[str, Any]]  # a dict: an alert without its percentile yet
_OBSERVED = {rank: EVENT_TYPES[kind].kind for kind, rank in TOPIC_RANK.items()}


class Learn(NamedTuple):
    """A process's "learn" message to the coordinator: at a boundary, or at the end."""

    examples: list[Example]  # the labels due before the boundary (at the end: all released)
    day_scores: dict[str, list[float]]  # the last boundary's daily scores, for its percentiles
    rows: bool  # a boundary's rows follow (False: the end)
    scores: list[Item]  # outputs since the last exchange, with their sort keys
    alerts: list[Item]


class _Foreign(NamedTuple):
    """Another process's valid event: only its time counts here (the watermark)."""

    kind: str  # the event type's `kind`, as the watermark observes it
    ts: float


class _Driven(Detector):
    """Rows and labels are made only by the `Part`'s boundary steps: never by a user's event
    (`_catch_up`), which would release one process's labels alone."""

    def _behind(self, rec: UserRecord) -> bool:
        return False


class _Repository(MemoryRepository):
    """Also notes the event at which each user's record was added (the order of one process's
    repository, for `states()`)."""

    def __init__(self, part: Part) -> None:
        super().__init__()
        self.part = part
        self.added: dict[str, int] = {}

    def put(self, record: UserRecord) -> None:
        if record.user_id not in self.records:
            self.added[record.user_id] = self.part.number
        self.records[record.user_id] = record


class _Later(Scorer):
    """An event score's model is the newest after the next exchange's first labels (those
    `Replay` learns right after a boundary's rows): `Part._resolve` fills it in."""

    def pick(self, segment: str, as_of: float | None = None) -> SegmentModel | None:
        if as_of is None:
            return None
        return super().pick(segment, as_of)


class Part(Replay):
    """The users of one process; `sync(kind, payload)` is the coordinator's answer."""

    def __init__(
        self,
        config: EngineConfig,
        alerts: AlertPolicy,
        *,
        index: int,
        count: int,
        sync: Callable[[str, Any], Any],
        scores: bool,
        max_bytes: int = 65536,
        snapshot_every: int = 500,
        wall_clock: Callable[[], float] | None = None,
        truth: Truth | None = None,
        admit: Admit | None = None,
    ) -> None:
        super().__init__(
            config,
            alerts,
            max_bytes=max_bytes,
            snapshot_every=snapshot_every,
            wall_clock=wall_clock,
            truth=truth,
        )
        self.admit = admit
        kw = {"wall_clock": wall_clock} if wall_clock else {}
        self.scorer = _Later(self.config.model, FEATURE_NAMES)
        self.repo = _Repository(self)
        self.detector = _Driven(self.config, self.scorer, alerts, self.repo, **kw)
        # Event scores are worked out at the next exchange (`_resolve`), in this process.
        self.detector.record_event_scores = False
        self.detector.event_vectors = scores
        self.index, self.count, self.sync = index, count, sync
        self.write_scores = scores
        # Judged against a truth: daily rows and churn_risk alerts per segment, keyed.
        self.truth_rows: dict[str, list[tuple[Key, str, float, float]]] = {}
        self.truth_alerts: dict[str, list[tuple[Key, str, float]]] = {}
        self._mine: dict[str, bool] = {}
        self.number = 0  # valid events applied or observed, the same in every process
        self.next_boundary: float | None = None  # the first boundary not opened
        self.score_items: list[Item] = []
        self.alert_items: list[Item] = []
        self._n = 0
        # The scores of the last boundary's rows, for its alerts' percentiles.
        self._day_scores: dict[str, list[float]] = {}
        # Score records of events since the last exchange (an `EventScore`: its model is
        # the newest after that exchange's first labels), in the order made.
        self._unresolved: list[tuple[Key, EventScore | bytes]] = []

    # -- events -------------------------------------------------------------------------------

    def feed_parsed(self, kind: str | None, event: Event | Invalid | None) -> None:
        if event is None or isinstance(event, Invalid):
            if self.index == 0:  # every process reads every record; one counts the invalid
                super().feed_parsed(kind, event)
            else:
                self.events += 1
            return
        super().feed_parsed(kind, event)

    def feed(self, rec: ReplayRecord) -> None:
        self._feed(rec.kind, rec.value)

    def _feed(self, kind: str | None, value: bytes | None) -> None:
        event = read_event(kind, value, self.max_bytes, self.admit)
        if event is not LEFT_OUT:  # not counted as read by the replay
            self.feed_parsed(kind, event)

    def feed_chunk(self, chunk: Chunk) -> None:
        """The records of a `Chunk`: this process's parsed here, the others' only timed."""
        times, ranks, to, records = chunk
        ts = array("d")
        ts.frombytes(times)
        mine = iter(records)
        index = self.index
        for i, rank in enumerate(ranks):
            if to[i] == index:
                self._feed(*next(mine))
                continue
            self.events += 1
            if rank == INVALID:
                continue
            t = ts[i]
            if self._ties and t != self._ties[0][2].ts:
                self._apply_ties()
            self._ties.append((rank, len(self._ties), _Foreign(_OBSERVED[rank], t)))  # type: ignore[arg-type]

    def _apply(self, event: Event) -> None:
        self.number += 1
        det = self.detector
        if type(event) is _Foreign:
            mine = False
        else:
            user_id = event.user_id
            mine = self._mine.get(user_id)  # type: ignore[assignment]
            if mine is None:
                mine = self._mine[user_id] = owner(user_id, self.count) == self.index
        if mine:
            self.applied += 1
            if isinstance(event, Lifecycle):
                self._lifecycle(event)
            self.results[det._apply(event, None)] += 1
        else:
            kind = event.kind if type(event) is _Foreign else type(event).kind  # type: ignore[union-attr]
            det.watermark.observe(kind, event.ts, kind)
        wm = det.watermark.value
        if self.next_boundary is None and wm != -math.inf:
            self.next_boundary = det._boundary_after(wm)
        if mine:
            self._late_rows()
            self._collect(0)
        while self.next_boundary is not None and self.next_boundary <= wm:
            self._boundary(self.next_boundary)
            self.next_boundary += DAY_S
        if det.expiry.earliest < wm:
            det._expire(wm)

    def _late_rows(self) -> None:
        """Rows of boundaries already opened (a late event of a user new or back): only this
        process's user has them at this event, so they are decided here alone."""
        det, nxt = self.detector, self.next_boundary
        if nxt is None:
            return
        while (boundary := det.days.earliest) < nxt:
            det._sweep_days(boundary, math.inf)
            det.settle(boundary, det._day_scores.pop(boundary, {}))

    def _boundary(self, boundary: float) -> None:
        """The steps of `Replay` when the watermark reaches `boundary`, with every process's
        labels: those due before it learned and the model as of it installed (`_exchange`),
        the rows, the alerts, then the labels due up to the watermark released (learned by the
        coordinator meanwhile: only event scores read them before the next exchange)."""
        det = self.detector
        det._release_labels(boundary)
        before, det.out.examples = det.out.examples, []
        self._exchange(before)
        det._sweep_days(boundary, math.inf)
        self._collect(1, boundary)
        # Without a budget every candidate is kept: settled here, its percentile among all
        # processes' scores of the boundary is added by the coordinator at the next exchange.
        self._day_scores = det._day_scores.pop(boundary, {})
        det.settle(boundary, None)
        self._collect(2, boundary)
        # Up to the next boundary if the watermark passed it too (its opening releases them).
        det._release_labels(min(det.watermark.value, boundary + DAY_S))
        after, det.out.examples = det.out.examples, []
        # The coordinator learns them while this process goes on with the next events.
        self.sync("after", after)

    def _exchange(self, examples: list[Example], rows: bool = True) -> None:
        """One exchange with the coordinator, which learns every process's labels
        (`PartitionedReplay._step`): install the snapshots it published while learning those
        released after the last rows, work out the event scores made since with the models
        then, and install those it published while learning `examples` (all processes') and for
        the model as of the boundary."""
        after, before = self.sync("learn", self._message(examples, rows))
        for snapshot in after:
            self.scorer.install_snapshot(snapshot)
        self._resolve()
        for snapshot in before:
            self.scorer.install_snapshot(snapshot)

    def _resolve(self) -> None:
        """Event scores made since the last exchange read the newest models now."""
        models = self.scorer.models
        unscored = self.detector._unscored
        for key, row in self._unresolved:
            if type(row) is not EventScore:
                self.score_items.append((key, row))  # type: ignore[arg-type]
                continue
            model = models.get(row.segment)
            newest = unscored.get(row.user_id)  # the user's stored last score, made later
            if newest is not None and newest.ts == row.ts and newest.segment == row.segment:
                unscored[row.user_id] = newest._replace(model=model)
            if row.vector is not None:  # a scores file
                self.score_items.append((key, event_score_line(self.scorer, model, row)))
        self._unresolved = []

    def _message(self, examples: list[Example], rows: bool) -> Learn:
        message = Learn(examples, self._day_scores, rows, self.score_items, self.alert_items)
        self.score_items, self.alert_items, self._day_scores = [], [], {}
        return message

    def _collect(self, stage: int, boundary: float = 0.0) -> None:
        """`Replay._drain`'s accounting; the records are kept with their sort key."""
        out = self.detector.out
        scores, alerts = out.scores, out.alerts
        if not (scores or alerts):
            return
        out.scores, out.alerts = [], []
        number = self.number
        for score in scores:
            self._n += 1
            if type(score) is EventScore:
                self.segments[score.segment].scores += 1
                self._unresolved.append(((number, 0, 0.0, "", self._n), score))
                continue
            seg = self.segments[score["segment"]]
            seg.scores += 1
            key = (number, stage, boundary, score["user_id"] if stage else "", self._n)
            if score["trigger"] == "daily":
                if score["score"] < self._clear[score["segment"]]:
                    self._first_alert.pop(score["user_id"], None)
                if self.truth is not None:  # in the order of the scores, as one process
                    self.truth_rows.setdefault(score["segment"], []).append(
                        (key, score["user_id"], _ts(score["ts"]), score["score"])
                    )
            if self.write_scores:
                line = orjson.dumps(score) + b"\n"
                if stage == 0:  # after the event scores before it
                    self._unresolved.append((key, line))
                else:
                    self.score_items.append((key, line))
        for alert in alerts:
            self._n += 1
            seg = self.segments[alert["segment"]]
            seg.alerts[f"{alert['kind']}/{alert['severity']}"] += 1
            if alert["kind"] == "churn_risk":
                seg.alerted_users.add(alert["user_id"])
                ts = _ts(alert["ts"])
                self._first_alert.setdefault(alert["user_id"], ts)
            if stage == 2:  # settled: in segment order, then the budget's rank
                key = (number, 2, boundary, alert["segment"], budget_rank({"alert": alert}))
            else:
                key = (number, stage, boundary, alert["user_id"] if stage else "", self._n)
            if self.truth is not None and alert["kind"] == "churn_risk":
                self.truth_alerts.setdefault(alert["segment"], []).append(
                    (key, alert["user_id"], ts)
                )
            # A boundary's alert (a dict) gets its percentile from the coordinator.
            self.alert_items.append((key, alert if stage == 2 else orjson.dumps(alert) + b"\n"))

    def finish(self) -> None:
        self._apply_ties()
        det = self.detector
        wm = det.watermark.value
        if wm != -math.inf:
            det._release_labels(wm)
        last, det.out.examples = det.out.examples, []
        self._exchange(last, rows=False)
        if det.expiry.earliest < wm:
            det._expire(wm)
        det.complete_last()
        self._collect(3)

    def result(self) -> dict[str, Any]:
        """What the coordinator merges."""
        return {
            "events": self.events,
            "results": self.results,
            "invalid": self.invalid,
            "segments": self.segments,
            "truth": (self.truth_rows, self.truth_alerts),
            "records": self.repo.records,
            "added": self.repo.added,  # type: ignore[attr-defined]
            "expired": self.repo.expired,
            "items": (self.score_items, self.alert_items),
            "cpu_s": time.process_time(),
        }


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()
