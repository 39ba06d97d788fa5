"""Delayed labels: per-user pending prediction snapshots and a per-worker due-time index.

Contract: a prediction made at t (segment horizon H) is labelled once event time (the low
watermark) passes t + H. What counts as churn in (t, t + H] is the segment's label mode:
`cancel` (a cancel), `inactivity` (no activity of the segment's kind) or `either`.

`quiet` (Q quiet days, `ModelConfig.quiet_days`): positive if a cancel, or the last activity
before a quiet spell of at least Q days, lies in (t, t + H]; known, so released, once event time
passes t + H + Q; dropped (never learned) if the row lies inside such a spell that had begun
before it (the user had already left). Whole UTC days of the segment's activity, as the daily
rows count `days_since_*` (docs/model.md "The quiet label").
"""

from __future__ import annotations

import heapq
import math
import struct
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from churnstream.features.buckets import LAST_JOB, LAST_LOGIN, LAST_SYNC, LAST_VIDEO
from churnstream.features.names import DAYS_SINCE_CAP, FEATURE_NAMES
from churnstream.stream.contract.events import (
    DAY_S,
    DocumentJob,
    Event,
    IntegrationSync,
    Login,
    VideoView,
)

if TYPE_CHECKING:
    from churnstream.features.state import UserState

LabelMode = Literal["cancel", "inactivity", "either", "quiet"]
LABEL_MODES: Final = ("cancel", "inactivity", "either", "quiet")
DEFAULT_QUIET_DAYS: Final = 14
# A quiet snapshot keeps its horizon and quiet days as one 64-bit day mask, and reads the days
# since the last activity from its row's `days_since_*`, capped at DAYS_SINCE_CAP: horizon days
# + quiet days must stay below both.
MAX_QUIET_SPAN_DAYS: Final = int(DAYS_SINCE_CAP)

# Activity of each segment's kind (the `inactivity` label): using the product, e.g. a learner
# logging in or watching; paying or failing to log in is not activity. Unknown segments: any.
_SLOT: Final[dict[type, int]] = {
    Login: LAST_LOGIN,
    VideoView: LAST_VIDEO,
    IntegrationSync: LAST_SYNC,
    DocumentJob: LAST_JOB,
}
_ACTIVITY: Final[dict[str, tuple[type, ...]]] = {
    "course": (Login, VideoView),
    "saas": (Login, IntegrationSync),
    "docs": (Login, DocumentJob),
}


# The row features holding the whole days since each kind of activity (same order as _SLOT).
_SINCE: Final[dict[type, int]] = {
    Login: FEATURE_NAMES.index("days_since_login"),
    VideoView: FEATURE_NAMES.index("days_since_video"),
    IntegrationSync: FEATURE_NAMES.index("days_since_sync"),
    DocumentJob: FEATURE_NAMES.index("days_since_job"),
}


_ANY_ACTIVITY: Final = tuple(_SLOT)  # an unknown segment's (built once: read per event)


def is_activity(event: Event, segment: str) -> bool:
    """Whether `event` is activity of `segment`'s kind."""
    kinds = _ACTIVITY.get(segment, _ANY_ACTIVITY)
    return isinstance(event, kinds) and (not isinstance(event, Login) or event.success)


def active_within(state: UserState, segment: str, ts: float, horizon_s: float) -> bool:
    """Whether `state` shows activity of `segment`'s kind in (ts, ts + horizon_s]: from the
    last-seen times while the newest is inside, else from the day rows of ts's day to the day
    before ts + horizon_s (whole days). The state may have run past the horizon before the row
    at `ts` is made (the live worker makes rows later than `replay` when it waits); a later
    activity must not count."""
    slots = [_SLOT[k] for k in _ACTIVITY.get(segment, _ANY_ACTIVITY)]
    newest = max(state.last[s] for s in slots)
    if newest <= ts + horizon_s:
        return newest > ts
    lo, hi = int(ts // DAY_S), int((ts + horizon_s) // DAY_S) - 1
    return any(state.seen_between(s, lo, hi) for s in slots)


def quiet_start(
    state: UserState,
    segment: str,
    boundary: float,
    horizon_s: float,
    quiet_days: int,
    vector: Sequence[float],
) -> tuple[int, int]:
    """What a `quiet` label needs to know at the row made as of `boundary` from `vector`:
    (whole days since the segment's last activity before the row's day, read from the row's
    own `days_since_*`; bit i set: activity on the i-th day from the row's day, over its horizon
    and quiet days, from the day rows the state may already hold past the boundary). Later
    events come through `PendingLabels.on_activity`; both are maxima/ORs of the same days, so
    the label does not depend on how far the state ran ahead (live) or not (replay)."""
    kinds = _ACTIVITY.get(segment, _ANY_ACTIVITY)
    gap = int(min(vector[_SINCE[k]] for k in kinds))
    first = int(boundary // DAY_S)
    span = int((boundary + horizon_s) // DAY_S) - first + quiet_days
    slots = [_SLOT[k] for k in kinds]
    newest = max(state.last[s] for s in slots)
    mask = 0
    if newest >= first * DAY_S:  # only live, or a late boundary: the state ran ahead
        last_day = min(first + span - 1, int(newest // DAY_S))
        for i in range(last_day - first + 1):
            if any(state.seen_between(s, first + i, first + i) for s in slots):
                mask |= 1 << i
    return gap, mask


# Format 3 turned the snapshot's last byte from "positive" into flags; a format-2 positive (1)
# is exactly a format-3 "cancelled", so both decode with one layout. Format 4 (written only
# when a snapshot is a `quiet` one, so states of the other modes stay format 3 and readable by
# older workers) adds after such a snapshot's head its quiet days, gap and day mask.
_FORMAT: Final = 3
_FORMAT_QUIET: Final = 4
_READS: Final = (2, 3, 4)
_CANCELLED: Final = 1
_ACTIVE: Final = 2
_QUIET: Final = 4
_HEAD = struct.Struct("<BHH")  # format, len(user_id), len(segment)
_COUNT = struct.Struct("<H")
# day, made_at, due, score, model_version, n features
_SNAP = struct.Struct("<qddfQHB")  # ..., n features, flags (_CANCELLED | _ACTIVE | _QUIET)
_QUIET_EXT = struct.Struct("<BBQ")  # quiet days, gap days, day mask
# array("f") bytes are native-endian; the table payload is little-endian everywhere.
_LITTLE: Final = array("H", [1]).tobytes() == b"\x01\x00"


def _swapped(vec: array) -> bytes:
    copy = array("f", vec)
    copy.byteswap()
    return copy.tobytes()


@dataclass(slots=True)
class Example:
    """A labelled prediction snapshot, sent to the trainer via `churn.examples`."""

    user_id: str
    segment: str
    made_at: float
    features: list[float]
    label: bool
    score: float
    model_version: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (floats, bools, strings only)."""
        return {
            "user_id": self.user_id,
            "segment": self.segment,
            "made_at": self.made_at,
            "features": list(self.features),
            "label": self.label,
            "score": self.score,
            "model_version": self.model_version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Example:
        """Inverse of `to_dict`; raises KeyError/TypeError/ValueError on malformed input."""
        return cls(
            user_id=str(d["user_id"]),
            segment=str(d["segment"]),
            made_at=float(d["made_at"]),
            features=[float(v) for v in d["features"]],
            label=bool(d["label"]),
            score=float(d["score"]),
            model_version=int(d["model_version"]),
        )


@dataclass(slots=True)
class _Snapshot:
    made_at: float
    due: float
    vector: array  # array('f'): 4 bytes per feature, half of a list of floats' payload
    score: float
    version: int
    cancelled: bool = False  # the user cancelled inside the horizon; released at `due`
    active: bool = False  # the user was active inside the horizon
    # A `quiet` snapshot (quiet > 0): due = made_at + horizon + quiet days; `gap` whole days
    # since the last activity before the row's day; bit i of `mask`: activity on day i from it.
    quiet: int = 0
    gap: int = 0
    mask: int = 0

    @property
    def horizon_end(self) -> float:
        return self.due - self.quiet * DAY_S

    def see(self, ts: float) -> None:
        """An activity at `ts` (any arrival order: a max and an OR of whole days)."""
        if self.made_at < ts <= self.horizon_end:
            self.active = True
        if self.quiet:
            i = int(ts // DAY_S) - int(self.made_at // DAY_S)
            if i < 0:
                self.gap = min(self.gap, -i - 1)
            elif i < self._span():
                self.mask |= 1 << i

    def _span(self) -> int:
        first = int(self.made_at // DAY_S)
        return int(self.horizon_end // DAY_S) - first + self.quiet

    def label(self, mode: LabelMode) -> bool | None:
        """The label; None: not learned (a `quiet` row inside a spell begun before it)."""
        if self.quiet:
            return self._quiet_label()
        if mode == "cancel":
            return self.cancelled
        if mode == "inactivity":
            return not self.active
        # "either", and "quiet" for a snapshot made before the mode was switched on
        return self.cancelled or not self.active

    def _quiet_label(self) -> bool | None:
        q, g, m = self.quiet, self.gap, self.mask
        # The last activity before the row was g whole days before its day: a spell of q days
        # began there unless an activity followed within q days of it (bits 0 .. q - g - 1).
        if g >= q or m & ((1 << (q - g)) - 1) == 0:
            return None
        if self.cancelled:
            return True
        days = int(self.horizon_end // DAY_S) - int(self.made_at // DAY_S)
        quiet_after = (1 << q) - 1
        return any(m >> i & 1 and not (m >> (i + 1)) & quiet_after for i in range(days))


_F32: Final = struct.Struct("<f")


def stored_score(score: float) -> float:
    """`score` at the precision a pending label keeps it (float32)."""
    return float(_F32.unpack(_F32.pack(score))[0])


class PendingLabels:
    """Unlabelled prediction snapshots of ONE user, at most one per UTC day (the daily rows).

    Bounded by construction: a snapshot is removed once labelled and its due time is at most
    horizon_days (+ quiet days for a `quiet` label) after it was made, so a user holds <=
    horizon_days + quiet days + 1 snapshots. Serialised cost: ~21 B + per snapshot 35 B
    (+ 10 B for a `quiet` one) + 4 B per feature (see docs/model.md).

    The segment is fixed for the object's life; if a user's segment changes the engine should
    `clear()` (the stored vectors and horizon belong to the old segment).
    """

    __slots__ = ("_next", "_snaps", "segment", "user_id")

    def __init__(self, user_id: str, segment: str) -> None:
        self.user_id = user_id
        self.segment = segment
        self._snaps: dict[int, _Snapshot] = {}
        # `next_due` until the snapshots change (math.nan: to work out); the engine asks it
        # at every event of the user.
        self._next: float | None = math.nan

    def __len__(self) -> int:
        return len(self._snaps)

    def add(
        self,
        ts: float,
        vector: Sequence[float],
        score: float,
        version: int,
        horizon_s: float,
        *,
        cancelled: bool = False,
        active: bool = False,
        quiet: tuple[int, int, int] | None = None,
    ) -> bool:
        """Store the prediction made at `ts`, replacing any earlier one of the same day.

        `cancelled` / `active`: what the caller already knows of (ts, ts + horizon_s], since
        the state may hold events newer than the prediction; later ones arrive through
        `on_cancel` / `on_activity`. `quiet`: (quiet days, gap, mask) of a `quiet` label
        (`quiet_start`), released at ts + horizon_s + quiet days. Returns True when a new day
        was opened.
        """
        day = int(ts // DAY_S)
        is_new = day not in self._snaps
        q, gap, mask = quiet if quiet is not None else (0, 0, 0)
        due = ts + horizon_s + q * DAY_S
        # A new snapshot can only lower the earliest due (no min over all of them at the
        # `next_due` after each daily row); a replaced one may have been it: work it out again.
        nxt = self._next
        if not is_new or nxt != nxt:  # NaN: not known
            nxt = math.nan
        elif nxt is None or due < nxt:
            nxt = due
        self._next = math.nan  # until the snapshot is stored (the constructor may raise)
        self._snaps[day] = _Snapshot(
            made_at=ts,
            due=due,
            vector=array("f", vector),
            score=score,
            version=version,
            cancelled=cancelled,
            active=active,
            quiet=q,
            gap=min(gap, 255),
            mask=mask,
        )
        self._next = nxt
        return is_new

    def on_activity(self, ts: float) -> None:
        """Mark the snapshots whose horizon holds an activity at `ts` (made_at < ts <= their
        horizon's end); a `quiet` one also keeps the day (an earlier one: its last activity)."""
        for snap in self._snaps.values():
            # A plain (not `quiet`) snapshot only records `active`: once set, nothing changes
            # it, so skip the call (most pending rows after the user's first activity; an
            # activity scanned ~10 rows each time, ~6% of a replay).
            if snap.quiet or not snap.active:
                snap.see(ts)

    def on_cancel(self, cancel_ts: float) -> None:
        """Label the pending snapshots at a cancel; they are released by `due` as usual.

        made_at < cancel_ts <= due -> positive; due < cancel_ts -> negative (the horizon
        passed without churn, the watermark just had not caught up yet); made_at >= cancel_ts
        (a late cancel older than the prediction) -> dropped: the user had already churned,
        so that prediction should not have been made and teaches nothing.

        Positives are known at the cancel but still wait for their horizon: released at once,
        every positive would reach the learner up to a horizon before the negatives of the same
        prediction time, and an early model would learn that "everyone churns". Releasing each
        label at made_at + horizon, whatever its value, keeps the learning stream unbiased.
        """
        for day in [d for d, s in self._snaps.items() if s.made_at >= cancel_ts]:
            del self._snaps[day]
        self._next = math.nan
        for snap in self._snaps.values():
            if snap.made_at < cancel_ts <= snap.horizon_end:
                snap.cancelled = True

    def due(self, watermark: float, mode: LabelMode = "cancel") -> list[Example]:
        """Labelled examples of snapshots whose horizon event time has passed (due < watermark).

        Strict: at watermark == due a cancel or activity exactly at due could still arrive and
        would count, so the snapshot stays pending. `mode` is the segment's label mode; a
        `quiet` snapshot keeps the rule it was made with, and one inside a quiet spell that had
        begun before its row is dropped (no example).
        """
        ripe = [d for d, s in self._snaps.items() if s.due < watermark]
        ripe.sort()
        self._next = math.nan
        out = []
        for d in ripe:
            snap = self._snaps.pop(d)
            label = snap.label(mode)
            if label is not None:
                out.append(self._example(snap, label=label))
        return out

    def next_due(self) -> float | None:
        """Earliest due time still pending (for `DueIndex.schedule`)."""
        nxt = self._next
        if nxt is not None and nxt != nxt:  # NaN: not known
            nxt = self._next = min((s.due for s in self._snaps.values()), default=None)
        return nxt

    def newest(self) -> tuple[float, float] | None:
        """(made_at, score) of the newest pending snapshot, if any."""
        if not self._snaps:
            return None
        snap = self._snaps[max(self._snaps)]
        return snap.made_at, snap.score

    def clear(self) -> None:
        """Forget everything (e.g. re-signup after a cancel, segment change, erasure)."""
        self._snaps.clear()
        self._next = math.nan

    def _ordered(self) -> Iterable[_Snapshot]:
        return (self._snaps[d] for d in sorted(self._snaps))

    def _example(self, snap: _Snapshot, *, label: bool) -> Example:
        return Example(
            user_id=self.user_id,
            segment=self.segment,
            made_at=snap.made_at,
            features=snap.vector.tolist(),
            label=label,
            score=float(snap.score),
            model_version=snap.version,
        )

    # -- persistence (Faust table value, so compact and pickle-free) --------------------------

    def to_bytes(self) -> bytes:
        """Compact little-endian binary form."""
        uid = self.user_id.encode()
        seg = self.segment.encode()
        fmt = _FORMAT_QUIET if any(s.quiet for s in self._snaps.values()) else _FORMAT
        parts = [_HEAD.pack(fmt, len(uid), len(seg)), uid, seg, _COUNT.pack(len(self._snaps))]
        for day in sorted(self._snaps):
            s = self._snaps[day]
            flags = (_CANCELLED if s.cancelled else 0) | (_ACTIVE if s.active else 0)
            flags |= _QUIET if s.quiet else 0
            parts.append(
                _SNAP.pack(day, s.made_at, s.due, s.score, s.version, len(s.vector), flags)
            )
            if s.quiet:
                parts.append(_QUIET_EXT.pack(s.quiet, s.gap, s.mask))
            parts.append(s.vector.tobytes() if _LITTLE else _swapped(s.vector))
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> PendingLabels:
        """Inverse of `to_bytes`; raises ValueError on a foreign or truncated payload."""
        try:
            fmt, nu, ns = _HEAD.unpack_from(data, 0)
            if fmt not in _READS:
                raise ValueError(f"unknown PendingLabels format {fmt}")
            pos = _HEAD.size
            uid = data[pos : pos + nu].decode()
            pos += nu
            seg = data[pos : pos + ns].decode()
            pos += ns
            (count,) = _COUNT.unpack_from(data, pos)
            pos += _COUNT.size
            out = cls(uid, seg)
            for _ in range(count):
                day, made_at, due, score, version, n, flags = _SNAP.unpack_from(data, pos)
                pos += _SNAP.size
                quiet = gap = mask = 0
                if flags & _QUIET and fmt >= _FORMAT_QUIET:
                    quiet, gap, mask = _QUIET_EXT.unpack_from(data, pos)
                    pos += _QUIET_EXT.size
                vec = array("f")
                vec.frombytes(data[pos : pos + 4 * n])
                if not _LITTLE:
                    vec.byteswap()
                pos += 4 * n
                out._snaps[day] = _Snapshot(  # `_next` is still NaN
                    made_at,
                    due,
                    vec,
                    score,
                    version,
                    bool(flags & _CANCELLED),
                    bool(flags & _ACTIVE),
                    quiet,
                    gap,
                    mask,
                )
        except (struct.error, UnicodeDecodeError) as exc:
            raise ValueError(f"corrupt PendingLabels payload: {exc}") from exc
        if pos != len(data):
            raise ValueError("trailing bytes in PendingLabels payload")
        return out


class DueIndex:
    """Per-worker min-heap of (due_ts, user_id): finds silent users' negatives without a scan.

    Keeps at most one live entry per user (its earliest pending due). Re-scheduling earlier
    pushes a new entry and the old one becomes stale; stale entries are skipped when popped
    (lazy deletion). Not persisted: rebuild after recovery by scheduling every restored
    user's `PendingLabels.next_due()`.
    """

    __slots__ = ("_heap", "_scheduled")

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []
        self._scheduled: dict[str, float] = {}

    def __len__(self) -> int:
        """Users with a live entry."""
        return len(self._scheduled)

    @property
    def heap_size(self) -> int:
        """Entries including stale ones (memory bound check)."""
        return len(self._heap)

    def schedule(self, user_id: str, due_ts: float | None) -> None:
        """Make sure `user_id` is visited once the watermark passes `due_ts` (None: no-op)."""
        if due_ts is None:
            return
        current = self._scheduled.get(user_id)
        if current is not None and current <= due_ts:
            return
        self._scheduled[user_id] = due_ts
        heapq.heappush(self._heap, (due_ts, user_id))
        if len(self._heap) > 2 * len(self._scheduled) + 64:
            self._compact()

    def discard(self, user_id: str) -> None:
        """Stop tracking a user (cancel, erasure); its heap entry goes stale."""
        self._scheduled.pop(user_id, None)

    @property
    def earliest(self) -> float:
        """The earliest entry's time, possibly a stale one (inf when empty): a cheap check."""
        return self._heap[0][0] if self._heap else math.inf

    def pop_next(self, limit: float) -> tuple[float, str] | None:
        """The earliest live entry due at or before `limit`, removed from the index (or None).

        Inclusive, unlike `pop_due`: the daily scores use it, and a row as of boundary B only
        reads events before B, so B may be scored once the watermark reaches it.
        """
        heap = self._heap
        while heap and heap[0][0] <= limit:
            due_ts, user_id = heapq.heappop(heap)
            if self._scheduled.get(user_id) == due_ts:
                del self._scheduled[user_id]
                return due_ts, user_id
        return None

    def pop_due(self, watermark: float) -> list[str]:
        """Users with an entry due < `watermark`, earliest first, each removed from the index.

        The caller runs `PendingLabels.due(watermark)` for each and re-schedules
        `next_due()`, because later snapshots of the same user may still be pending.
        """
        out: list[str] = []
        heap = self._heap
        while heap and heap[0][0] < watermark:
            due_ts, user_id = heapq.heappop(heap)
            if self._scheduled.get(user_id) == due_ts:
                del self._scheduled[user_id]
                out.append(user_id)
        return out

    def _compact(self) -> None:
        self._heap = [(d, u) for u, d in self._scheduled.items()]
        heapq.heapify(self._heap)
