"""Every input record exactly once, in offset order per partition, whatever the consumer does.

Faust 0.15.3 can lose input records around a rebalance or a restart: records fetched while the
stream partitions are resumed but not yet seeked are delivered and then fetched again, a fetch
cut short by a flow or generation change is dropped after the client's position moved past it,
and the consumer marks any jump in offsets as a gap that counts as acked. Each of these let a
commit cover a record no agent saw (seen here: one record in about every third crash test on a
loaded machine). `InputSequence` is the check that makes that impossible: per input partition
it knows the next offset the worker must process, starting at the group's committed offset.

- the expected offset: process it (`Admit.NEXT`);
- an offset below it: a second delivery of a record already taken, drop it (`Admit.REPEAT`);
- an offset above it: records are missing (`Admit.GAP`). The caller asks the broker whether
  the gap holds records (transaction markers and deleted segments leave gaps without any). If
  it does not, `skip_to` accepts the jump; if it does, the caller seeks the consumer back and
  calls `repairing`: records above the hole are dropped (`Admit.REPAIRING`) until the missing
  offset arrives again, and `overdue` names repairs whose re-seek produced nothing for a while.

Pure and synchronous: the Kafka side (committed offsets, the broker check, the seek) is the
caller's (agents/input_guard.py).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Mapping
from enum import Enum


class Admit(Enum):
    NEXT = "next"
    REPEAT = "repeat"
    GAP = "gap"
    REPAIRING = "repairing"


class InputSequence:
    __slots__ = ("_next", "_repair_since", "repair_timeout_s")

    def __init__(self, repair_timeout_s: float = 5.0) -> None:
        self.repair_timeout_s = repair_timeout_s
        self._next: dict[Hashable, int] = {}
        self._repair_since: dict[Hashable, float] = {}

    def reset(self, starts: Mapping[Hashable, int]) -> None:
        """Start over (new assignment or generation): `starts` = first offset per partition."""
        self._next = dict(starts)
        self._repair_since.clear()

    def expected(self, tp: Hashable) -> int | None:
        """The next offset `tp` must deliver (None for a partition not in the last reset)."""
        return self._next.get(tp)

    def items(self) -> Iterator[tuple[Hashable, int]]:
        return iter(self._next.items())

    def admit(self, tp: Hashable, offset: int) -> Admit:
        """Classify a delivered record; only NEXT advances the partition."""
        want = self._next.get(tp)
        if want is None:
            # Not in the assignment we started from (it cannot be checked): take it as the
            # partition's start rather than refuse a record the consumer owns.
            want = offset
        if offset == want:
            self._next[tp] = offset + 1
            self._repair_since.pop(tp, None)
            return Admit.NEXT
        if offset < want:
            return Admit.REPEAT
        return Admit.REPAIRING if tp in self._repair_since else Admit.GAP

    def skip_to(self, tp: Hashable, offset: int) -> None:
        """The broker holds nothing before `offset`: it is the partition's next record."""
        self._next[tp] = offset

    def is_repairing(self, tp: Hashable) -> bool:
        return tp in self._repair_since

    def repairing(self, tp: Hashable, now: float) -> None:
        """The consumer was sent back to `expected(tp)`; drop what lies beyond until then."""
        self._repair_since[tp] = now

    def overdue(self, now: float) -> list[tuple[Hashable, int]]:
        """Repairs waiting longer than `repair_timeout_s` (their seek is re-issued)."""
        late = [
            (tp, self._next[tp])
            for tp, since in self._repair_since.items()
            if now - since >= self.repair_timeout_s
        ]
        for tp, _ in late:
            self._repair_since[tp] = now
        return late
