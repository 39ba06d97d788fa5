"""Records the soak produces, and what a correct worker must make of them.

Every record carries a unique event id (a deliberate duplicate repeats one). Only the counted
kinds (logins, video views, syncs, document jobs, value events) are generated, so a user's
state can be checked by counting (`soak_reconcile.counted_events`). Event times stay within
the 28 days a state keeps and run forward per user, so no valid event is too late.

`account` classifies each record with the contract's own `parse`: the drills test that what
validation accepts is counted once and what it refuses reaches the DLQ, not where the
contract draws its lines (unit tests do that).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from soak_reconcile import Expected

from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.topics import INPUT_TOPICS, KIND_BY_TOPIC
from churnstream.stream.contract.validation import MAX_TS, MIN_TS, Invalid, parse

Record = tuple[str, bytes | None, bytes | None]  # (contract topic, key, value)
COUNTED = ("logins", "video_views", "integration_syncs", "document_jobs", "value")


def _body(kind: str, eid: str, user: str, ts: Any, rng: random.Random) -> dict[str, Any]:
    body: dict[str, Any] = {"event_id": eid, "user_id": user, "ts": ts}
    if kind == "logins":
        body["success"] = rng.random() < 0.95
    elif kind == "video_views":
        duration = rng.uniform(60, 3600)
        body |= {
            "video_id": f"v{rng.randrange(50)}",
            "watched_s": rng.uniform(0, duration),
            "duration_s": duration,
        }
    elif kind == "integration_syncs":
        body |= {"integration": f"i{rng.randrange(5)}", "status": rng.choice(("ok", "error"))}
    elif kind == "document_jobs":
        body |= {"job_id": f"j{rng.randrange(10**6)}", "status": rng.choice(("ok", "failed"))}
    else:
        body["value"] = round(rng.uniform(0, 50), 2)
    return body


def _record(kind: str, body: dict[str, Any], key: str | None) -> Record:
    return INPUT_TOPICS[kind], None if key is None else key.encode(), orjson.dumps(body)


def history(
    *,
    users: int,
    days: float,
    per_user_day: float,
    start: float,
    seed: int,
    hot_per_day: int = 0,
    tag: str = "u",
    phase: str = "",
    kinds: tuple[str, ...] = COUNTED,
) -> list[Record]:
    """`users` users with ~`per_user_day` events a day each (plus one user `{tag}-hot` with
    `hot_per_day`), in event-time order, keyed by user id; event ids `{tag}{phase}e{i}`."""
    rng = random.Random(seed)
    span = days * DAY_S
    plan = [(f"{tag}{i}", per_user_day) for i in range(users)]
    if hot_per_day:
        plan.append((f"{tag}-hot", hot_per_day))
    events: list[tuple[float, str]] = []
    for user, rate in plan:
        n = max(1, round(rate * days))
        events += [(start + rng.random() * span, user) for _ in range(n)]
    events.sort()
    out = []
    for i, (ts, user) in enumerate(events):
        kind = rng.choice(kinds)
        out.append(_record(kind, _body(kind, f"{tag}{phase}e{i}", user, ts, rng), user))
    return out


# -- extreme records --------------------------------------------------------------------------


@dataclass
class _Extreme:
    """State of the extreme-record generator: normal users run forward in event time."""

    rng: random.Random
    start: float
    step: float
    now: float
    users: int
    i: int = 0
    recent: list[Record] = field(default_factory=list)

    def ts(self) -> float:
        return self.start + self.i * self.step

    def normal_user(self) -> str:
        return f"n{self.rng.randrange(self.users)}"

    def fresh(self) -> str:
        return f"x{self.i}"

    def eid(self) -> str:
        return f"e{self.i}"


def _normal(g: _Extreme) -> Record:
    kind = g.rng.choice(COUNTED)
    user = g.normal_user()
    ts: Any = g.ts()
    if g.rng.random() < 0.3:  # the same instant as RFC 3339 text, with some zone
        ts = _rfc3339(ts, g.rng.choice((0, 14 * 60, -12 * 60, 5 * 60 + 45)))
    key = user if g.rng.random() < 0.9 else g.rng.choice((None, "not-the-user"))
    return _record(kind, _body(kind, g.eid(), user, ts, g.rng), key)


def _rfc3339(ts: float, offset_min: int) -> str:
    from datetime import UTC, datetime, timedelta, timezone

    zone = UTC if offset_min == 0 else timezone(timedelta(minutes=offset_min))
    text = datetime.fromtimestamp(ts, zone).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z")


def _numbers(g: _Extreme) -> Record:
    """Valid kinds with numbers at, beyond or around their bounds (and JSON's edges)."""
    user, eid, ts = g.normal_user(), g.eid(), g.ts()
    choices: list[tuple[str, dict[str, Any]]] = [
        ("value", {"value": 1e12}),
        ("value", {"value": 1e12 * 1.0000001}),
        ("value", {"value": 1e307}),
        ("value", {"value": -0.0}),
        ("value", {"value": 5e-324}),
        ("value", {"value": -1}),
        ("value", {"value": True}),
        ("value", {"value": "12"}),
        ("video_views", {"video_id": "v", "watched_s": 1e6, "duration_s": 1e-300}),
        ("video_views", {"video_id": "v", "watched_s": 1.7e307, "duration_s": 10}),
        ("video_views", {"video_id": "v", "watched_s": 5, "duration_s": 0}),
        ("video_views", {"video_id": "v", "watched_s": 5, "duration_s": 9, "seeks": 10**6}),
        ("video_views", {"video_id": "v", "watched_s": 5, "duration_s": 9, "pauses": 2**63}),
        ("video_views", {"video_id": "v", "watched_s": 5, "duration_s": 9, "seeks": 1.5}),
        ("integration_syncs", {"integration": "i", "status": "ok", "records": 10**12}),
        ("integration_syncs", {"integration": "i", "status": "ok", "latency_ms": 1e9}),
        ("integration_syncs", {"integration": "i", "status": "ok", "latency_ms": 1e10}),
        (
            "document_jobs",
            {"job_id": "j", "status": "ok", "documents": 10**9, "processing_ms": 1e9},
        ),
        ("document_jobs", {"job_id": "j", "status": "ok", "documents": 0}),
    ]
    kind, extra = g.rng.choice(choices)
    body = {"event_id": eid, "user_id": user, "ts": ts, **extra}
    return INPUT_TOPICS[kind], user.encode(), orjson.dumps(body)


def _raw_numbers(g: _Extreme) -> Record:
    """Numbers orjson will not write: NaN, Infinity, 1e400, a 400-digit integer."""
    user, eid, ts = g.normal_user(), g.eid(), g.ts()
    number = g.rng.choice(("NaN", "Infinity", "-Infinity", "1e400", "9" * 400, "0x10"))
    value = f'{{"event_id":"{eid}","user_id":"{user}","ts":{ts},"value":{number}}}'.encode()
    return INPUT_TOPICS["value"], user.encode(), value


def _timestamps(g: _Extreme) -> Record:
    """Event times at the contract's edges; each on a user of its own (one event per user, so
    an accepted far-off time is never 'too late' for anyone)."""
    user, eid = g.fresh(), g.eid()
    ts = g.rng.choice(
        (
            MIN_TS,
            MIN_TS - 1,
            MAX_TS - 1,
            MAX_TS,
            g.now + 3600,  # ahead of the wall clock, within the allowed skew
            g.now + 3 * DAY_S,  # beyond the skew: future_timestamp live
            0,
            -1,
            1e20,
            float(2**53),
            "2026-13-01T00:00:00Z",
            "2026-06-30T23:59:60Z",
            "2026-03-01t12:00:00z",
            "2026-03-01T12:00:00",
            "2026-03-01T12:00:00.123456789+14:00",
            "2026-03-01T12:00:00" + "0" * 60 + "Z",
            True,
            None,
            [1],
        )
    )
    return _record("logins", {"event_id": eid, "user_id": user, "ts": ts}, user)


def _ids(g: _Extreme) -> Record:
    """Identifiers at their length limit, beyond it, and in unusual characters."""
    ts = g.ts()
    user = g.rng.choice(
        (
            "u" * 128,
            "u" * 129,
            "",
            " ",
            "ü👩‍💻" + str(g.i % 50),
            "\u202eRTL" + str(g.i % 50),
            "a\u0000b" + str(g.i % 50),
            "e\u0301" + str(g.i % 50),
            "../" + str(g.i % 50),
            "a/b%2Fc?d#" + str(g.i % 50),
            "\ud800",  # a lone surrogate: orjson refuses it, so it is written raw below
        )
    )
    eid = g.rng.choice((g.eid(), g.eid() + "-" + "i" * 120, "é" * 128, "\t" + g.eid()))
    if eid == "é" * 128:
        eid = g.eid() + "é" * (128 - len(g.eid()))
    if user == "\ud800":
        value = f'{{"event_id":"{g.eid()}","user_id":"\\ud800","ts":{ts}}}'.encode()
        return INPUT_TOPICS["logins"], None, value
    key = g.rng.choice((user, None)) if user else None
    return _record("logins", {"event_id": eid, "user_id": user, "ts": ts}, key)


def _encodings(g: _Extreme) -> Record:
    """Byte-level oddities: BOM, UTF-16, invalid UTF-8, nesting, sizes around the limit."""
    user, eid, ts = g.normal_user(), g.eid(), g.ts()
    body = orjson.dumps({"event_id": eid, "user_id": user, "ts": ts})
    pick = g.rng.randrange(12)
    if pick in _BIG and g.rng.random() > 0.02:
        pick = 4  # records of ~64 KiB kept rare: a million-record file stays small
    value: bytes | None
    if pick == 0:
        value = b"\xef\xbb\xbf" + body
    elif pick == 1:
        value = body.decode().encode("utf-16")
    elif pick == 2:
        value = body[:-1] + b',"channel":"\xff\xfe"}'
    elif pick == 3:
        value = b"[" * 30_000 + b"]" * 30_000
    elif pick == 4:
        value = body + b" trailing"
    elif pick == 5:
        value = b"[" + body + b"]"
    elif pick == 6:
        value = b""
    elif pick == 7:
        value = None
    elif pick == 8:  # just under the 64 KiB limit: valid
        pad = 65536 - len(body) - len(b',"pad":""')
        value = body[:-1] + b',"pad":"' + b"p" * pad + b'"}'
    elif pick == 9:  # one byte over: too large
        pad = 65537 - len(body) - len(b',"pad":""')
        value = body[:-1] + b',"pad":"' + b"p" * pad + b'"}'
    elif pick == 10:  # duplicate keys: the parser decides which one counts
        value = f'{{"event_id":"{eid}","user_id":"{user}","ts":{ts},"ts":"x"}}'.encode()
    else:
        value = g.rng.randbytes(g.rng.randrange(1, 200))
    return INPUT_TOPICS["logins"], user.encode(), value


_BIG = (3, 8, 9)

# Share of each kind in `extreme_records`; the rest are normal events.
MIX: tuple[tuple[float, Callable[[_Extreme], Record]], ...] = (
    (0.04, _numbers),
    (0.01, _raw_numbers),
    (0.02, _timestamps),
    (0.03, _ids),
    (0.02, _encodings),
)
DUPLICATE_SHARE = 0.02


def extreme_records(
    n: int, *, start: float, days: float, now: float, seed: int
) -> Iterator[Record]:
    """`n` records, mostly normal events of a few thousand users running forward in time from
    `start` over `days`, mixed with extreme ones and re-sent copies of recent valid records."""
    g = _Extreme(random.Random(seed), start, days * DAY_S / n, now, users=max(100, n // 200))
    while g.i < n:
        r = g.rng.random()
        if r < DUPLICATE_SHARE and g.recent:
            rec = g.rng.choice(g.recent)
        else:
            make: Callable[[_Extreme], Record] = _normal
            r -= DUPLICATE_SHARE
            for share, kind in MIX:
                if r < share:
                    make = kind
                    break
                r -= share
            rec = make(g)
            if make is _normal:
                g.recent = [*g.recent[-7:], rec]
        g.i += 1
        yield rec


# -- what a correct worker makes of them -------------------------------------------------------


@dataclass
class Accounting:
    """`Expected` plus, for the live drills, what is needed to read the DLQ back."""

    expected: Expected
    valid_by_eid: dict[str, str]  # event id -> state key
    kinds: list[bool | None]  # per produced record: valid (True), invalid (False), a copy (None)
    users: list[str | None]  # per produced record: the state key of a valid one
    per_error: dict[str, int]


def account(
    records: Iterable[Record],
    *,
    max_bytes: int = 65536,
    not_after: float | None,
    state_key: Callable[[str], str] = str,
    keep_ids: bool = True,
) -> Accounting:
    """Classify `records` as the worker would (`not_after`: its future bound; None: replay)."""
    exp = Expected()
    seen: set[int] = set()  # hashes of (state key, event id): a million tuples cost too much
    by_eid: dict[str, str] = {}
    kinds: list[bool | None] = []
    users: list[str | None] = []
    errors: dict[str, int] = {}
    for topic, _key, value in records:
        exp.records_in += 1
        event = parse(KIND_BY_TOPIC[topic], value, max_bytes, not_after=not_after)
        if isinstance(event, Invalid):
            exp.invalid += 1
            error = event.error.split(":", 1)[0]
            errors[error] = errors.get(error, 0) + 1
            kinds.append(False)
            users.append(None)
            continue
        user = state_key(event.user_id)
        h = hash((user, event.event_id))
        if h in seen:
            exp.duplicates += 1
            kinds.append(None)
            users.append(user)
            continue
        seen.add(h)
        exp.valid(user, event.ts)
        if keep_ids:
            by_eid[event.event_id] = user
        kinds.append(True)
        users.append(user)
    if not keep_ids:
        kinds, users = [], []
    return Accounting(exp, by_eid, kinds, users, errors)
