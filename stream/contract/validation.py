"""Decode and validate input records against the public contract (pure, no Kafka, no I/O).

`parse(kind, value)` turns raw record bytes into one of the `stream.contract.events` dataclasses or
an `Invalid(error, detail)` destined for the dead-letter topic. It never raises for bad input.
Checks are hand-written on top of orjson because this runs once per consumed record.

Validation stays pure: the one bound that depends on the wall clock (event time may not run
ahead of it by more than an allowed skew, so one record dated decades ahead cannot drag the
event-time clocks with it) is passed in by the caller as `not_after`.

Error codes (exact strings, stable: dashboards and DLQ tooling match on them):
`too_large`, `empty`, `not_json`, `not_object`, `missing_field:<name>`, `bad_type:<name>`,
`out_of_range:<name>`, `bad_timestamp`, `future_timestamp`, `bad_enum:<name>`.
`detail` never echoes field values (they may be personal data), only names and types.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final

import orjson

from churnstream.stream.contract.events import (
    EVENT_TYPES,
    LIFECYCLE_EVENTS,
    SEGMENTS,
    DocumentJob,
    Event,
    IntegrationSync,
    Lifecycle,
    Login,
    ValueEvent,
    VideoView,
)

__all__ = ["MAXIMA", "MAX_TS", "MIN_TS", "Invalid", "event_to_dict", "parse", "parse_ts"]

ID_MAX_CHARS: Final = 128
# Accepted event-time range: 2000-01-01T00:00:00Z inclusive .. 2101-01-01T00:00:00Z exclusive.
# Anything outside is almost certainly a unit bug (milliseconds, microseconds) or garbage.
MIN_TS: Final = 946_684_800.0
MAX_TS: Final = 4_133_980_800.0

# Largest accepted value of every numeric field (`out_of_range:<name>` above it): far above
# anything real, far below what could overflow a feature (counters are summed over 28 days as
# integers and must still convert to floats; 1e307 used to break a user's state for weeks).
MAXIMA: Final[dict[str, float]] = {
    "watched_s": 1e6,  # seconds: 11.6 days of one video
    "duration_s": 1e6,
    "seeks": 1e6,
    "rewinds": 1e6,
    "pauses": 1e6,
    "records": 1e12,
    "latency_ms": 1e9,  # 11.6 days
    "documents": 1e9,
    "processing_ms": 1e9,
    "value": 1e12,  # money, in the customer's currency
    "plan_price": 1e9,
}

_SYNC_STATUS: Final = {"ok": True, "error": False}
_JOB_STATUS: Final = {"ok": True, "failed": False}
_COMPLETED_RATIO: Final = 0.9

# RFC 3339 date-time only; datetime.fromisoformat alone also accepts ISO 8601 variants
# (basic format, missing seconds, week dates) that the contract does not allow.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


@dataclass(slots=True, frozen=True)
class Invalid:
    """A record that breaks the contract: `error` is a stable code, `detail` a short reason."""

    error: str
    detail: str


class _Reject(Exception):
    """Internal: aborts validation of one record; turned into `Invalid` by `parse`."""

    __slots__ = ("detail", "error")

    def __init__(self, error: str, detail: str) -> None:
        self.error = error
        self.detail = detail


_JSON_TYPE_NAMES: Final[dict[type, str]] = {
    type(None): "null",
    bool: "bool",
    int: "int",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
}


def _type_name(value: object) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


# --- timestamps --------------------------------------------------------------------------


def parse_ts(value: object) -> float | None:
    """Contract `ts` (RFC 3339 string with zone, or epoch seconds) -> float seconds, or None.

    Rejects bools, non-finite numbers, naive or malformed strings and instants outside
    years 2000..2100.
    """
    t = type(value)
    if t is int or t is float:
        try:
            ts = float(value)  # type: ignore[arg-type]
        except OverflowError:  # Python ints beyond float range (orjson never yields these)
            return None
    elif t is str:
        text: str = value  # type: ignore[assignment]
        if len(text) > 64 or _RFC3339.fullmatch(text) is None:
            return None
        if "t" in text or "z" in text:  # RFC 3339 allows lowercase; fromisoformat does not
            text = text.upper()
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
        if dt.tzinfo is None:  # unreachable after the regex; kept as a guard
            return None
        try:
            ts = dt.timestamp()
        except (OverflowError, ValueError):
            return None
    else:
        return None
    # NaN fails both comparisons, so this also rejects it; inf is out of range.
    if not (MIN_TS <= ts < MAX_TS):
        return None
    return ts


# --- field readers (raise _Reject) ---------------------------------------------------------


def _id(d: dict[str, Any], name: str) -> str:
    v = _req_str(d, name)
    if not 1 <= len(v) <= ID_MAX_CHARS:
        raise _Reject(
            f"out_of_range:{name}",
            f"'{name}' must be 1..{ID_MAX_CHARS} characters, got {len(v)}",
        )
    return v


def _missing(name: str) -> _Reject:
    return _Reject(f"missing_field:{name}", f"required field '{name}' is missing")


def _req_str(d: dict[str, Any], name: str) -> str:
    v = _opt_str(d, name)
    if v is None:
        raise _missing(name)
    return v


def _opt_str(d: dict[str, Any], name: str) -> str | None:
    v = d.get(name)
    if v is None or type(v) is str:
        return v
    raise _Reject(f"bad_type:{name}", f"'{name}' must be a string, got {_type_name(v)}")


def _req_num(d: dict[str, Any], name: str, *, minimum: float, exclusive: bool = False) -> float:
    v = _opt_num(d, name, minimum=minimum, exclusive=exclusive)
    if v is None:
        raise _missing(name)
    return v


def _opt_num(
    d: dict[str, Any], name: str, *, minimum: float, exclusive: bool = False
) -> float | None:
    v = d.get(name)
    if v is None:
        return None
    t = type(v)
    if t is not int and t is not float:  # `type is` also rules out bool
        raise _Reject(f"bad_type:{name}", f"'{name}' must be a number, got {_type_name(v)}")
    f = float(v)
    # NaN fails every comparison, so `not f <= maximum` also rejects it.
    if not f <= MAXIMA[name] or f < minimum or (exclusive and f == minimum):
        op = ">" if exclusive else ">="
        raise _Reject(
            f"out_of_range:{name}",
            f"'{name}' must be a number {op} {minimum:g} and <= {MAXIMA[name]:g}",
        )
    return f


def _int(d: dict[str, Any], name: str, *, minimum: int) -> int | None:
    v = d.get(name)
    if v is None:
        return None
    if type(v) is not int:  # 1.5, 2.0, true and huge ints (decoded as float) are all rejected
        raise _Reject(f"bad_type:{name}", f"'{name}' must be an integer, got {_type_name(v)}")
    if not minimum <= v <= MAXIMA[name]:
        raise _Reject(
            f"out_of_range:{name}", f"'{name}' must be an integer in {minimum}..{MAXIMA[name]:g}"
        )
    return v


def _bool(d: dict[str, Any], name: str) -> bool | None:
    v = d.get(name)
    if v is None:
        return None
    if type(v) is not bool:
        raise _Reject(f"bad_type:{name}", f"'{name}' must be a boolean, got {_type_name(v)}")
    return v


def _req_enum(d: dict[str, Any], name: str, allowed: tuple[str, ...] | dict[str, bool]) -> str:
    v = _opt_enum(d, name, allowed)
    if v is None:
        raise _missing(name)
    return v


def _opt_enum(
    d: dict[str, Any], name: str, allowed: tuple[str, ...] | dict[str, bool]
) -> str | None:
    v = d.get(name)
    if v is None:
        return None
    if type(v) is not str:
        raise _Reject(f"bad_type:{name}", f"'{name}' must be a string, got {_type_name(v)}")
    if v not in allowed:
        raise _Reject(f"bad_enum:{name}", f"'{name}' must be one of {', '.join(allowed)}")
    return v


def _common(
    d: dict[str, Any], not_after: float | None, segment_required: bool = False
) -> tuple[str, str, float, str | None]:
    event_id = _id(d, "event_id")
    user_id = _id(d, "user_id")
    raw_ts = d.get("ts")
    if raw_ts is None:
        raise _missing("ts")
    ts = parse_ts(raw_ts)
    if ts is None:
        raise _Reject(
            "bad_timestamp",
            f"'ts' ({_type_name(raw_ts)}) must be RFC 3339 with a time zone or epoch seconds, "
            "years 2000..2100",
        )
    if not_after is not None and ts > not_after:
        raise _Reject(
            "future_timestamp", "'ts' is further ahead of the receiver's clock than allowed"
        )
    segment = (_req_enum if segment_required else _opt_enum)(d, "segment", SEGMENTS)
    return event_id, user_id, ts, segment


# --- one builder per event type ------------------------------------------------------------


def _video_view(d: dict[str, Any], not_after: float | None) -> VideoView:
    event_id, user_id, ts, segment = _common(d, not_after)
    video_id = _req_str(d, "video_id")
    watched = _req_num(d, "watched_s", minimum=0.0)
    duration = _req_num(d, "duration_s", minimum=0.0, exclusive=True)
    completed = _bool(d, "completed")
    return VideoView(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        video_id=video_id,
        watched_s=watched,
        duration_s=duration,
        course_id=_opt_str(d, "course_id"),
        seeks=_int(d, "seeks", minimum=0) or 0,
        rewinds=_int(d, "rewinds", minimum=0) or 0,
        pauses=_int(d, "pauses", minimum=0) or 0,
        completed=watched >= _COMPLETED_RATIO * duration if completed is None else completed,
    )


def _login(d: dict[str, Any], not_after: float | None) -> Login:
    event_id, user_id, ts, segment = _common(d, not_after)
    success = _bool(d, "success")
    return Login(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        success=True if success is None else success,
        channel=_opt_str(d, "channel"),
    )


def _integration_sync(d: dict[str, Any], not_after: float | None) -> IntegrationSync:
    event_id, user_id, ts, segment = _common(d, not_after)
    integration = _req_str(d, "integration")
    status = _req_enum(d, "status", _SYNC_STATUS)
    return IntegrationSync(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        integration=integration,
        ok=_SYNC_STATUS[status],
        records=_int(d, "records", minimum=0),
        latency_ms=_opt_num(d, "latency_ms", minimum=0.0),
        error_code=_opt_str(d, "error_code"),
    )


def _document_job(d: dict[str, Any], not_after: float | None) -> DocumentJob:
    event_id, user_id, ts, segment = _common(d, not_after)
    job_id = _req_str(d, "job_id")
    status = _req_enum(d, "status", _JOB_STATUS)
    documents = _int(d, "documents", minimum=1)
    return DocumentJob(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        job_id=job_id,
        ok=_JOB_STATUS[status],
        documents=1 if documents is None else documents,
        processing_ms=_opt_num(d, "processing_ms", minimum=0.0),
        error=_opt_str(d, "error"),
    )


def _value(d: dict[str, Any], not_after: float | None) -> ValueEvent:
    event_id, user_id, ts, segment = _common(d, not_after)
    value = _req_num(d, "value", minimum=0.0)
    return ValueEvent(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        value=value,
        value_kind=_opt_str(d, "kind"),
    )


def _lifecycle(d: dict[str, Any], not_after: float | None) -> Lifecycle:
    event_id, user_id, ts, segment = _common(d, not_after, segment_required=True)
    event = _req_enum(d, "event", LIFECYCLE_EVENTS)
    return Lifecycle(
        event_id=event_id,
        user_id=user_id,
        ts=ts,
        segment=segment,
        event=event,
        plan_price=_opt_num(d, "plan_price", minimum=0.0),
        currency=_opt_str(d, "currency"),
    )


_BUILDERS: Final[dict[str, Callable[[dict[str, Any], float | None], Event]]] = {
    "video_views": _video_view,
    "logins": _login,
    "integration_syncs": _integration_sync,
    "document_jobs": _document_job,
    "value": _value,
    "subscriptions": _lifecycle,
}
assert _BUILDERS.keys() == EVENT_TYPES.keys(), "a builder per contract event type"


def parse(
    kind: str, value: bytes | None, max_bytes: int = 65536, *, not_after: float | None = None
) -> Event | Invalid:
    """Decode one record value of input `kind` (a key of `EVENT_TYPES`).

    Returns the typed event, or `Invalid` for anything that breaks the contract. Raises only
    `ValueError` for an unknown `kind`, which is a wiring bug, not bad data.

    `not_after` is the latest accepted event time: a live receiver passes its wall clock at
    intake plus the allowed skew (`future_timestamp` beyond it). None turns the bound off, as
    `replay` does: a history is read long after it happened, so only the future bound makes
    sense there, and no wall clock may decide what an offline run accepts.
    """
    try:
        build = _BUILDERS[kind]
    except KeyError:
        known = ", ".join(_BUILDERS)
        raise ValueError(f"unknown event kind {kind!r}; expected one of {known}") from None
    if not value:
        return Invalid("empty", "record value is empty or null (tombstone)")
    # Size first so an oversized record is never decoded.
    if len(value) > max_bytes:
        return Invalid("too_large", f"record value is {len(value)} bytes, limit {max_bytes}")
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return Invalid("not_json", "record value is not valid UTF-8 JSON")
    if type(doc) is not dict:
        return Invalid("not_object", f"expected a JSON object, got {_type_name(doc)}")
    try:
        return build(doc, not_after)
    except _Reject as r:
        return Invalid(r.error, r.detail)


# --- back to the contract's JSON form ----------------------------------------------------

# Dataclass field -> contract key, and converters for fields the parser reshaped.
_RENAMES: Final = {"value_kind": "kind", "ok": "status"}
_STATUS_WORDS: Final[dict[type, tuple[str, str]]] = {
    IntegrationSync: ("ok", "error"),
    DocumentJob: ("ok", "failed"),
}
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def event_to_dict(event: Event) -> dict[str, Any]:
    """An event in the contract's JSON form (ts as float epoch seconds, None fields omitted).

    `parse(kind, orjson.dumps(event_to_dict(e)))` gives back an event equal to `e`.
    """
    cls = type(event)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    out: dict[str, Any] = {}
    for name in names:
        v = getattr(event, name)
        if v is None:
            continue
        if name == "ok":
            ok_word, bad_word = _STATUS_WORDS[cls]
            v = ok_word if v else bad_word
        out[_RENAMES.get(name, name)] = v
    return out
