"""Records re-sent through `churn.rekeyed` are applied once, however many copies arrive.

A record whose key is not its user's (always, with pseudonymisation on) is applied only after
a trip through `churn.rekeyed` (agents/processor.py). A worker that crashes after sending the
re-keyed copies but before committing the input offsets sends them again after its restart,
and the copies get new offsets in `churn.rekeyed`, so the detector's per-user offsets (by the
position it reads a record at) do not catch them; the last 64 event-id hashes per user did
only for a user with fewer events than that in the redelivery window.

So each re-keyed copy carries where it was first read (`churnstream-origin`: input topic,
partition, offset), and the user's state remembers the highest origin offset applied per
input partition. The copies of one input partition reach the user's `churn.rekeyed`
partition in the order of their origin offsets (one owner at a time produces them, in offset
order, and a revoked owner is fenced, agents/checkpoint.py), so a copy at or below that
offset is one already applied, whatever the size of the redelivery window. The marks live in
`UserState.offsets` under `<topic>~` (a key no direct input record uses: a record read on its
own user's partition marks `<topic>`, and the two orders are independent).

Cost per user: one entry per input partition the user's records came from (with keyed
producers one per input topic the user sends to), 2 + len(topic) + 1 + 16 bytes in the
encoded state each (e.g. 35 bytes for `behaviour.logins`); measured in docs/architecture.md.
"""

from __future__ import annotations

from typing import Any, Protocol

from churnstream.model.user_record import UserRecord

ORIGIN_HEADER = "churnstream-origin"
_MARK = "~"  # suffix of the origin marks' source names in UserState.offsets

Origin = tuple[str, int, int]  # input topic, partition, offset


class Records(Protocol):
    """agents/repository.TableRepository: the user records, cached."""

    def get(self, user_id: str) -> UserRecord | None: ...

    def put(self, record: UserRecord) -> None: ...


def origin_header(message: Any) -> tuple[str, bytes]:
    """The header a re-keyed copy of `message` carries: where it was first read."""
    return (ORIGIN_HEADER, f"{message.topic}:{message.partition}:{message.offset}".encode())


def origin_of(message: Any) -> Origin | None:
    """Where a re-keyed record was first read; None without a readable header (a copy made
    before the header existed, or another writer: the detector's own offsets still apply)."""
    raw = dict(message.headers or ()).get(ORIGIN_HEADER)
    if not raw:
        return None
    try:
        topic, partition, offset = raw.decode().rsplit(":", 2)  # topic names hold no ':'
        return (topic + _MARK, int(partition), int(offset))
    except (UnicodeDecodeError, ValueError):
        return None


def seen(records: Records, user_id: str, origin: Origin) -> bool:
    """True if a copy of the record at `origin` was applied to the user already."""
    rec = records.get(user_id)
    return rec is not None and rec.state.seen_offset(*origin)


def mark(records: Records, user_id: str, origin: Origin) -> None:
    """Remember that the record at `origin` was applied to the user (after the detector
    handled it, so the record exists)."""
    rec = records.get(user_id)
    if rec is not None:
        rec.state.mark_offset(*origin)
        records.put(rec)
