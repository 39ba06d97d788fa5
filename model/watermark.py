"""The stream's low watermark in event time, with the progress of every source.

Contract: event time "passes" t when the smallest of the per-source maximum event times, less
the allowed lateness, moves beyond t. A source is one input partition live ((topic, partition))
and one input kind in a replay; every source also has a kind (the contract's topic kind), so a
decision can ask whether the sources of one kind (e.g. `value`, for ROI) have passed its time.

A source's progress is one of:
- current: its maximum is within `idle_after_s` of the freshest source's;
- not started: a kind the caller `expect`s from which no event arrived yet;
- behind: its kind lags the freshest by more than `idle_after_s` (or has not started) and
  still counts: decisions wait for it;
- idle: left out of the watermark until it advances again.
A kind's progress is that of its freshest source, as in a replay, where a kind is one source:
a partition far behind while another of its kind is current (a kind sparse over partitions,
e.g. a few subscription changes a day over four partitions) only lacks events, and is left out
at once. Waiting for it held every daily row for days of event time until it got its next
event, and a row made after its users' states ran past the ring's days ahead differed from the
replay's (tests/unit/model/test_source_progress.py). The caller keeps the partitions' events in
event-time order meanwhile (agents/ordering.py), so a partition that still has records to
deliver is not overtaken.
How a lagging source becomes idle is the caller's policy, the one difference between the two
callers: a replay reads a file in event-time order, where a source that lags can only be idle
(`wait=False`: idle at once, as before); the live worker cannot tell a source that is idle from
one whose producer lags or has not started, so (`wait=True`) it waits for it and marks it idle
(`mark_idle`) once it has not advanced for a limit of wall time (agents/processor.py). Any
advance makes a source count again.

One event dated far ahead must not move the watermark (every label would be released and every
daily row made at once): a source's progress moves only by a bounded step, `max_step_s` beyond
the freshest progress of all sources, or when the source's next events confirm the jump:
`confirm` far events in a row (the first included, each within `max_step_s` of the nearest
one held; any ordinary event of the source in between cancels them). Until then the far events
are held as a candidate and counted in `outliers`. Two in a row were not enough: in a replay
(no wall-clock bound, a source is a kind) bad records dated up to 2100 among a million records
now and then came twice in a row, and the watermark jumped to 2100 (make soak f1: a daily row
for every user for every day to 2100). Scattered at a rate p, `confirm` in a row come at about
p**confirm per event. The events themselves are applied to their users as usual; only the
progress waits.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

from churnstream.stream.contract.events import DAY_S

CONFIRM_EVENTS = 4  # far events in a row that move a source's progress (the first included)


class Watermark:
    """Per-source progress in event time; `value` is the low watermark."""

    __slots__ = (
        "_cached",
        "_candidate",
        "_fresh",
        "_idle",
        "_kind",
        "_max",
        "_started",
        "confirm",
        "expected",
        "idle_after_s",
        "lateness_s",
        "max_step_s",
        "outliers",
        "wait",
    )

    def __init__(
        self,
        lateness_s: float,
        idle_after_s: float = DAY_S,
        *,
        wait: bool = False,
        max_step_s: float = DAY_S,
        confirm: int = CONFIRM_EVENTS,
        expect: Iterable[str] = (),
    ) -> None:
        self.lateness_s = lateness_s
        self.idle_after_s = idle_after_s
        self.wait = wait
        self.max_step_s = max_step_s
        self.confirm = confirm
        self.expected: frozenset[str] = frozenset(expect)
        self._max: dict[Hashable, float] = {}
        self._kind: dict[Hashable, str] = {}
        # A source's far events in a row: the nearest one's time and how many so far.
        self._candidate: dict[Hashable, tuple[float, int]] = {}
        self._idle: set[Hashable] = set()
        self._started: set[str] = set()
        self._cached: float | None = None
        # The freshest progress, None: to work out again (read ~3 times per event: the max
        # over the sources each time was ~2% of a replay); `observe` keeps it when a max rose.
        self._fresh: float | None = None
        self.outliers = 0  # events held back from the progress as too far ahead

    def observe(self, source: Hashable, ts: float, kind: str | None = None) -> None:
        """Record an event of `source` (of `kind`) at event time `ts`."""
        if kind is not None and source not in self._kind:
            self._kind[source] = kind
            self._started.add(kind)
            self._cached = None
        current = self._max.get(source, -math.inf)
        reach = max(current, self._freshest()) + self.max_step_s
        if ts <= reach or not math.isfinite(reach):
            # An ordinary event between two far ones: the source did not jump (bad records
            # dated anywhere up to 2100 would otherwise, now and then, confirm each other).
            self._candidate.pop(source, None)
            if ts <= current:
                return
        else:
            first, seen = self._candidate.get(source, (ts, 0))
            if abs(ts - first) > self.max_step_s:
                first, seen = ts, 0  # far from the held ones too: a new candidate
            if seen + 1 < self.confirm:
                # Held until the source's next events confirm the jump.
                self._candidate[source] = (min(first, ts), seen + 1)
                self.outliers += 1
                return
            ts = min(first, ts)  # confirmed: progress moves to the nearest of them
        self._candidate.pop(source, None)
        self._max[source] = ts
        self._idle.discard(source)
        self._cached = None
        # A maximum that rose keeps the freshest a max of two (no max over every source at
        # each event, as `_freshest` would redo); one that fell (not expected) resets it.
        fresh = self._fresh
        if fresh is not None and ts >= current:
            self._fresh = ts if ts > fresh else fresh
        else:
            self._fresh = None

    def _freshest(self) -> float:
        fresh = self._fresh
        if fresh is None:
            fresh = self._fresh = max(self._max.values(), default=-math.inf)
        return fresh

    def forget(self, sources: Iterable[Hashable]) -> None:
        """Drop sources this worker no longer owns (after a rebalance)."""
        for s in sources:
            self._max.pop(s, None)
            self._kind.pop(s, None)
            self._candidate.pop(s, None)
            self._idle.discard(s)
        self._started = set(self._kind.values())
        self._cached = self._fresh = None

    def mark_idle(self, source: Hashable) -> None:
        """Leave `source` (or a kind that has not started) out until it advances."""
        self._idle.add(source)
        self._cached = None

    def progress(self, source: Hashable) -> float:
        """The source's confirmed maximum event time (-inf: nothing yet, or a kind not started)."""
        return self._max.get(source, -math.inf)

    def kind_of(self, source: Hashable) -> str | None:
        return self._kind.get(source)

    def lagging(self) -> list[Hashable]:
        """Sources that hold the watermark back while lagging: kinds expected but not started,
        and the sources of a kind more than `idle_after_s` behind the freshest (only when
        `wait`)."""
        if not self.wait:
            return []
        out: list[Hashable] = [
            k for k in sorted(self.expected - self._started) if k not in self._idle
        ]
        behind = self._kinds_behind()
        out += [s for s in self._max if s not in self._idle and self._kind.get(s, s) in behind]
        return out

    def _kinds_behind(self) -> dict[Hashable, float]:
        """Kinds (a source without one is its own) whose freshest counted source is more than
        `idle_after_s` behind the freshest of all, with that progress."""
        progress: dict[Hashable, float] = {}
        for s, m in self._max.items():
            if s not in self._idle:
                k = self._kind.get(s, s)
                progress[k] = max(m, progress.get(k, -math.inf))
        edge = self._freshest() - self.idle_after_s
        return {k: m for k, m in progress.items() if m < edge}

    def waiting_for(self, kind: str, ts: float) -> list[Hashable]:
        """Counted sources of `kind` that have not passed `ts` (less `idle_after_s`): a decision
        at `ts` that reads this kind waits for them. Empty without `wait` (a replay)."""
        if not self.wait:
            return []
        if kind in self.expected and kind not in self._started:
            return [] if kind in self._idle else [kind]
        edge = ts - self.idle_after_s
        behind = self._kinds_behind()
        return [
            s
            for s, k in self._kind.items()
            if k == kind
            and (m := self._max.get(s, -math.inf)) < edge
            and s not in self._idle
            and (k in behind or self._freshest() - m <= self.idle_after_s)
        ]

    @property
    def freshest(self) -> float:
        """The low watermark if no source lagged: the freshest progress less the lateness."""
        return self._freshest() - self.lateness_s

    @property
    def value(self) -> float:
        """The low watermark (-inf before any event, or while a counted kind has not started):
        the smallest progress of the sources within `idle_after_s` of the freshest and, when
        waiting, of each kind behind (its freshest source: one far behind while another of its
        kind is current only lacks events)."""
        if self._cached is None:
            if not self._max or (self.wait and self.lagging() and self._unstarted_counted()):
                self._cached = -math.inf
            else:
                # The min over the counted progress, the freshest if none: every progress is at
                # most the freshest, so a running min from it is that (no list per event).
                freshest = low = self._freshest()
                idle, idle_after = self._idle, self.idle_after_s
                for s, m in self._max.items():
                    if m < low and freshest - m <= idle_after and s not in idle:
                        low = m
                if self.wait:
                    for m in self._kinds_behind().values():
                        if m < low:
                            low = m
                self._cached = low - self.lateness_s
        return self._cached

    def _unstarted_counted(self) -> bool:
        return any(k not in self._idle for k in self.expected - self._started)
