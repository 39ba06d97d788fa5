"""Replay with users partitioned over processes (`replay --jobs N --by-user`).

The coordinator's reader parses every record once and hands each process (a `Part`) the event
time and kind of every record and the records of its users (a stable hash of the user id), so
every process feeds every valid event's time to its own watermark and sees the same event-time
progress (lateness, boundaries, expiry), and parses and applies only its users' events. What
couples users happens when the watermark reaches a day boundary B, in lockstep with the
coordinator (one exchange per boundary), which is also the one learner:

- the processes send the labels due before B; the coordinator learns them, with those of every
  process, in the order one process holding every user releases them (`learning_order`), and
  answers with the snapshots it installed (`Replay` installs them into its scorer: after every
  `snapshot_every` labels, and the model as of B while the installed one lags the labels); the
  processes install the same, then make their users' rows as of B;
- right after the rows they send the labels due before the watermark (as `Replay` releases
  them then), which the coordinator learns while the processes go on with the next events;
- a boundary's churn_risk alerts carry their percentile among all of its daily scores: the
  processes send their sorted scores with the next exchange and the coordinator fills it in;
- outputs carry a sort key (global event number, stage, boundary, user), and the coordinator
  writes them in key order, the order one process writes them. An event score's model is the
  newest after the labels released with the last rows: its record is worked out at the next
  exchange, once the snapshots are in (nothing decides on it).

So `--jobs 1`, `--jobs N` and `Replay` give the same alerts, scores, report, states and models
(tests/unit/model/test_replay_partitioned.py: late, too late and out-of-order events,
lifecycle, duplicates, invalid records). Where `Replay` can differ: it releases a label at the
first event whose watermark passes its due time, this only at a boundary's steps; the two meet
when due times are boundaries (label delays of whole days) and the watermark does not stop
exactly on one. And a late event that makes rows of a boundary already passed (a user new or
back) makes `Replay` install the newest models if they lag its labels. In both cases only
event scores read another model. Not supported: a daily alert budget (its pick compares every
user's candidates; `supported` says so).
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import threading
import time
import traceback
import zlib
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from itertools import chain
from operator import itemgetter
from typing import IO, Any, NamedTuple

import orjson

from churnstream.features import FEATURE_NAMES
from churnstream.model.alert_policy import budget_rank, percentile
from churnstream.model.alerts import AlertPolicy
from churnstream.model.engine import Detector, EngineConfig, EventScore, score_record
from churnstream.model.evaluation import Truth
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.replay import TOPIC_RANK, MemoryRepository, Replay, _Segment
from churnstream.model.replay_input import ReplayRecord
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.events import DAY_S, EVENT_TYPES, Event, Lifecycle
from churnstream.stream.contract.validation import Invalid, parse

CHUNK = 2000  # records per hand-over to the processes when the input is not a list
# An output's place: (event number, stage, boundary, user or segment, local number or rank).
Key = tuple[Any, ...]
Item = tuple[Key, bytes | dict[str, Any]]  # a dict: an alert without its percentile yet


# A chunk for one process: every record's event time and topic rank (INVALID: not an event),
# the process each record goes to whole (its user's; the invalid ones to process 0), and those
# records (kind, value) in order. Parsed once, by the coordinator's reader.
Chunk = tuple[bytes, bytes, bytes, list[tuple[str | None, bytes | None]]]
INVALID = 255
# What a caller does to each valid event before the replay sees it (backfill: the cut, the
# pseudonym, the erasure block list): the event to apply, or None to leave the record out.
# Called by the reader for every record and by the processes for their users' records, so it
# must give the same answer for the same event.
Admit = Callable[[Event], Event | None]
_OBSERVED = {rank: EVENT_TYPES[kind].kind for kind, rank in TOPIC_RANK.items()}


class _Foreign(NamedTuple):
    """Another process's valid event: only its time counts here (the watermark)."""

    kind: str  # the event type's `kind`, as the watermark observes it
    ts: float


def owner(user_id: str, count: int) -> int:
    """The process of `user_id` (stable across runs, unlike the salted `hash`)."""
    return zlib.crc32(user_id.encode()) % count


def supported(alerts: AlertPolicy) -> bool:
    """Whether a replay with these alerts can be partitioned (no daily budget)."""
    return not alerts.config.daily_budget


def learning_order(
    released: Iterable[list[Example]], delay_s: Callable[[str], float]
) -> list[Example]:
    """The examples the processes released together (each list in its process's release
    order), in the order one process holding every user releases them: users by their
    earliest due time (made_at + the segment's label delay) then id, as `DueIndex` pops them,
    each user's examples together and by day (`PendingLabels.due`)."""
    keyed = []
    for examples in released:
        user, first = None, 0.0
        for e in examples:
            if e.user_id != user:  # a user's examples come together, earliest first
                user, first = e.user_id, e.made_at + delay_s(e.segment)
            keyed.append(((first, e.user_id, e.made_at), e))
    keyed.sort(key=itemgetter(0))
    return [e for _, e in keyed]


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


def _record(scorer: Scorer, model: SegmentModel | None, row: EventScore) -> bytes:
    s = scorer.score_with(model, row.segment, row.x)  # type: ignore[arg-type]
    horizon_s = scorer.config.horizon_s(row.segment)
    rec = score_record(row.user_id, row.segment, row.ts, s, horizon_s, "event", row.scored_at)
    return orjson.dumps(rec) + b"\n"


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
        event = parse(kind, value, self.max_bytes) if kind else None
        if self.admit is not None and event is not None and not isinstance(event, Invalid):
            event = self.admit(event)
            if event is None:
                return  # left out (not counted as read by the replay)
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
            self._settle(boundary, det._day_scores.pop(boundary, {}))

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
        self._settle(boundary, None)
        self._collect(2, boundary)
        # Up to the next boundary if the watermark passed it too (its opening releases them).
        det._release_labels(min(det.watermark.value, boundary + DAY_S))
        after, det.out.examples = det.out.examples, []
        # The coordinator learns them while this process goes on with the next events.
        self.sync("after", after)

    def _exchange(self, examples: list[Example], rows: bool = True) -> None:
        """One exchange with the coordinator, which learns every process's labels (`Learner`):
        install the snapshots it published while learning those released after the last
        rows, work out the event scores made since with the models then, and install those it
        published while learning `examples` (all processes') and for the model as of the
        boundary."""
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
                self.score_items.append((key, _record(self.scorer, model, row)))
        self._unresolved = []

    def _settle(self, boundary: float, day_scores: dict[str, list[float]] | None) -> None:
        det = self.detector
        records = [
            rec
            for user_id in sorted(det._candidates.pop(boundary, set()))
            if (rec := self.repo.get(user_id)) is not None
            and rec.alerts.candidate is not None
            and rec.alerts.candidate["boundary"] == boundary
        ]
        det.out.alerts.extend(det.alerts.settle([rec.alerts for rec in records], day_scores))
        for rec in records:
            self.repo.put(rec)

    def _message(self, examples: list[Example], rows: bool) -> tuple[Any, list[Item], list[Item]]:
        scores, alerts = self.score_items, self.alert_items
        self.score_items, self.alert_items, day_scores = [], [], self._day_scores
        self._day_scores = {}
        return (examples, day_scores, rows), scores, alerts

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


class PartitionedReplay(Replay):
    """`Replay`'s interface (`run`, `report`, `states`, `repo`, `trainer`) over `jobs`
    processes; the coordinator runs here."""

    def __init__(
        self,
        config: EngineConfig,
        alerts: AlertPolicy,
        *,
        jobs: int = 1,
        max_bytes: int = 65536,
        snapshot_every: int = 500,
        scores_out: IO[bytes] | None = None,
        alerts_out: IO[bytes] | None = None,
        wall_clock: Callable[[], float] | None = None,
        truth: Truth | None = None,
        admit: Admit | None = None,
        progress_every: int = 10000,
    ) -> None:
        if not supported(alerts):
            raise ValueError("a daily alert budget compares all users: not partitioned")
        super().__init__(
            config,
            alerts,
            max_bytes=max_bytes,
            snapshot_every=snapshot_every,
            wall_clock=wall_clock,
            truth=truth,
        )
        self.jobs = jobs
        self.policy = alerts
        self.scores_out = scores_out
        self.alerts_out = alerts_out
        self._part_kw = {
            "scores": scores_out is not None,
            "max_bytes": max_bytes,
            "snapshot_every": snapshot_every,
            "wall_clock": wall_clock,
            "truth": truth,
        }
        self.admit = admit
        self.progress_every = progress_every  # records read between `progress` calls
        self.workers_cpu_s = 0.0  # CPU seconds of the processes (all, and the busiest)
        self.busiest_cpu_s = 0.0
        # Per segment, the latest due time of the labels learned (`Detector.released_until`
        # of one process holding every user: every label released is learned at once).
        self.released_until: dict[str, float] = {}
        self._installs: list[bytes] = []  # snapshots published since the last answer

    # -- the coordinator ----------------------------------------------------------------------

    def _step(self, messages: Sequence[tuple[str, Any]]) -> Any:
        """One step of every process: "after" (the labels released after a boundary's rows:
        learned now, while the processes go on; no answer) or "learn" (outputs, a boundary's
        scores and the labels due before it: answered with the snapshots to install)."""
        kinds = {kind for kind, _ in messages}
        if len(kinds) != 1 or not kinds <= {"after", "learn"}:
            raise RuntimeError(f"partitions out of step: {sorted(kinds)}")
        delay = self.config.model.label_delay_s
        if kinds == {"after"}:
            self._learn_all(learning_order((m[1] for m in messages), delay))
            return None
        day_scores: dict[str, list[float]] = {}
        for (_, by_segment, _), _, _ in (m[1] for m in messages):
            for segment, scores in by_segment.items():
                day_scores.setdefault(segment, []).extend(scores)
        for scores in day_scores.values():
            scores.sort()
        self._write([m[1][1] for m in messages], [m[1][2] for m in messages], day_scores)
        after, self._installs = self._installs, []
        self._learn_all(learning_order((m[1][0][0] for m in messages), delay))
        rows = messages[0][1][0][2]  # rows follow (a boundary), not the end
        if rows and not self.scorer.covers(self.released_until):  # as `Replay._model_as_of`
            for segment, model in self.trainer.models.items():
                current = self.scorer.models.get(segment)
                if current is None or model.version > current.version:
                    self._install(segment)
        before, self._installs = self._installs, []
        return after, before

    # -- the learner: one for every process -----------------------------------------------------

    def _learn_all(self, examples: list[Example]) -> None:
        """`Replay._drain`'s learning of the labels released together."""
        last = {e.segment: i for i, e in enumerate(examples)}
        delay = self.config.model.label_delay_s
        until = self.released_until
        for i, example in enumerate(examples):
            self._learn(example, closes=last[example.segment] == i)
            due = example.made_at + delay(example.segment)
            if due > until.get(example.segment, -math.inf):
                until[example.segment] = due

    def _install(self, segment: str) -> None:
        """Install here (to know what the processes' scorers hold) and for the processes."""
        snapshot = self.trainer.snapshot(segment)
        self.scorer.install_snapshot(snapshot)
        self._installs.append(snapshot)

    def _write(
        self,
        scores: list[list[Item]],
        alerts: list[list[Item]],
        day_scores: dict[str, list[float]] | None = None,
    ) -> None:
        for out, parts in ((self.scores_out, scores), (self.alerts_out, alerts)):
            items = parts[0] if len(parts) == 1 else sorted(chain(*parts), key=itemgetter(0))
            for _, line in items:
                if type(line) is dict:  # a boundary's alert: the percentile among its rows
                    seg_scores = (day_scores or {}).get(line["segment"])
                    if seg_scores:
                        line["percentile"] = percentile(seg_scores, float(line["value"]))
                    line = orjson.dumps(line) + b"\n"
                if out is not None:
                    out.write(line)  # type: ignore[arg-type]

    # -- driving ------------------------------------------------------------------------------

    def run(
        self, records: Iterable[ReplayRecord], progress: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        if self.jobs == 1:
            part = self._part(0, lambda kind, payload: self._step([(kind, payload)]))
            for read, rec in enumerate(records, 1):
                part.feed(rec)
                if progress is not None and read % self.progress_every == 0:
                    progress(read)
            part.finish()
            results = [part.result()]
            results[0]["cpu_s"] = 0.0  # this process's own
            self._write([results[0]["items"][0]], [results[0]["items"][1]])
        else:
            results = self._run_processes(records, progress)
        self._merge(results)
        return self.report()

    def _part(self, index: int, sync: Callable[[str, Any], Any]) -> Part:
        return Part(
            self.config,
            self.policy,
            index=index,
            count=self.jobs,
            sync=sync,
            admit=self.admit,
            **self._part_kw,  # type: ignore[arg-type]
        )

    def _run_processes(
        self, records: Iterable[ReplayRecord], progress: Callable[[int], None] | None = None
    ) -> list[dict[str, Any]]:
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        queues = [ctx.Queue(maxsize=8) for _ in range(self.jobs)]
        conns, procs = [], []
        # The processes would otherwise traverse (and so copy) every object of this heap at
        # their first full collection.
        gc.freeze()
        try:
            for index in range(self.jobs):
                here, there = ctx.Pipe()
                proc = ctx.Process(
                    target=_part_main, args=(self, index, there, queues[index]), daemon=True
                )
                proc.start()
                there.close()
                conns.append(here)
                procs.append(proc)
        finally:
            gc.unfreeze()
        failed: list[Exception] = []
        feeder = threading.Thread(
            target=_feed,
            args=(records, queues, failed, progress, self),
            daemon=True,
        )
        feeder.start()
        done = False
        try:
            while True:
                try:
                    messages = [conn.recv() for conn in conns]
                except EOFError:
                    raise RuntimeError("a replay process ended without a word (killed?)") from None
                for kind, payload in messages:
                    if kind == "error":
                        raise RuntimeError(f"a replay process failed:\n{payload}")
                if all(kind == "end" for kind, _ in messages):
                    if failed:  # the input broke off: what was fed is not the history
                        raise failed[0]
                    results = [payload for _, payload in messages]
                    self._write([r["items"][0] for r in results], [r["items"][1] for r in results])
                    done = True
                    return results
                reply = self._step(messages)
                if messages[0][0] == "learn":
                    for conn in conns:
                        conn.send(reply)
        finally:
            for proc in procs:
                if not done:  # the others wait for a step that will not come
                    proc.kill()
                proc.join()
            feeder.join(timeout=1)

    def _merge(self, results: list[dict[str, Any]]) -> None:
        first = results[0]
        self.events = first["events"]
        self.invalid = first["invalid"]
        self.results = sum((r["results"] for r in results), Counter())
        self.repo = MemoryRepository()
        records: dict[str, UserRecord] = {}
        added: dict[str, int] = {}
        for r in results:
            records.update(r["records"])
            added.update(r["added"])
            self.repo.expired += r["expired"]
        self.repo.records = {uid: records[uid] for uid in sorted(records, key=added.__getitem__)}
        cpu = [r["cpu_s"] for r in results]
        self.workers_cpu_s, self.busiest_cpu_s = sum(cpu), max(cpu)
        for name, seg in self.segments.items():
            parts: list[_Segment] = [r["segments"][name] for r in results]
            seg.scores = sum(p.scores for p in parts)
            seg.alerts = sum((p.alerts for p in parts), Counter())
            seg.cancels = sum(p.cancels for p in parts)
            seg.cancels_alerted = sum(p.cancels_alerted for p in parts)
            seg.lead_days = sorted(chain.from_iterable(p.lead_days for p in parts))
            seg.alerted_users = set().union(*(p.alerted_users for p in parts))
            seg.alerted_churned = set().union(*(p.alerted_churned for p in parts))
            rows = sorted(
                chain.from_iterable(r["truth"][0].get(name, []) for r in results),
                key=itemgetter(0),
            )
            seg.row_users = [u for _, u, _, _ in rows]
            seg.row_ts.extend(t for _, _, t, _ in rows)
            seg.row_scores.extend(s for _, _, _, s in rows)
            alerts = sorted(
                chain.from_iterable(r["truth"][1].get(name, []) for r in results),
                key=itemgetter(0),
            )
            seg.risk_alerts = [(u, t) for _, u, t in alerts]

    def finish(self) -> None:
        raise NotImplementedError("PartitionedReplay.run drives the whole replay")


def _feed(
    records: Iterable[ReplayRecord],
    queues: list[Any],
    failed: list[Exception],
    progress: Callable[[int], None] | None,
    replay: PartitionedReplay,
) -> None:
    """The reader (a thread of the coordinator): parses every record once and hands each
    process the times of all and the records of its users (`Chunk`)."""
    count = len(queues)
    owners: dict[str, int] = {}
    read = 0
    max_bytes, every = replay._part_kw["max_bytes"], replay.progress_every
    admit = replay.admit
    try:
        it = iter(records)
        while True:
            ts, ranks, to = array("d"), bytearray(), bytearray()
            whole: list[list[tuple[str | None, bytes | None]]] = [[] for _ in range(count)]
            for rec in it:
                read += 1
                if progress is not None and read % every == 0:
                    progress(read)
                event = parse(rec.kind, rec.value, max_bytes) if rec.kind else None  # type: ignore[arg-type]
                if admit is not None and event is not None and not isinstance(event, Invalid):
                    event = admit(event)
                    if event is None:
                        continue
                if event is None or isinstance(event, Invalid):
                    ts.append(0.0)
                    ranks.append(INVALID)
                    to.append(0)  # counted by process 0
                    whole[0].append((rec.kind, rec.value))
                else:
                    o = owners.get(event.user_id)
                    if o is None:
                        o = owners[event.user_id] = owner(event.user_id, count)
                    ts.append(event.ts)
                    ranks.append(TOPIC_RANK[rec.kind])  # type: ignore[index]
                    to.append(o)
                    whole[o].append((rec.kind, rec.value))
                if len(ranks) >= CHUNK:
                    break
            if not ranks:
                break
            times, codes, dests = ts.tobytes(), bytes(ranks), bytes(to)
            for q, mine in zip(queues, whole, strict=True):
                q.put((times, codes, dests, mine))
    except Exception as exc:
        failed.append(exc)
    finally:
        for q in queues:
            q.put(None)


def _chunks(source: Any) -> Iterator[Chunk]:
    while (chunk := source.get()) is not None:
        yield chunk


def _part_main(replay: PartitionedReplay, index: int, conn: Any, source: Any) -> None:
    try:

        def sync(kind: str, payload: Any) -> Any:
            conn.send((kind, payload))
            return conn.recv() if kind == "learn" else None

        part = replay._part(index, sync)
        for chunk in _chunks(source):
            part.feed_chunk(chunk)
        part.finish()
        conn.send(("end", part.result()))
    except BaseException:
        with contextlib.suppress(OSError):  # the coordinator is gone
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
