"""`UserState`: one user's rolling feature state in event time (pure, deterministic)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from enum import Enum

from churnstream.features import buckets as b
from churnstream.features.buckets import (
    LAST_EVENT,
    LAST_JOB,
    LAST_LOGIN,
    LAST_OK_SYNC,
    LAST_SYNC,
    LAST_VALUE,
    LAST_VIDEO,
    N_LAST,
    RING_DAYS,
    VALUE_CENTS,
    VALUE_EVENTS,
    WINDOW_DAYS,
    combine,
    id_bit,
    nested,
)
from churnstream.features.codec import decode, encode
from churnstream.features.config import FeatureConfig
from churnstream.features.derive import derive, derive_roi, subscribed_days, tenure_days
from churnstream.features.names import FEATURE_NAMES
from churnstream.stream.contract.events import (
    DAY_S,
    DocumentJob,
    Event,
    IntegrationSync,
    Lifecycle,
    Login,
    ValueEvent,
    VideoView,
)

_INF = float("inf")
_NEG_INF = float("-inf")
_NO_ID = -1  # never a crc32 value


class Applied(Enum):
    """Outcome of `UserState.apply`, for the caller's metrics."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    LATE_APPLIED = "late_applied"
    TOO_LATE = "too_late"


class UserState:
    """Rolling per-user features over a ring of UTC day buckets (28-day windows).

    The user's clock is the max event time seen. Windowed counters live in day buckets
    (`day = floor(ts / 86400)`); lifecycle facts and last-seen times are plain attributes.
    """

    __slots__ = (
        "_agg",
        "_clock",
        "_id_pos",
        "_id_set",
        "_vagg",
        "cancel_ts",
        "churned",
        "config",
        "day_before_ring",
        "days",
        "first_ts",
        "ids",
        "last",
        "lifecycle_ts",
        "offsets",
        "plan_price",
        "prev_sub",
        "price_before",
        "price_from",
        "renewal_before",
        "renewal_ts",
        "rows",
        "segment",
        "signup_before",
        "signup_ts",
        "sub_start_ts",
        "user_id",
    )

    def __init__(self, user_id: str, config: FeatureConfig) -> None:
        self.user_id = user_id
        self.config = config
        self.segment: str | None = None
        self.churned = False
        self.signup_ts: float | None = None
        self.cancel_ts: float | None = None
        self.plan_price: float | None = None
        # The price before the newest price change and when that change took effect: a daily
        # row as of a boundary before it reads the old price (`price_at`), however far the
        # state ran ahead (one change back).
        self.price_before: float | None = None
        self.price_from: float | None = None
        self.sub_start_ts: float | None = None  # start of the current subscription period
        self.prev_sub: tuple[float, float] | None = None  # last closed period (start, cancel)
        self.renewal_ts: float | None = None  # latest billing anchor: signup, renewal, reactivate
        # The signup and the billing anchor before the newest ones: a row as of a boundary
        # before a new signup (tenure) or an anchor off the cycle (days to renewal) reads the
        # old one (`signup_at`, `renewal_at`), however far the state ran ahead.
        self.signup_before: float | None = None
        self.renewal_before: float | None = None
        self.lifecycle_ts = _NEG_INF  # latest applied lifecycle event time
        self._clock = _NEG_INF
        self.first_ts = _INF
        self.last = [_NEG_INF] * N_LAST
        # Per `last` slot, the newest day with its event among the days out of the clock's ring
        # (-1: none): a row as of a boundary before a user's return after weeks away reads it,
        # however far the state ran past the boundary (those days are in no day row).
        self.day_before_ring = [-1] * N_LAST
        self.days = [-1] * RING_DAYS  # day number held by each slot
        self.rows: list[list[int] | None] = [None] * RING_DAYS
        self.ids = [_NO_ID] * config.dedupe_slots
        self._id_pos = 0
        # The hashes of `ids` (never `_NO_ID`) as a set: `h in ids` scanned all 64 slots at
        # every event. `ids` holds each hash once (a duplicate is never added), so a set
        # mirrors it exactly; `ids` stays what is stored (features.codec sets both).
        self._id_set: set[int] = set()
        self.offsets: dict[tuple[str, int], int] = {}
        # Window totals of the days before `now`'s day, (lo, now_day, 7-day, 28-day, 3-day): only a
        # late event (a day before now_day) changes them, so an event on the newest day, the
        # usual case, costs one row added to each instead of re-summing up to 28 rows.
        self._agg: tuple[int, int, list[int], list[int], list[int]] | None = None
        # The same for the value counters alone, (lo, now_day, cents 7-day, cents 28-day,
        # value events 28-day): what `roi_features_if` reads, at most every event of a replay.
        self._vagg: tuple[int, int, int, int, int] | None = None

    @classmethod
    def new(cls, user_id: str, config: FeatureConfig | None = None) -> UserState:
        """Empty state for `user_id`."""
        return cls(user_id, config or FeatureConfig())

    @property
    def clock(self) -> float:
        """Max event time seen (0.0 before the first event)."""
        return self._clock if self._clock != _NEG_INF else 0.0

    # -- idempotency -------------------------------------------------------------------------

    def seen_offset(self, source: str, partition: int, offset: int) -> bool:
        """True if a record at or below `offset` of (source, partition) was already marked."""
        hi = self.offsets.get((source, partition))
        return hi is not None and offset <= hi

    def mark_offset(self, source: str, partition: int, offset: int) -> None:
        """Remember `offset` as applied for (source, partition); keeps the highest."""
        key = (source, partition)
        hi = self.offsets.get(key)
        if hi is None or offset > hi:
            self.offsets[key] = offset

    # -- events ------------------------------------------------------------------------------

    def apply(self, event: Event) -> Applied:
        """Fold one event into the state; see docs/features.md for the lateness policy."""
        h = zlib.crc32(event.event_id.encode())
        id_set = self._id_set
        if h in id_set:
            return Applied.DUPLICATE
        ts = event.ts
        clock = self._clock
        on_time = clock - ts <= self.config.lateness_s
        cls = type(event)
        if cls is Lifecycle:
            # Lifecycle facts are not windowed: never too late, newest event time wins.
            status = Applied.APPLIED if on_time else Applied.LATE_APPLIED
            self._lifecycle(event)  # type: ignore[arg-type]
        else:
            handler = _HANDLERS.get(cls)
            if handler is None:  # an event kind that feeds no feature
                return Applied.APPLIED
            day = int(ts // DAY_S)
            if on_time:
                status = Applied.APPLIED
            elif day > int(clock // DAY_S) - WINDOW_DAYS:
                status = Applied.LATE_APPLIED
            else:
                return Applied.TOO_LATE
            idx = day % RING_DAYS
            row = self.rows[idx]
            # The fold works on copies that the state takes only once it has succeeded: an
            # event that raises half-way leaves the state as it was (all or nothing per event).
            row = [0] * b.N_COUNTERS if self.days[idx] != day or row is None else row.copy()
            last = self.last.copy()
            handler(event, row, last)
            if ts > last[LAST_EVENT]:
                last[LAST_EVENT] = ts
            # `_leave_ring` does nothing unless the clock moves to a later day: no call for
            # the usual event of the clock's own day.
            if ts > clock and clock != _NEG_INF and day != int(clock // DAY_S):
                self._leave_ring(ts)  # before the row of a day that leaves it is reused
            agg = self._agg
            if agg is not None and day < agg[1]:
                self._agg = None
            vagg = self._vagg
            if vagg is not None and day < vagg[1]:
                self._vagg = None
            self.rows[idx] = row
            self.days[idx] = day
            self.last = last
        ids = self.ids
        id_set.discard(ids[self._id_pos])  # the oldest leaves the ring (or `_NO_ID`)
        ids[self._id_pos] = h
        id_set.add(h)
        self._id_pos = (self._id_pos + 1) % len(ids)
        if ts > clock:
            if cls is Lifecycle:
                self._leave_ring(ts)
            self._clock = ts
        if ts < self.first_ts:
            self.first_ts = ts
        if event.segment and self.segment is None:
            self.segment = event.segment
        return status

    def _leave_ring(self, ts: float) -> None:
        """The clock moves to `ts`: per `last` slot, keep the newest day with its event among
        the days that leave the clock's ring (`day_before_ring`), before their rows are reused
        or stop counting."""
        clock = self._clock
        if ts <= clock or clock == _NEG_INF:
            return
        old_lo = int(clock // DAY_S) - (RING_DAYS - 1)
        new_lo = int(ts // DAY_S) - (RING_DAYS - 1)
        days, rows, out = self.days, self.rows, self.day_before_ring
        for day in range(old_lo, min(new_lo, old_lo + RING_DAYS)):
            idx = day % RING_DAYS
            row = rows[idx]
            if row is not None and days[idx] == day:
                for slot, seen in enumerate(_SEEN):
                    if day > out[slot] and seen(row):
                        out[slot] = day

    def _lifecycle(self, ev: Lifecycle) -> None:
        # Every value is worked out before the first assignment (all or nothing per event).
        ts = ev.ts
        kind = ev.event
        price = None if ev.plan_price is None else float(ev.plan_price)
        # The newest anchor wins whatever the arrival order (it is a max, not a last write).
        if kind in _ANCHORS and (self.renewal_ts is None or ts > self.renewal_ts):
            self.renewal_before, self.renewal_ts = self.renewal_ts, ts
        if ts < self.lifecycle_ts:
            # Older than what we know: only fill facts still unknown.
            if self.plan_price is None and price is not None:
                self.plan_price = price
            if kind == "signup" and self.signup_ts is None:
                self.signup_ts = ts
            if self.segment is None and ev.segment:
                self.segment = ev.segment
            return
        self.lifecycle_ts = ts
        if ev.segment:
            self.segment = ev.segment
        if price is not None and price != self.plan_price:
            self.price_before, self.price_from = self.plan_price, ts
            self.plan_price = price
        if kind == "signup" or kind == "reactivate":
            if kind == "signup" and ts != self.signup_ts:
                self.signup_before, self.signup_ts = self.signup_ts, ts
            if self.churned or self.sub_start_ts is None:
                if self.churned and self.sub_start_ts is not None and self.cancel_ts is not None:
                    self.prev_sub = (self.sub_start_ts, self.cancel_ts)
                self.sub_start_ts = ts
            self.churned = False
        elif kind == "cancel":
            self.churned = True
            self.cancel_ts = ts

    # -- features ----------------------------------------------------------------------------

    def vector(self, now: float | None = None) -> list[float]:
        """Feature values in `FEATURE_NAMES` order at event time `now` (default: the clock)."""
        if now is None:
            now = self.clock
        nd, lo, agg, r1 = self._windows(now)
        if r1 is None:
            return derive(self, now, nd, None, agg[4], agg[2], agg[3], lo)
        w3, w7, w28 = combine(agg[4], r1), combine(agg[2], r1), combine(agg[3], r1)
        return derive(self, now, nd, r1, w3, w7, w28, lo)

    def roi_features(self, now: float | None = None) -> dict[str, float]:
        """The features of `ROI_FEATURES` (what a `roi_drop` decision reads), equal to those of
        `vector(now)` bit for bit, without deriving the others (a fifth of a replay's time)."""
        features = self.roi_features_if(self.clock if now is None else now, _NEG_INF, _NEG_INF)
        assert features is not None  # nothing is below -inf
        return features

    def roi_features_if(
        self, now: float, min_tenure_days: float, min_value_events: float
    ) -> dict[str, float] | None:
        """`roi_features(now)`, or None when its `tenure_days` is below `min_tenure_days` or
        its `value_events_28d` below `min_value_events` (a `roi_drop` reading would be
        refused): those two are read first, so about half of a replay's event scores derive
        nothing else."""
        if tenure_days(self, now) < min_tenure_days:
            return None
        # `_windows`, for the value counters only: summing the 25 counters of three windows
        # again at each new day was most of this.
        nd, lo, r1 = self._window_days(now)
        vagg = self._vagg
        if vagg is None or vagg[0] != lo or vagg[1] != nd:
            vagg = self._vagg = self._value_totals_before(lo, nd)
        _, _, cents7, cents28, n28 = vagg
        if r1 is not None:
            # Integer counters: the same sums as `combine` and `_totals_before`.
            cents7 += r1[VALUE_CENTS]
            cents28 += r1[VALUE_CENTS]
            n28 += r1[VALUE_EVENTS]
        if float(n28) < min_value_events:
            return None
        return derive_roi(self, now, nd, cents7, cents28, n28, lo)

    def _value_totals_before(self, lo: int, nd: int) -> tuple[int, int, int, int, int]:
        """`_totals_before(lo, nd)`'s value cents of the 7- and 28-day windows and value
        events of the 28-day window (integer sums: equal whatever the grouping)."""
        lo7 = nd - 6
        cents7 = cents28 = n28 = 0
        for day, row in zip(self.days, self.rows, strict=True):
            if row is not None and lo <= day < nd:
                cents = row[VALUE_CENTS]
                cents28 += cents
                n28 += row[VALUE_EVENTS]
                if day >= lo7:
                    cents7 += cents
        return lo, nd, cents7, cents28, n28

    def _windows(
        self, now: float
    ) -> tuple[int, int, tuple[int, int, list[int], list[int], list[int]], list[int] | None]:
        """(now's day, the 28-day window's first day, the totals of the window's days before
        now's day, now's day row or None) for `vector(now)`."""
        nd, lo, r1 = self._window_days(now)
        agg = self._agg
        if agg is None or agg[0] != lo or agg[1] != nd:
            agg = self._agg = self._totals_before(lo, nd)
        return nd, lo, agg, r1

    def _window_days(self, now: float) -> tuple[int, int, list[int] | None]:
        """(now's day, the 28-day window's first day, now's day row or None): the bounds
        `_windows` and `roi_features_if` total the days before now's day in."""
        nd = int(now // DAY_S)
        # Days that fell out of the clock's ring are expired even when `now` is in the past.
        lo = nd - (WINDOW_DAYS - 1)
        if self._clock != _NEG_INF:
            lo = max(lo, int(self._clock // DAY_S) - (WINDOW_DAYS - 1))
        idx = nd % RING_DAYS
        r1 = self.rows[idx]
        if r1 is None or self.days[idx] != nd or nd < lo:
            r1 = None
        return nd, lo, r1

    def vector_at(self, boundary: float) -> list[float]:
        """Feature values as of event time `boundary`, from the complete UTC days before it.

        Events at or after `boundary`'s UTC day are ignored even when the state holds them (the
        daily score is made once the watermark passes the boundary, which lags the newest
        events). Windows end with the day before (`*_1d` is that day); `days_since_*` count
        whole days: 0 when that day had the event, 1 when only the day before had it. The 28-day
        windows hold the 27 complete days before the boundary: the boundary's own day, often
        already in the state, takes the slot of the 28th, and a row must not depend on how far
        the state ran ahead (live and replay sweep at different times): the ring keeps
        `AHEAD_DAYS` more days for that, and the plan price is the one before a change made
        after `boundary` (`price_at`), as are the signup and billing anchor (`signup_at`,
        `renewal_at`). A `days_since_*` whose newest event is after `boundary` and that had none
        in the window reads the newest day before the window that had it (the day rows still in
        the ring, else `day_before_ring`).
        """
        bd = int(boundary // DAY_S)
        end = bd - 1
        lo = bd - (WINDOW_DAYS - 1)
        if self._clock != _NEG_INF:
            # A day out of the clock's ring is not stored (features.codec) even while its slot
            # was not reused yet: a decoded state and the one in memory read the same.
            lo = max(lo, int(self._clock // DAY_S) - (RING_DAYS - 1))
        # The day rows of [lo, end], newest first, and each window's share of them: one walk
        # down the days (a day's row can only be in its own slot) instead of a sort and a
        # pass per window (a daily row's vector is ~a fifth of a replay).
        days, ring = self.days, self.rows
        rows: list[tuple[int, list[int]]] = []
        inner: list[list[int]] = []  # the 3-day window
        middle: list[list[int]] = []  # the rest of the 7-day window
        outer: list[list[int]] = []  # the rest of the 28-day window
        for d in range(end, lo - 1, -1):
            idx = d % RING_DAYS
            r = ring[idx]
            if r is not None and days[idx] == d:
                rows.append((d, r))
                (inner if d > end - 3 else middle if d > end - 7 else outer).append(r)
        r1 = rows[0][1] if rows and rows[0][0] == end else None
        w3, w7, w28 = nested(inner, middle, outer)
        last = []
        for slot, seen in enumerate(_SEEN):
            t = self.last[slot]
            if t < boundary:
                day = int(t // DAY_S) if t != _NEG_INF else None
            else:  # the newest is after the boundary: the newest day before it that had one
                day = next((d for d, r in rows if seen(r)), None)
                if day is None:
                    day = self._seen_before(slot, lo)  # before the window
            # As a time whole days before `boundary`, so derive() counts whole days.
            last.append(_NEG_INF if day is None else boundary - max(0, end - day) * DAY_S)
        return derive(self, boundary, end, r1, w3, w7, w28, lo, last)

    def _seen_before(self, slot: int, lo: int) -> int | None:
        """The newest day before day `lo` with the event of `LAST_*` slot `slot`: from the day
        rows still in the clock's ring, else from the days that left it."""
        seen = _SEEN[slot]
        ring_lo = int(self._clock // DAY_S) - (RING_DAYS - 1)
        day = max(
            (d for d, r in zip(self.days, self.rows, strict=True)
             if r is not None and ring_lo <= d < lo and seen(r)),
            default=None,
        )  # fmt: skip
        if day is None and self.day_before_ring[slot] >= 0:
            day = self.day_before_ring[slot]
        return day

    def _totals_before(self, lo: int, nd: int) -> tuple[int, int, list[int], list[int], list[int]]:
        lo7 = nd - 6
        lo3 = nd - 2
        r3: list[list[int]] = []  # the rows of each window not in the smaller one
        r7: list[list[int]] = []
        r28: list[list[int]] = []
        for day, row in zip(self.days, self.rows, strict=True):
            if row is not None and lo <= day < nd:
                if day >= lo3:
                    r3.append(row)
                elif day >= lo7:
                    r7.append(row)
                else:
                    r28.append(row)
        w3, w7, w28 = nested(r3, r7, r28)
        return lo, nd, w7, w28, w3

    def features(self, now: float | None = None) -> dict[str, float]:
        """Feature dict with exactly the keys of `FEATURE_NAMES`, in that order."""
        return dict(zip(FEATURE_NAMES, self.vector(now), strict=True))

    def seen_between(self, slot: int, lo_day: int, hi_day: int) -> bool:
        """Whether a day row of [lo_day, hi_day] had the event of `LAST_*` slot `slot` (days
        still in the clock's ring only, as `vector_at`)."""
        seen = _SEEN[slot]
        if self._clock != _NEG_INF:
            lo_day = max(lo_day, int(self._clock // DAY_S) - (RING_DAYS - 1))
        return any(
            r is not None and lo_day <= d <= hi_day and seen(r)
            for d, r in zip(self.days, self.rows, strict=True)
        )

    def price_at(self, ts: float) -> float | None:
        """The plan price at event time `ts`: the one before the newest change if that change
        is later than `ts` (earlier changes are not kept)."""
        since = self.price_from
        return self.price_before if since is not None and since > ts else self.plan_price

    def signup_at(self, ts: float) -> float | None:
        """The signup as of event time `ts`: the one before the newest if that is later."""
        newest = self.signup_ts
        return self.signup_before if newest is not None and newest > ts else newest

    def renewal_at(self, ts: float) -> float | None:
        """The billing anchor as of event time `ts`: the one before the newest if that is
        later (an anchor on the cycle gives the same phase either way)."""
        newest = self.renewal_ts
        return self.renewal_before if newest is not None and newest > ts else newest

    def subscribed_days(self, lo_day: int, hi_day: int) -> int:
        """Days in [lo_day, hi_day] covered by a subscription period (whole days)."""
        return subscribed_days(self, lo_day, hi_day)

    # -- serialization -----------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Compact versioned binary encoding (see features.codec)."""
        return encode(self)

    @classmethod
    def from_bytes(cls, data: bytes, config: FeatureConfig | None = None) -> UserState:
        """Inverse of `to_bytes`; raises ValueError on an unknown version or corrupt data."""
        return decode(data, cls, config or FeatureConfig())


# -- per-kind folds (module functions: one dict lookup, no bound-method allocation) ---------
# Each folds one event into a day row and the `last` times, both copies owned by `apply`.


def _video(ev: VideoView, row: list[int], last: list[float]) -> None:
    watched = ev.watched_s
    duration = ev.duration_s
    row[b.ACTIVE] = 1
    row[b.VIDEOS] += 1
    row[b.WATCH_DS] += round(watched * 10)
    frac = watched / duration if duration > 0 else 0.0
    row[b.WATCH_FRAC_BP] += round(min(frac, 1.0) * 10000)
    if ev.completed:
        row[b.VIDEOS_DONE] += 1
    elif frac < 0.25:
        row[b.ABANDONED] += 1
    row[b.SEEKS] += ev.seeks
    row[b.REWINDS] += ev.rewinds
    row[b.PAUSES] += ev.pauses
    row[b.VIDEO_BITS] |= id_bit(ev.video_id)
    if ev.ts > last[LAST_VIDEO]:
        last[LAST_VIDEO] = ev.ts


def _login(ev: Login, row: list[int], last: list[float]) -> None:
    if ev.success:
        row[b.ACTIVE] = 1
        row[b.LOGINS] += 1
        if ev.ts > last[LAST_LOGIN]:
            last[LAST_LOGIN] = ev.ts
    else:
        row[b.FAILED_LOGINS] += 1


def _sync(ev: IntegrationSync, row: list[int], last: list[float]) -> None:
    row[b.ACTIVE] = 1
    row[b.SYNCS] += 1
    if not ev.ok:
        row[b.SYNC_ERRORS] += 1
    elif ev.ts > last[LAST_OK_SYNC]:
        last[LAST_OK_SYNC] = ev.ts
    if ev.latency_ms is not None:
        row[b.LATENCY_MS] += round(ev.latency_ms)
        row[b.LATENCY_N] += 1
    row[b.INTEGRATION_BITS] |= id_bit(ev.integration)
    if ev.ts > last[LAST_SYNC]:
        last[LAST_SYNC] = ev.ts


def _job(ev: DocumentJob, row: list[int], last: list[float]) -> None:
    row[b.ACTIVE] = 1
    row[b.JOBS] += 1
    if not ev.ok:
        row[b.JOBS_FAILED] += 1
    row[b.DOCUMENTS] += ev.documents
    if ev.processing_ms is not None:
        ms = round(ev.processing_ms)
        row[b.PROC_MS] += ms
        row[b.PROC_N] += 1
        if ms > row[b.PROC_MS_MAX]:
            row[b.PROC_MS_MAX] = ms
    if ev.ts > last[LAST_JOB]:
        last[LAST_JOB] = ev.ts


def _value(ev: ValueEvent, row: list[int], last: list[float]) -> None:
    row[b.VALUE_CENTS] += round(ev.value * 100)
    row[b.VALUE_EVENTS] += 1
    if ev.value > 0 and ev.ts > last[LAST_VALUE]:
        last[LAST_VALUE] = ev.ts


# Lifecycle events that start a billing cycle (renewals follow every 30 days from the latest).
_ANCHORS = frozenset(("signup", "renewal", "reactivate"))

# Whether a day row had the event of each `LAST_*` slot, in slot order (for `vector_at`).
_SEEN: tuple[Callable[[list[int]], bool], ...] = (
    lambda r: True,  # a row exists only for a day with a behaviour or value event
    lambda r: r[b.LOGINS] > 0,
    lambda r: r[b.VIDEOS] > 0,
    lambda r: r[b.SYNCS] > 0,
    lambda r: r[b.SYNCS] > r[b.SYNC_ERRORS],
    lambda r: r[b.JOBS] > 0,
    lambda r: r[b.VALUE_CENTS] > 0,
)
if len(_SEEN) != N_LAST:
    raise ImportError("features.state._SEEN is out of date with the LAST_* slots")

_HANDLERS: dict[type, Callable[[Event, list[int], list[float]], None]] = {
    VideoView: _video,  # type: ignore[dict-item]
    Login: _login,  # type: ignore[dict-item]
    IntegrationSync: _sync,  # type: ignore[dict-item]
    DocumentJob: _job,  # type: ignore[dict-item]
    ValueEvent: _value,  # type: ignore[dict-item]
}
