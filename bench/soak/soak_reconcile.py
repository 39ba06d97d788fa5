"""Per-user accounting of a soak drill: what was produced against what the state and the DLQ hold.

Pure arithmetic, no Kafka. A drill knows, for every record it produced, whether the contract
accepts it (`parse`), the user it belongs to and its event time. After the drill the final
state of each user (from the table's changelog, or `replay`'s store) tells how many counted
events it folded in, and the dead-letter topic which records were set aside:

- a valid event is *reflected* once it is counted in its user's state or dead-lettered;
- a user whose state holds more events than were produced for it (less those dead-lettered)
  has *double counts*; fewer is *lost*;
- an invalid record must be in the DLQ; one missing there is lost too;
- a user is *stuck* when its newest valid event never reached its state (no state, an
  unreadable state, or a clock behind that event).

Events a drill destroys on purpose (records deleted below the group's offset, a state value
overwritten with garbage and quarantined) are written off by the drill before reconciling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from churnstream.features import UserState
from churnstream.features import buckets as b

# Day-row counters that each count one event of one kind (lifecycle events feed none).
WORST = 5  # users named in a drill's notes

EVENT_COUNTERS = (b.LOGINS, b.FAILED_LOGINS, b.VIDEOS, b.SYNCS, b.JOBS, b.VALUE_EVENTS)


def counted_events(state: UserState) -> int:
    """Events of the counted kinds that `state` folded into its day rows."""
    return sum(row[k] for row in state.rows if row is not None for k in EVENT_COUNTERS)


@dataclass(frozen=True, slots=True)
class Seen:
    """One user's final state as read back: counted events and clock (max event time)."""

    count: int
    clock: float


@dataclass
class Expected:
    """What a drill produced: counted valid events per user, invalid records, records in."""

    records_in: int = 0
    per_user: dict[str, int] = field(default_factory=dict)
    last_ts: dict[str, float] = field(default_factory=dict)
    invalid: int = 0
    duplicates: int = 0
    """Copies of an event already produced (same user and event id): reflected by the first
    copy; counting them again would show as a double count."""
    written_off: int = 0
    """Events the drill itself destroyed: in `records_in`, not expected in any state."""

    def valid(self, user: str, ts: float) -> None:
        """One distinct valid event of a counted kind for `user` at event time `ts`."""
        self.per_user[user] = self.per_user.get(user, 0) + 1
        if ts > self.last_ts.get(user, float("-inf")):
            self.last_ts[user] = ts

    def write_off(self, user: str, n: int) -> None:
        """`n` of `user`'s events were destroyed by the drill itself (not the worker's loss)."""
        self.per_user[user] = self.per_user.get(user, 0) - n
        self.written_off += n


@dataclass(frozen=True, slots=True)
class Tally:
    """The accounting of one drill (the numbers of its RELIABILITY.md row)."""

    records_in: int
    reflected: int
    doubled: int
    lost: int
    stuck: int
    dlq_repeats: int
    written_off: int = 0
    worst: tuple[tuple[str, int], ...] = ()
    """Users whose state is off the most: (user, events in state and DLQ less produced)."""

    @property
    def passed(self) -> bool:
        return self.lost == 0 and self.doubled == 0 and self.stuck == 0


def reconcile(
    expected: Expected,
    state: Mapping[str, Seen | None],
    dlq_valid: Mapping[str, int],
    invalid_in_dlq: int,
    dlq_repeats: int = 0,
) -> Tally:
    """Compare per user. `state`: every user read back (None: its value could not be decoded);
    `dlq_valid`: valid events per user found in the DLQ; `invalid_in_dlq`: distinct invalid
    records found there; `dlq_repeats`: DLQ records of a record already found (at least once
    delivery after a crash: reported, not a double count of state)."""
    reflected = doubled = lost = stuck = 0
    off: list[tuple[str, int]] = []
    for user in expected.per_user.keys() | state.keys():
        want = max(expected.per_user.get(user, 0), 0)
        seen = state.get(user)
        got = (seen.count if seen is not None else 0) + dlq_valid.get(user, 0)
        reflected += min(want, got)
        doubled += max(got - want, 0)
        lost += max(want - got, 0)
        if got != want:
            off.append((user, got - want))
        last = expected.last_ts.get(user)
        unreadable = user in state and seen is None
        behind = want > 0 and last is not None and (seen is None or seen.clock < last)
        stuck += unreadable or behind
    missing_invalid = max(expected.invalid - invalid_in_dlq, 0)
    return Tally(
        records_in=expected.records_in,
        reflected=reflected + min(invalid_in_dlq, expected.invalid) + expected.duplicates,
        doubled=doubled,
        lost=lost + missing_invalid,
        stuck=stuck,
        dlq_repeats=dlq_repeats,
        written_off=expected.written_off,
        worst=tuple(sorted(off, key=lambda uo: (-abs(uo[1]), uo[0]))[:WORST]),
    )
