"""The detector: one code path from a validated event to features, score, labels and alerts.

Two kinds of score: an `event` score whenever a user's event arrives (the newest view, and the
`roi_drop` alert), and a `daily` score of every user at risk as of each day boundary, made once
the watermark reaches it from the complete days before it. Daily rows are the ones labelled
and the ones that raise `churn_risk`, so a user who goes quiet is still scored and alerted, and
the model learns from exactly the rows that decide the alerts.

Decisions wait for the data they read (docs/architecture.md, "Progress per source"): a
`roi_drop` decision waits until the `value` sources passed its time, the daily rows of a
boundary until every counted source passed it (model.watermark), and until the scorer holds a
model snapshot that learned every label released before the boundary (the model as of the
boundary, `held`); the caller gives up waiting at its limit (`decide_held`).

Used unchanged by the live Faust worker (agents/) and by `churnstream replay`, so the same events
in the same order give the same scores. It knows nothing of Kafka: the caller owns storage
through a `UserRepository` and ships `Outputs` wherever they go.
"""

from __future__ import annotations

import bisect
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from churnstream.features import FEATURE_NAMES, Applied, FeatureConfig
from churnstream.features.buckets import AHEAD_DAYS, LAST_EVENT
from churnstream.model.alerts import Alert, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.labels import (
    DueIndex,
    Example,
    PendingLabels,
    active_within,
    is_activity,
    quiet_start,
    stored_score,
)
from churnstream.model.learner import SegmentModel
from churnstream.model.scoring import Score, Scorer
from churnstream.model.user_record import UserRecord
from churnstream.model.watermark import Watermark
from churnstream.stream.contract.events import (
    DAY_S,
    Event,
    Lifecycle,
    ValueEvent,
    expected_kinds,
)
from churnstream.stream.contract.timefmt import rfc3339

# Where an event came from: (topic, partition, offset); None in replays without offsets.
Source = tuple[str, int, int]


class UserRepository(Protocol):
    def get(self, user_id: str) -> UserRecord | None: ...
    def put(self, record: UserRecord) -> None: ...
    def remove(self, user_id: str) -> None:
        """Delete the user's record (expired): the live repository writes a tombstone."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    default_segment: str = "course"
    score_min_interval_s: float = 0.0
    watermark_idle_s: float = 86400.0
    # A source's progress moves at most this far beyond the freshest one without a second
    # event (inf: unbounded; the worker and `replay` take it from the settings).
    watermark_max_step_s: float = math.inf
    # True (live): a lagging or not yet started source is waited for until the caller marks it
    # idle; False (replay, a file in event-time order): a lagging source is idle at once.
    wait_for_sources: bool = False
    # The event kinds waited for before they start (`expected_kinds` of the deployed segments).
    expect_kinds: tuple[str, ...] = expected_kinds()
    # True where a trainer learns the released labels (the worker, `replay`): daily rows wait
    # for the model as of their boundary. False: score with whatever model is installed.
    model_as_of: bool = False
    # False: keep features only (no scores, labels or alerts).
    scoring: bool = True
    # False: publish daily scores only (no per-event scoring; roi_drop is then read daily).
    score_events: bool = True
    # Daily boundaries are midnights UTC plus this offset (seconds of event time).
    day_offset_s: float = 0.0
    # A user silent for longer than this is gone: no daily scores until their next event.
    gone_after_s: float = 30 * DAY_S
    # A user silent (no event) for longer than this, in event time past the watermark, is
    # deleted: state removed, a tombstone in the changelog (None: users are kept forever).
    expire_after_s: float | None = 400 * DAY_S
    # None: every daily row of a boundary is made at the event that moves the watermark past
    # it (replay: nothing waits on it). n: a boundary's rows are spread so that intake does not
    # stall: each sweep() makes at most n, handle() only those of the user it applies (see
    # `_catch_up`). The rows are the same either way.
    daily_rows_per_sweep: int | None = None


@dataclass(slots=True)
class Outputs:
    """What processing produced since the caller last drained it."""

    scores: list[dict[str, Any] | EventScore] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)
    # Decisions held back (roi_source, daily_source, daily_model) or taken at the limit
    # without what they waited for (daily_model_limit), for metrics.
    held: Counter[str] = field(default_factory=Counter)

    def drain(self) -> Outputs:
        out = Outputs(self.scores, self.alerts, self.examples, self.results, self.held)
        self.scores, self.alerts, self.examples = [], [], []
        self.results, self.held = Counter(), Counter()
        return out


class EventScore(NamedTuple):
    """An event score not worked out yet (`Detector.record_event_scores` False): `model` is
    the one `Scorer.score` picked (an installed snapshot is not changed afterwards), so
    `score_record` gives later, or in another process, the record `_publish` would have."""

    user_id: str
    segment: str
    ts: float
    model: SegmentModel | None
    # The features in `FEATURE_NAMES` order and as a mapping; None (`Detector.event_vectors`
    # False) until `complete_last` derives them from the user's state, unchanged since.
    vector: list[float] | None
    x: dict[str, float] | None
    scored_at: str


def score_record(
    user_id: str,
    segment: str,
    ts: float,
    s: Score,
    horizon_s: float,
    trigger: str,
    scored_at: str,
) -> dict[str, Any]:
    """The `churn.risk-scores` record of one score (the contract's field order)."""
    return {
        "user_id": user_id,
        "segment": segment,
        "ts": rfc3339(ts),
        "score": s.score,
        "source": s.source,
        "model_version": s.model_version,
        "horizon_days": horizon_s / DAY_S,
        "drivers": [d.to_dict() for d in s.drivers],
        "trigger": trigger,
        "scored_at": scored_at,
    }


def last_score(ts: float, record: dict[str, Any]) -> dict[str, Any]:
    """`UserRecord.last` from a score record made at event time `ts`."""
    return {
        "ts": ts,
        "score": record["score"],
        "source": record["source"],
        "model_version": record["model_version"],
        "drivers": record["drivers"],
    }


_RESULT = {
    Applied.APPLIED: "ok",
    Applied.DUPLICATE: "duplicate",
    Applied.LATE_APPLIED: "late",
    Applied.TOO_LATE: "too_late",
}


class Detector:
    def __init__(
        self,
        config: EngineConfig,
        scorer: Scorer,
        alerts: AlertPolicy,
        repo: UserRepository,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.scorer = scorer
        self.alerts = alerts
        self.repo = repo
        self.due = DueIndex()
        self.days = DueIndex()  # (next daily boundary, user_id)
        self.expiry = DueIndex()  # (earliest time the user may expire, user_id)
        self.watermark = Watermark(
            config.features.lateness_s,
            config.watermark_idle_s,
            wait=config.wait_for_sources,
            max_step_s=config.watermark_max_step_s,
            expect=config.expect_kinds,
        )
        # Per segment, the latest label due time among the examples released so far: the model
        # as of a boundary must have learned them (Scorer.covers).
        self.released_until: dict[str, float] = {}
        # The boundary whose daily rows wait for a model snapshot, if any.
        self.held: float | None = None
        self._decide_through = -math.inf  # boundaries the caller decided without waiting
        self._source_held = -math.inf  # last boundary counted as held by a lagging source
        # The boundary whose daily rows are being made (every earlier one is done), if any.
        self._opened: float | None = None
        # Users with a churn_risk alert waiting for its boundary's decision, by boundary
        # (decided once every row of the boundary is made: `_decide_boundaries`).
        self._candidates: dict[float, set[str]] = {}
        # The daily scores of each boundary not decided yet, per segment, sorted: the alerts'
        # percentile among the day's scores. One float per row (~8 B in a list, ~0.8 MB per
        # 100,000 users) for at most the boundaries being made; dropped once decided.
        self._day_scores: dict[float, dict[str, list[float]]] = {}
        self._stop: Callable[[], bool] | None = None  # the running sweep's budget, if any
        self.out = Outputs()
        # False (replay): an event score goes out as an `EventScore`, worked out by whoever
        # wants its record, if anyone; no decision reads it. Its model score and explanation
        # cost more than the rest of the event. The newest of each user is worked out for
        # `rec.last` by `complete_last`.
        self.record_event_scores = True
        # False too (a replay without a scores file): nobody reads an event score's features
        # but `complete_last`, for each user's newest. `_score` then reads only what
        # `roi_drop` needs (`UserState.roi_features_if`, the full derive is a fifth of a replay)
        # and the newest's features are derived at the end from the state as it was at that
        # event: `_apply` derives them first if an event is about to change the state and no
        # newer score will follow (`_keep_features`).
        self.event_vectors = True
        self._unscored: dict[str, EventScore] = {}
        # Only `scored_at` reads it: the contract marks that field as wall-clock, for latency.
        self._wall_clock = wall_clock
        self._last_wall: tuple[float, str] = (-1.0, "")
        if tuple(scorer.feature_names) != FEATURE_NAMES:
            raise ValueError("the scorer must use features.FEATURE_NAMES in that order")

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: Event, source: Source | None = None) -> str:
        """Apply one valid event of its user, then score, label and alert as needed.

        Returns the result for metrics: ok, late, too_late, duplicate or redelivered.
        """
        result = self._apply(event, source)
        # Daily rows and labels are made at the event that moves the watermark past their
        # time, not at the caller's next sweep, so what they hold does not depend on the sweep
        # cadence (per batch live, every N events in a replay).
        wm = self.watermark.value
        if self.days.earliest <= wm or self.due.earliest < wm:
            self._advance(wm, 0 if self.config.daily_rows_per_sweep is not None else math.inf)
        if self.expiry.earliest < wm:
            self._expire(wm)
        nxt = self.days.earliest
        if wm < nxt <= self.watermark.freshest and nxt > self._source_held:
            # The rows of this boundary would be made now if no source lagged: count it once.
            self._source_held = nxt
            self.out.held["daily_source"] += 1
        return result

    def _apply(self, event: Event, source: Source | None) -> str:
        rec = self.repo.get(event.user_id)
        if rec is not None and self._behind(rec):
            self._catch_up(rec)
            rec = self.repo.get(event.user_id)  # the same record, now put back
        if rec is not None and self._expired(rec, self.watermark.value):
            # Not swept yet (the sweep runs at the event that moves the watermark past it):
            # the event starts a fresh user either way, as in a replay.
            self._remove(rec.user_id)
            rec = None
        config = self.config  # read many times per event below
        if rec is None:
            rec = UserRecord.new(event.user_id, config.features)
        state = rec.state
        kind = type(event).kind
        if source is not None:
            topic, partition, offset = source
            if state.seen_offset(topic, partition, offset):
                self.out.results["redelivered"] += 1
                return "redelivered"
            self.watermark.observe((topic, partition), event.ts, kind)
        else:
            self.watermark.observe(kind, event.ts, kind)
        if not self.event_vectors:
            self._keep_features(rec, event)
        old_segment = state.segment
        applied = state.apply(event)
        if source is not None:  # only once applied: an event that raised left no trace
            state.mark_offset(*source)
        # The usual outcome without hashing the enum (Enum.__hash__ is Python code).
        result = "ok" if applied is Applied.APPLIED else _RESULT[applied]
        self.out.results[result] += 1
        if applied is Applied.DUPLICATE:
            self.repo.put(rec)
            return result
        if rec.pending is not None and state.segment != old_segment:
            rec.pending = None  # snapshots and horizon belonged to the old segment
        if isinstance(event, Lifecycle):
            self._lifecycle(rec, event)
        if config.expire_after_s is not None:
            self.expiry.schedule(rec.user_id, state.clock + config.expire_after_s)
        if config.scoring and applied is not Applied.TOO_LATE:
            segment = state.segment or config.default_segment
            if rec.pending is not None and is_activity(event, segment):
                rec.pending.on_activity(event.ts)
            if not state.churned:
                if rec.next_daily is None:  # new, back after going quiet, or reactivated
                    rec.next_daily = self._boundary_after(event.ts)
                    self.days.schedule(rec.user_id, rec.next_daily)
                if config.score_events:
                    self._score(rec)
        self.repo.put(rec)
        return result

    def _boundary_after(self, ts: float) -> float:
        """The first day boundary strictly after `ts`."""
        off = self.config.day_offset_s
        return ((ts - off) // DAY_S + 1) * DAY_S + off

    def _lifecycle(self, rec: UserRecord, event: Lifecycle) -> None:
        if event.event == "cancel" and rec.state.churned:
            if rec.pending is not None:
                # Labelled now, released at their horizon by `sweep` (see PendingLabels).
                rec.pending.on_cancel(event.ts)
                if len(rec.pending) == 0:
                    rec.pending = None
                    self.due.discard(rec.user_id)
            self.alerts.on_cancel(rec.alerts, event.ts)
        elif event.event in ("signup", "reactivate"):
            self.alerts.on_reactivate(rec.alerts, event.ts)

    def _score(self, rec: UserRecord) -> None:
        """The event score: the user's newest view; only `roi_drop` (acute) is decided here."""
        state = rec.state
        now = state.clock
        # Read once: a property (a dict lookup and a float()); nothing below changes it before
        # the second use.
        last_ts = rec.last_scored_ts
        config = self.config
        if now - last_ts < config.score_min_interval_s:
            return
        segment = state.segment or config.default_segment
        x: Mapping[str, float] | None = None
        if self.record_event_scores:
            x = self._publish(rec, segment, now, rec.state.vector(now), "event")[0]
        elif not self.event_vectors:
            # No scores file: `scored_at` is never written; the ROI features are read below.
            row = EventScore(rec.user_id, segment, now, self.scorer.pick(segment), None, None, "")
            self.out.scores.append(row)
            if now >= last_ts:
                rec.last = {"ts": now}  # the rest in `complete_last`
                self._unscored[rec.user_id] = row
        else:
            vector = rec.state.vector(now)
            x = dict(zip(FEATURE_NAMES, vector, strict=True))
            model = self.scorer.pick(segment)
            row = EventScore(rec.user_id, segment, now, model, vector, x, self._scored_at())
            self.out.scores.append(row)
            if now >= last_ts:
                rec.last = {"ts": now}  # the rest in `complete_last`
                self._unscored[rec.user_id] = row
        if self.watermark.waiting_for(ValueEvent.kind, now):
            # ROI read now would miss value records still on their way: no decision (neither
            # raise nor clear); a later event decides once the value sources caught up.
            self.out.held["roi_source"] += 1
            return
        policy = self.alerts
        if x is None:
            # Tenure and value events first: about half the readings are refused by them
            # (`read_roi`), and then nothing else is derived.
            x = state.roi_features_if(now, *policy.roi_minimums)
            if x is None:
                policy.on_roi_refused(rec.alerts, now)
                return
        self._alert(policy.on_roi(rec.user_id, segment, now, x, rec.alerts))

    def _keep_features(self, rec: UserRecord, event: Event) -> None:
        """Before `event` is applied: derive the features of the user's newest unrecorded
        event score if the event may change the state without a newer event score replacing
        that one (`_score` is skipped for a churned user, a cancel churns one, and the
        throttle skips some). Any other event that changes the state is scored after it
        (duplicates and events too late leave the state as it is); daily rows and label
        releases only read it, and an expired user's entry is dropped (`forget`)."""
        row = self._unscored.get(rec.user_id)
        if (
            row is not None
            and row.vector is None
            and (
                rec.state.churned
                or type(event) is Lifecycle
                or self.config.score_min_interval_s > 0
            )
        ):
            vector = rec.state.vector(row.ts)
            x = dict(zip(FEATURE_NAMES, vector, strict=True))
            self._unscored[rec.user_id] = row._replace(vector=vector, x=x)

    def _daily(self, rec: UserRecord, boundary: float) -> float | None:
        """Score `rec` as of `boundary`, label and alert on it; returns the next boundary.

        None ends the schedule: the user cancelled before the boundary (until a reactivation)
        or is gone (silent for longer than `gone_after_s`, until their next event).
        """
        state = rec.state
        if state.churned and state.cancel_ts is not None and state.cancel_ts < boundary:
            return None
        # Silent since the newest behaviour event or (re)subscription.
        start = -math.inf if state.sub_start_ts is None else state.sub_start_ts
        if boundary - max(state.last[LAST_EVENT], start) > self.config.gone_after_s:
            return None
        if state.prev_sub is not None and state.prev_sub[1] < boundary <= start:
            return boundary + DAY_S  # between a cancel and the reactivation
        segment = state.segment or self.config.default_segment
        vector = state.vector_at(boundary)
        x, s, horizon_s = self._publish(rec, segment, boundary, vector, "daily", as_of=boundary)
        if rec.pending is None:
            rec.pending = PendingLabels(rec.user_id, segment)
        # The state may already hold what followed the boundary (it runs ahead of the
        # watermark, live even past the horizon while a source or the model is waited for:
        # only activity inside the horizon counts); later ones come through handle().
        cancel = state.cancel_ts
        q = self.config.model.quiet_days_of(segment)
        quiet = None
        if q:
            quiet = (q, *quiet_start(state, segment, boundary, horizon_s, q, vector))
        rec.pending.add(
            boundary,
            vector,
            s.score,
            s.model_version,
            horizon_s,
            cancelled=cancel is not None and boundary < cancel <= boundary + horizon_s,
            active=active_within(state, segment, boundary, horizon_s),
            quiet=quiet,
        )
        self.due.schedule(rec.user_id, rec.pending.next_due())
        day_scores = self._day_scores.setdefault(boundary, {}).setdefault(segment, [])
        bisect.insort(day_scores, stored_score(s.score))
        budgeted = self.alerts.budgeted(segment)
        before = self.alerts.risk_memory(rec.alerts) if budgeted else None
        alert = self.alerts.on_score(
            rec.user_id,
            segment,
            boundary,
            s.score,
            s.drivers,
            rec.alerts,
            horizon_days=horizon_s / DAY_S,
            plan_price=state.price_at(boundary),
        )
        if alert is not None:
            # Every churn_risk alert waits for the boundary's last row: the budget and the
            # percentile read all of them, the same whether the rows are spread or made at once.
            self.alerts.hold(rec.alerts, alert, boundary, before)
            self._candidates.setdefault(boundary, set()).add(rec.user_id)
        if not self.config.score_events:
            self._alert(self.alerts.on_roi(rec.user_id, segment, boundary, x, rec.alerts))
        return boundary + DAY_S

    def _publish(
        self,
        rec: UserRecord,
        segment: str,
        ts: float,
        vector: list[float],
        trigger: str,
        as_of: float | None = None,
    ) -> tuple[dict[str, float], Score, float]:
        """Score `vector` (with the model as of `as_of`, else the newest), append the score
        record and keep the newest score in `rec.last`."""
        x = dict(zip(FEATURE_NAMES, vector, strict=True))
        s = self.scorer.score(segment, x, as_of)
        horizon_s = self.config.model.horizon_s(segment)
        record = score_record(rec.user_id, segment, ts, s, horizon_s, trigger, self._scored_at())
        self.out.scores.append(record)
        if ts >= rec.last_scored_ts:
            self._unscored.pop(rec.user_id, None)
            rec.last = last_score(ts, record)
        return x, s, horizon_s

    def complete_last(self) -> None:
        """Give the users whose newest score is an unrecorded event score its value, drivers
        and model as `_publish` would have (the model it picked then, never changed since)."""
        for user_id, row in self._unscored.items():
            rec = self.repo.get(user_id)
            if rec is None or rec.last.get("ts") != row.ts:
                continue
            x = row.x
            if x is None:  # the state is the one of that event (`_keep_features`)
                x = dict(zip(FEATURE_NAMES, rec.state.vector(row.ts), strict=True))
            s = self.scorer.score_with(row.model, row.segment, x)
            horizon_s = self.config.model.horizon_s(row.segment)
            record = score_record(user_id, row.segment, row.ts, s, horizon_s, "event", "")
            rec.last = last_score(row.ts, record)
            self.repo.put(rec)
        self._unscored.clear()

    def _alert(self, alert: Alert | None) -> None:
        if alert is not None:
            self.out.alerts.append(alert.to_dict())

    def _scored_at(self) -> str:
        # Formatting a timestamp costs more than scoring; one string per wall-clock ms.
        now = round(self._wall_clock(), 3)
        if now != self._last_wall[0]:
            self._last_wall = (now, rfc3339(now))
        return self._last_wall[1]

    # -- the watermark: daily scores and labels of silent users -------------------------------

    def sweep(self, stop: Callable[[], bool] | None = None) -> int:
        """Make the daily rows (at most `daily_rows_per_sweep`, fewer once `stop()` says so)
        and release the labels the watermark reached: once per batch, and while `rows_due` or
        after a model arrived, `reschedule` or a source marked idle. Returns the examples
        released. `stop` is the caller's budget (live: wall time, so that intake goes first);
        it is asked after each row, and the rows are the same whenever it stops."""
        before = len(self.out.examples)
        wm = self.watermark.value
        if wm != -math.inf:
            limit = self.config.daily_rows_per_sweep
            self._stop = stop
            try:
                self._advance(wm, math.inf if limit is None else limit)
            finally:
                self._stop = None
            # Live, the watermark also moves without an event (a source given up).
            if self.expiry.earliest < wm:
                self._expire(wm)
        return len(self.out.examples) - before

    @property
    def intake_until(self) -> float:
        """Events at or after this event time wait (live): a daily row not made yet reads its
        users' states as of its boundary, which the day ring rebuilds only while a state ran at
        most `AHEAD_DAYS` days past it (features/buckets.py). While a source or the model is
        waited for, intake would otherwise run on and rows made later would lose days of their
        window. Never before the watermark can pass the boundary (the lateness, a day on).
        inf while no row is scheduled. Held whether or not a row waits right now: made
        conditional, a catch-up released 61,023 events past the buffer's bound (the pauses
        flipped between two boundaries). So in a catch-up of history a valid event dated far
        ahead of the rest waits until event time reaches it, with its partition's later
        events; live it is at most `max_future_skew_s` (a day) ahead of the wall clock, inside
        the limit."""
        boundary = self.days.earliest
        if boundary == math.inf:
            return math.inf
        ring = (boundary // DAY_S + AHEAD_DAYS + 1) * DAY_S
        return max(ring, boundary + self.config.features.lateness_s + DAY_S)

    @property
    def rows_due(self) -> bool:
        """True while daily rows the watermark passed wait for a sweep (spread or held)."""
        return self.days.earliest <= self.watermark.value

    def decide_held(self) -> None:
        """The caller's limit passed: make the held rows with the models at hand (counted)."""
        if self.held is not None:
            self.out.held["daily_model_limit"] += 1
            self._decide_through = self.held
            self.held = None
            self.sweep()

    def _advance(self, wm: float, budget: float) -> None:
        """Boundary by boundary up to `wm`: open it (`_open`), then make its daily rows, at most
        `budget` of them in this call; the labels due before `wm` once every row is made."""
        while (boundary := self.days.earliest) <= wm:
            if boundary != self._opened and not self._open(boundary):
                return
            budget = self._sweep_days(boundary, budget)
            if budget <= 0 and self.days.earliest <= boundary:
                # Rows of this boundary remain (the next call goes on); labels go out as when
                # the rows are made at once.
                self._release_labels(self._release_limit(wm))
                return
            self._opened = None
        self.held = None
        self._release_labels(wm)
        self._decide_boundaries()

    def _open(self, boundary: float) -> bool:
        """Start the rows of `boundary`: release the labels due before it, then hold the rows
        while no installed snapshot has learned them (the trainer learns them and publishes
        one). False while held."""
        self._decide_boundaries()
        self._release_labels(boundary)
        if (
            self.config.model_as_of
            and boundary > self._decide_through
            and not self.scorer.covers(self.released_until)
        ):
            if self.held != boundary:
                self.out.held["daily_model"] += 1
            self.held = boundary
            return False
        self.held = None
        self._opened = boundary
        return True

    def _open_through(self, ts: float) -> bool:
        """Open every boundary <= `ts`, finishing the rows of the earlier ones at once (only
        when the watermark passed a second boundary while one was being spread). False if a
        boundary is held."""
        while self.days.earliest <= ts and not (
            self._opened is not None and ts < self._opened + DAY_S
        ):
            boundary = self.days.earliest
            if boundary == self._opened:
                self._sweep_days(boundary, math.inf)
                self._opened = None
            elif not self._open(boundary):
                return False
        return True

    def _behind(self, rec: UserRecord) -> bool:
        """True if `rec` has a daily row or a label the watermark passed that is not made yet."""
        wm = self.watermark.value
        if rec.next_daily is not None and rec.next_daily <= wm:
            return True
        due = rec.pending.next_due() if rec.pending is not None else None
        return due is not None and due < wm

    def _catch_up(self, rec: UserRecord) -> None:
        """Before a new event of `rec`'s user is applied, make their rows and release their
        labels that the watermark already passed, as if made at the event that moved it.

        While a boundary is spread, the rows not made yet read a state that no later event
        changed: a late event, a cancel or a segment change of a user is applied only after
        their rows as of every boundary the watermark passed, so each row and label is the one
        made at once. Rows of a held boundary wait as they always did.
        """
        wm = self.watermark.value
        user_id = rec.user_id
        while (boundary := rec.next_daily) is not None and boundary <= wm:
            if not self._open_through(boundary):
                return
            self.days.discard(user_id)
            rec.next_daily = self._daily(rec, boundary)
            self.days.schedule(user_id, rec.next_daily)
            self.repo.put(rec)
        # Before the user's event is applied, as when the rows are made at once.
        self._decide_boundaries()
        # Labels go out in the order made at once (the trainer learns in that order): all
        # users' labels up to the first boundary not opened, never this user's alone.
        while rec.pending is not None and (due := rec.pending.next_due()) is not None and due < wm:
            limit = self._release_limit(wm)
            if due >= limit and not self._open_through(due):
                return
            limit = self._release_limit(wm)
            if due >= limit:
                return  # not reached: cannot happen once every boundary <= due is opened
            self._release_labels(limit)

    def _release_limit(self, wm: float) -> float:
        """Labels due before this may be released now: before the first boundary not opened
        (the model as of a boundary being spread never learns labels due after it)."""
        opened = self._opened
        if opened is not None and self.days.earliest <= opened:
            return min(wm, opened + DAY_S)
        return min(wm, self.days.earliest)

    def _release_labels(self, wm: float) -> None:
        """Release the labels whose horizon ends before `wm`."""
        for user_id in self.due.pop_due(wm):
            rec = self.repo.get(user_id)
            if rec is None or rec.pending is None:
                continue
            segment = rec.pending.segment
            examples = rec.pending.due(wm, self.config.model.label_mode(segment))
            if examples and self.alerts.experiment is not None:
                # A customer an intervention saved would teach the model that customers like
                # it stay: treated customers' labels are not learned (model/experiment.py).
                horizon_s = self.config.model.horizon_s(segment)
                examples = [
                    e
                    for e in examples
                    if not self.alerts.treated(user_id, segment, rec.alerts, e.made_at, horizon_s)
                ]
            if examples:
                until = max(e.made_at for e in examples) + self.config.model.label_delay_s(segment)
                self.released_until[segment] = max(
                    self.released_until.get(segment, -math.inf), until
                )
            self.out.examples.extend(examples)
            if len(rec.pending) == 0:
                rec.pending = None
            else:
                self.due.schedule(user_id, rec.pending.next_due())
            self.repo.put(rec)

    def _sweep_days(self, boundary: float, budget: float) -> float:
        """Score users as of `boundary`, at most `budget` of them; returns the budget left
        (> 0: every row of the boundary is made)."""
        while budget > 0 and (entry := self.days.pop_next(boundary)) is not None:
            user_id = entry[1]
            rec = self.repo.get(user_id)
            if rec is None or rec.next_daily is None:
                continue  # erased, or the schedule ended
            if rec.next_daily != boundary:  # a stale entry (erased and back): follow the record
                self.days.schedule(user_id, rec.next_daily)
                continue
            rec.next_daily = self._daily(rec, boundary)
            self.days.schedule(user_id, rec.next_daily)
            self.repo.put(rec)
            budget -= 1
            if self._stop is not None and self._stop():
                budget = 0
        return budget

    def reschedule(self, records: Iterable[UserRecord]) -> None:
        """Rebuild the due, daily and expiry indexes from stored users (after recovery or a
        rebalance)."""
        self.due = DueIndex()
        self.days = DueIndex()
        self.expiry = DueIndex()
        after = self.config.expire_after_s
        # The rows made of a boundary not decided yet are their users' newest pending labels:
        # their scores are rebuilt from them, so a restart mid-boundary gives the percentiles
        # of a run without it (one score per user while rebuilding; a row whose label is gone,
        # by a late cancel or a segment change, is missing).
        newest: dict[float, dict[str, list[float]]] = {}
        for rec in records:
            if rec.pending is not None:
                self.due.schedule(rec.user_id, rec.pending.next_due())
                if (row := rec.pending.newest()) is not None:
                    made_at, score = row
                    newest.setdefault(made_at, {}).setdefault(rec.pending.segment, []).append(
                        stored_score(score)
                    )
            self.days.schedule(rec.user_id, rec.next_daily)
            if rec.alerts.candidate is not None:
                boundary = rec.alerts.candidate["boundary"]
                self._candidates.setdefault(boundary, set()).add(rec.user_id)
            if after is not None:
                self.expiry.schedule(rec.user_id, rec.state.clock + after)
        undecided = self._candidates.keys() | {self.days.earliest}
        self._day_scores = {
            boundary: {segment: sorted(scores) for segment, scores in by_segment.items()}
            for boundary, by_segment in newest.items()
            if boundary in undecided
        }

    # -- retention: users silent for longer than `expire_after_s` ------------------------------

    def _expired(self, rec: UserRecord, wm: float) -> bool:
        """True if `rec`'s user was silent for longer than the retention as of `wm` and has
        nothing left to make (no daily row scheduled, no label pending)."""
        after = self.config.expire_after_s
        return (
            after is not None
            and rec.state.clock + after < wm
            and rec.next_daily is None
            and rec.pending is None
        )

    def _expire(self, wm: float) -> None:
        """Remove the users whose retention ended before `wm` (event time: a replay removes
        the same users at the same event)."""
        after = self.config.expire_after_s
        for user_id in self.expiry.pop_due(wm):
            rec = self.repo.get(user_id)
            if rec is None:
                continue
            if self._expired(rec, wm):
                self._remove(user_id)
            elif after is not None:
                # Back since it was scheduled, or still scored or labelled: look again later.
                self.expiry.schedule(user_id, max(rec.state.clock + after, wm + DAY_S))

    def _remove(self, user_id: str) -> None:
        self.forget(user_id)
        self.repo.remove(user_id)

    def _decide_boundaries(self) -> None:
        """Publish the alerts (the budget's pick, with their percentile) of every boundary
        whose daily rows are all made (none is left in `days` at or before it), from the same
        candidates and scores live and in a replay."""
        while (pending := self._candidates.keys() | self._day_scores.keys()) and (
            boundary := min(pending)
        ) < self.days.earliest:
            self.settle(boundary, self._day_scores.pop(boundary, {}))

    def settle(self, boundary: float, day_scores: dict[str, list[float]] | None) -> None:
        """Publish the alerts of `boundary`'s candidates, their percentiles among
        `day_scores` (None: added later by whoever holds every user's scores)."""
        records = [
            rec
            for user_id in sorted(self._candidates.pop(boundary, set()))
            if (rec := self.repo.get(user_id)) is not None
            and rec.alerts.candidate is not None
            and rec.alerts.candidate["boundary"] == boundary
        ]
        self.out.alerts.extend(self.alerts.settle([rec.alerts for rec in records], day_scores))
        for rec in records:
            self.repo.put(rec)

    def forget(self, user_id: str) -> None:
        """Stop tracking an erased (or expired) user."""
        self._unscored.pop(user_id, None)
        self.due.discard(user_id)
        self.days.discard(user_id)
        self.expiry.discard(user_id)
