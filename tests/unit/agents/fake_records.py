"""Minimal stand-ins for Faust events and for the parts a checkpoint talks to (no Kafka).

`Journal` is one shared list of what happened, so a test can assert the order of the steps
across the fakes (send, store write, commit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from faust.types import TP

from churnstream.agents.outputs import Record
from churnstream.agents.repository import ChangelogRecord

CHANGELOG = "app-users-changelog"

Journal = list[tuple[str, Any]]


@dataclass(frozen=True)
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes = b""


@dataclass(frozen=True)
class Ev:
    message: Msg
    name: str = field(default="")


@dataclass
class FakeClock:
    """A clock that moves only when the test says so."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingStore:
    """The checkpoint's view of the table repository: changed users out, acked ones in."""

    journal: Journal
    changed: dict[bytes, bytes] = field(default_factory=dict)
    data: dict[bytes, bytes] = field(default_factory=dict)

    def flush(self) -> list[ChangelogRecord]:
        self.journal.append(("flush", sorted(self.changed)))
        return [(CHANGELOG, key, value, None) for key, value in self.changed.items()]

    def written(self, last_offsets: Mapping[tuple[str, int], int]) -> None:
        self.journal.append(("written", dict(last_offsets)))
        self.data.update(self.changed)
        self.changed.clear()


@dataclass
class RecordingSender:
    """The broker acknowledges every record at once (partition 0 of each topic);
    `while_sending` runs before the acknowledgement (e.g. a rebalance starts meanwhile)."""

    journal: Journal
    sent: list[Record] = field(default_factory=list)
    while_sending: Callable[[], None] | None = None
    _written: dict[str, int] = field(default_factory=dict)

    async def send(
        self, records: list[Record], before_attempt: Callable[[], None] | None = None
    ) -> dict[tuple[str, int], int]:
        if before_attempt is not None:
            before_attempt()
        self.journal.append(("send", [(topic, key) for topic, key, _, _ in records]))
        if self.while_sending is not None:
            self.while_sending()
        self.sent.extend(records)
        last: dict[tuple[str, int], int] = {}
        for topic, *_ in records:
            n = self._written[topic] = self._written.get(topic, 0) + 1
            last[(topic, 0)] = n - 1
        return last


@dataclass
class RecordingCommits:
    """`faust_private.commit_offsets` as Faust 0.15.3 does it: partitions no longer assigned
    are dropped; `failures` commits raise first (e.g. a rebalance started)."""

    journal: Journal
    assignment: set[TP] = field(default_factory=set)
    committed: dict[TP, int] = field(default_factory=dict)
    failures: int = 0

    async def commit_offsets(self, offsets: Mapping[TP, int]) -> bool:
        if self.failures:
            self.failures -= 1
            self.journal.append(("commit failed", dict(offsets)))
            raise RuntimeError("rebalance in progress")
        self.journal.append(("commit", dict(offsets)))
        kept = {tp: offset for tp, offset in offsets.items() if tp in self.assignment}
        self.committed.update(kept)
        return bool(kept)
