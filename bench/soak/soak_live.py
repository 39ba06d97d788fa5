"""Reading a live drill back: final states from the table's changelog, the DLQ, the examples.

The changelog is what a restarted worker restores, so it is the state that counts: each key's
last record is decoded as the worker would; a value that does not decode is an unreadable
state. DLQ records are matched to produced records by (topic, partition, offset), or by the
event id in their payload when they came from `churn.rekeyed` (a valid event re-keyed first).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import orjson
from soak_data import Accounting
from soak_kafka import Location, latest_values, read_topic
from soak_reconcile import Seen, Tally, counted_events, reconcile

from churnstream.agents.configure import engine_config
from churnstream.agents.processor import decode_example
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.dlq import decode_dlq
from churnstream.stream.contract.topics import DLQ, EXAMPLES
from churnstream.stream.settings import Settings


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-users-changelog"


def read_states(bootstrap: str, app_id: str) -> dict[str, Seen | None]:
    """Every user's state as the changelog holds it (None: the value does not decode)."""
    config = engine_config(Settings()).features
    out: dict[str, Seen | None] = {}
    for key, value in latest_values(read_topic(bootstrap, changelog_topic(app_id))).items():
        if value is None:
            continue
        user = key.decode("utf-8", "replace")
        try:
            record = UserRecord.from_bytes(user, value, config)
        except Exception:  # any failure to decode is what is measured, whatever its type
            out[user] = None
            continue
        out[user] = Seen(counted_events(record.state), record.state.clock)
    return out


@dataclass
class DlqReadback:
    """What the DLQ holds for a drill."""

    valid: Counter[str] = field(default_factory=Counter)  # valid events per state key
    invalid: int = 0  # distinct invalid produced records found
    repeats: int = 0  # records found a second time
    quarantined: list[str] = field(default_factory=list)  # keys of corrupt_state records
    errors: Counter[str] = field(default_factory=Counter)
    unmatched: int = 0  # matched to no produced record


def read_dlq(
    bootstrap: str, prefix: str, locations: Sequence[Location], acct: Accounting
) -> DlqReadback:
    index = {loc: i for i, loc in enumerate(locations)}
    found: set[int | str] = set()
    out = DlqReadback()
    for rec in read_topic(bootstrap, prefix + DLQ):
        doc = decode_dlq(rec.value)
        out.errors[doc["error"]] += 1
        if doc["error"] == "corrupt_state":
            out.quarantined.append((rec.key or b"").decode("utf-8", "replace"))
            continue
        i = index.get((doc["source_topic"], doc["partition"], doc["offset"]))
        marker: int | str | None = i
        if i is None:  # from churn.rekeyed: the event id names it
            marker = _event_id(doc["payload"])
            if marker is None or marker not in acct.valid_by_eid:
                out.unmatched += 1
                continue
        if marker in found:
            out.repeats += 1
            continue
        found.add(marker)
        if isinstance(marker, str):
            out.valid[acct.valid_by_eid[marker]] += 1
        elif acct.kinds[marker] is False:
            out.invalid += 1
        elif acct.kinds[marker] is True:
            out.valid[acct.users[marker]] += 1
    return out


def _event_id(payload: bytes | None) -> str | None:
    try:
        doc = orjson.loads(payload or b"")
    except orjson.JSONDecodeError:
        return None
    eid = doc.get("event_id") if isinstance(doc, dict) else None
    return eid if isinstance(eid, str) else None


def early_labels(bootstrap: str, prefix: str, plausible_until: float) -> int:
    """Examples whose label is due (horizon, + quiet days) after `plausible_until` (the newest
    plausible event time of the drill): event time cannot have passed it, so their labels were
    released early (the drills send no cancel, so no label is due before its horizon)."""
    model = engine_config(Settings()).model
    early = 0
    for rec in read_topic(bootstrap, prefix + EXAMPLES):
        example = decode_example(rec.value)
        early += example.made_at + model.label_delay_s(example.segment) > plausible_until
    return early


def tally_live(
    bootstrap: str,
    prefix: str,
    app_id: str,
    locations: Sequence[Location],
    acct: Accounting,
    adjust: Callable[[DlqReadback, dict[str, Seen | None]], None] | None = None,
) -> tuple[Tally, DlqReadback]:
    """Read the drill back and reconcile; `adjust` may write off what the drill itself
    destroyed once it sees the DLQ and the states."""
    states = read_states(bootstrap, app_id)
    dlq = read_dlq(bootstrap, prefix, locations, acct)
    if adjust is not None:
        adjust(dlq, states)
    tally = reconcile(acct.expected, states, dlq.valid, dlq.invalid, dlq.repeats)
    return tally, dlq
