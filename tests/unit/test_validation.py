"""Tests for churnstream.stream.contract.validation: the contract's input rules and error codes."""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
from churnstream.stream.contract.validation import (
    MAX_TS,
    MAXIMA,
    MIN_TS,
    Invalid,
    event_to_dict,
    parse,
    parse_ts,
)

KINDS = sorted(EVENT_TYPES)
TS = 1_772_366_400.0  # 2026-03-01T12:00:00Z
PII = "alice@example.com"


class _AnyStr(str):
    """Equal to any string: lets tests compare a whole `Invalid` while ignoring `detail`."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str)

    __hash__ = str.__hash__


ANY_DETAIL = _AnyStr()

MINIMAL: dict[str, dict[str, Any]] = {
    "video_views": {"video_id": "v1", "watched_s": 30, "duration_s": 60},
    "logins": {},
    "integration_syncs": {"integration": "salesforce", "status": "ok"},
    "document_jobs": {"job_id": "j1", "status": "failed"},
    "value": {"value": 12.5},
    "subscriptions": {"event": "signup", "segment": "saas"},
}


def doc(kind: str, /, **overrides: Any) -> dict[str, Any]:
    """A minimal valid record of `kind`; an override of `...` removes the field."""
    d: dict[str, Any] = {"event_id": "e1", "user_id": PII, "ts": TS, **MINIMAL[kind]}
    for key, value in overrides.items():
        if value is ...:
            d.pop(key, None)
        else:
            d[key] = value
    return d


def run(kind: str, d: dict[str, Any] | list[Any] | str | int) -> Event | Invalid:
    return parse(kind, orjson.dumps(d))


def error_of(kind: str, /, **overrides: Any) -> str:
    result = run(kind, doc(kind, **overrides))
    assert isinstance(result, Invalid), result
    assert PII not in result.detail
    return result.error


# --- strategies ------------------------------------------------------------------------------

ids = st.text(min_size=1, max_size=128)
opt_text = st.none() | st.text(max_size=16)
ts_values = st.floats(min_value=MIN_TS, max_value=MAX_TS, exclude_max=True)


def non_neg(name: str) -> st.SearchStrategy[float]:
    return st.floats(min_value=0, max_value=MAXIMA[name])


def opt_non_neg(name: str) -> st.SearchStrategy[float | None]:
    return st.none() | non_neg(name)


def counts(name: str) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=int(MAXIMA[name]))


opt_segment = st.none() | st.sampled_from(SEGMENTS)


def _common() -> dict[str, st.SearchStrategy[Any]]:
    return {"event_id": ids, "user_id": ids, "ts": ts_values, "segment": opt_segment}


EVENTS: dict[str, st.SearchStrategy[Event]] = {
    "video_views": st.builds(
        VideoView,
        **_common(),
        video_id=st.text(max_size=16),
        watched_s=non_neg("watched_s"),
        duration_s=st.floats(min_value=0, max_value=MAXIMA["duration_s"], exclude_min=True),
        course_id=opt_text,
        seeks=counts("seeks"),
        rewinds=counts("rewinds"),
        pauses=counts("pauses"),
        completed=st.booleans(),
    ),
    "logins": st.builds(Login, **_common(), success=st.booleans(), channel=opt_text),
    "integration_syncs": st.builds(
        IntegrationSync,
        **_common(),
        integration=st.text(max_size=16),
        ok=st.booleans(),
        records=st.none() | counts("records"),
        latency_ms=opt_non_neg("latency_ms"),
        error_code=opt_text,
    ),
    "document_jobs": st.builds(
        DocumentJob,
        **_common(),
        job_id=st.text(max_size=16),
        ok=st.booleans(),
        documents=st.integers(min_value=1, max_value=10**6),
        processing_ms=opt_non_neg("processing_ms"),
        error=opt_text,
    ),
    "value": st.builds(ValueEvent, **_common(), value=non_neg("value"), value_kind=opt_text),
    "subscriptions": st.builds(
        Lifecycle,
        **{**_common(), "segment": st.sampled_from(SEGMENTS)},
        event=st.sampled_from(LIFECYCLE_EVENTS),
        plan_price=opt_non_neg("plan_price"),
        currency=opt_text,
    ),
}
assert EVENTS.keys() == EVENT_TYPES.keys()

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
FIELD_NAMES = sorted(
    {k for m in MINIMAL.values() for k in m}
    | {
        "event_id",
        "user_id",
        "ts",
        "segment",
        "seeks",
        "rewinds",
        "pauses",
        "completed",
        "success",
        "channel",
        "records",
        "latency_ms",
        "documents",
        "processing_ms",
        "kind",
        "plan_price",
        "currency",
        "course_id",
        "error",
        "error_code",
    }
)


# --- never raises ---------------------------------------------------------------------------


@settings(max_examples=300)
@given(kind=st.sampled_from(KINDS), data=st.binary(max_size=256))
def test_arbitrary_bytes_never_raise(kind: str, data: bytes) -> None:
    assert isinstance(parse(kind, data), Event | Invalid)


@settings(max_examples=300)
@given(
    kind=st.sampled_from(KINDS),
    patch=st.dictionaries(st.sampled_from(FIELD_NAMES), json_values, max_size=4),
)
def test_arbitrary_field_values_never_raise(kind: str, patch: dict[str, Any]) -> None:
    result = run(kind, doc(kind, **patch))
    assert isinstance(result, Event | Invalid)
    if isinstance(result, Invalid):
        assert result.error and result.detail


@settings(max_examples=100)
@given(value=json_values.filter(lambda v: not isinstance(v, dict)))
def test_any_non_object_json_is_not_object(value: Any) -> None:
    assert run("logins", value) == Invalid("not_object", ANY_DETAIL)


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_valid_events_round_trip(kind: str) -> None:
    @settings(max_examples=60)
    @given(event=EVENTS[kind])
    def check(event: Event) -> None:
        again = parse(kind, orjson.dumps(event_to_dict(event)))
        assert again == event
        assert type(again) is type(event)

    check()


def test_event_to_dict_uses_contract_names() -> None:
    sync = IntegrationSync(event_id="e", user_id="u", ts=TS, integration="x", ok=False)
    job = DocumentJob(event_id="e", user_id="u", ts=TS, job_id="j", ok=False)
    value = ValueEvent(event_id="e", user_id="u", ts=TS, value=1.0, value_kind="saved_hours")
    assert event_to_dict(sync) == {
        "event_id": "e",
        "user_id": "u",
        "ts": TS,
        "integration": "x",
        "status": "error",
    }
    assert event_to_dict(job)["status"] == "failed"
    assert event_to_dict(value)["kind"] == "saved_hours"
    assert "value_kind" not in event_to_dict(value)


# --- timestamps -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T12:00:00Z", TS),
        ("2026-03-01T12:00:00.250Z", TS + 0.25),
        ("2026-03-01T13:30:00+01:30", TS),
        ("2026-03-01 12:00:00+00:00", TS),
        ("2026-03-01t12:00:00z", TS),
        ("2026-03-01T07:00:00-05:00", TS),
    ],
)
def test_rfc3339_string_timestamps(text: str, expected: float) -> None:
    event = run("logins", doc("logins", ts=text))
    assert isinstance(event, Login)
    assert event.ts == pytest.approx(expected)


@given(ts=st.integers(min_value=int(MIN_TS), max_value=int(MAX_TS) - 1) | ts_values)
@settings(max_examples=100)
def test_epoch_timestamps(ts: float) -> None:
    event = run("logins", doc("logins", ts=ts))
    assert isinstance(event, Login)
    assert event.ts == float(ts)


# Keep a second clear of the upper bound: isoformat rounds to microseconds.
@given(ts=st.floats(min_value=MIN_TS, max_value=MAX_TS - 1))
@settings(max_examples=100)
def test_string_and_epoch_forms_agree(ts: float) -> None:
    text = datetime.fromtimestamp(ts, UTC).isoformat()
    parsed = parse_ts(text)
    assert parsed is not None
    assert math.isclose(parsed, ts, abs_tol=1e-6)


@pytest.mark.parametrize(
    "bad",
    [
        "2026-03-01T12:00:00",  # naive
        "2026-03-01",  # date only
        "20260301T120000Z",  # ISO basic format, not RFC 3339
        "2026-03-01T12:00Z",  # no seconds
        "2026-13-01T12:00:00Z",  # month 13
        "yesterday",
        "",
        "1999-12-31T23:59:59Z",
        "2101-01-01T00:00:00Z",
        True,
        False,
        MIN_TS - 1,
        MAX_TS,
        1_772_366_400_000,  # milliseconds
        [TS],
        {"s": TS},
    ],
)
def test_bad_timestamps(bad: object) -> None:
    assert parse_ts(bad) is None
    assert error_of("logins", ts=bad) == "bad_timestamp"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_parse_ts_rejects_non_finite(bad: float) -> None:
    assert parse_ts(bad) is None


# --- one test per error code ----------------------------------------------------------------


def test_too_large_is_checked_before_decoding() -> None:
    big = b"{" + b" " * 100 + b"not json at all"
    result = parse("logins", big, max_bytes=50)
    assert isinstance(result, Invalid)
    assert result.error == "too_large"
    ok = orjson.dumps(doc("logins"))
    assert isinstance(parse("logins", ok, max_bytes=len(ok)), Login)
    result = parse("logins", ok, max_bytes=len(ok) - 1)
    assert isinstance(result, Invalid)
    assert result.error == "too_large"


@pytest.mark.parametrize("value", [None, b""])
def test_empty(value: bytes | None) -> None:
    result = parse("value", value)
    assert isinstance(result, Invalid)
    assert result.error == "empty"


@pytest.mark.parametrize(
    "value",
    [b"{", b"nope", b'{"a": NaN}', b'\xff{"a":1}', b'{"event_id": "\xc3\x28"}', b"\xef\xbb\xbf{}"],
)
def test_not_json(value: bytes) -> None:
    result = parse("value", value)
    assert isinstance(result, Invalid)
    assert result.error == "not_json"


@pytest.mark.parametrize("value", [[], 1, "x", None, True])
def test_not_object(value: Any) -> None:
    result = run("value", value)
    assert isinstance(result, Invalid)
    assert result.error == "not_object"


@pytest.mark.parametrize(
    ("kind", "field"),
    [(kind, field) for kind in KINDS for field in ["event_id", "user_id", "ts", *MINIMAL[kind]]],
)
@pytest.mark.parametrize("how", ["absent", "null"])
def test_missing_field(kind: str, field: str, how: str) -> None:
    assert error_of(kind, **{field: ... if how == "absent" else None}) == f"missing_field:{field}"


@pytest.mark.parametrize(
    ("kind", "field", "bad"),
    [
        ("logins", "event_id", 7),
        ("logins", "user_id", ["u"]),
        ("logins", "segment", 1),
        ("logins", "success", "yes"),
        ("logins", "success", 1),
        ("logins", "channel", 5),
        ("video_views", "video_id", 1),
        ("video_views", "watched_s", "30"),
        ("video_views", "watched_s", True),
        ("video_views", "duration_s", {"s": 1}),
        ("video_views", "seeks", 1.5),
        ("video_views", "seeks", 2.0),
        ("video_views", "pauses", False),
        ("video_views", "completed", 1),
        ("integration_syncs", "status", True),
        ("integration_syncs", "records", 1.5),
        ("integration_syncs", "latency_ms", "fast"),
        ("document_jobs", "documents", 2.5),
        ("document_jobs", "error", {"code": 1}),
        ("value", "value", "12"),
        ("value", "kind", 3),
        ("subscriptions", "event", 1),
        ("subscriptions", "plan_price", False),
        ("subscriptions", "currency", 978),
    ],
)
def test_bad_type(kind: str, field: str, bad: object) -> None:
    assert error_of(kind, **{field: bad}) == f"bad_type:{field}"


@pytest.mark.parametrize(
    ("kind", "field", "bad"),
    [
        ("logins", "event_id", ""),
        ("logins", "user_id", ""),
        ("logins", "user_id", "u" * 129),
        ("video_views", "watched_s", -0.5),
        ("video_views", "duration_s", 0),
        ("video_views", "duration_s", -1),
        ("video_views", "seeks", -1),
        ("video_views", "rewinds", -1),
        ("integration_syncs", "records", -1),
        ("integration_syncs", "latency_ms", -1),
        ("document_jobs", "documents", 0),
        ("document_jobs", "processing_ms", -0.1),
        ("value", "value", -1),
        ("subscriptions", "plan_price", -10),
    ],
)
def test_out_of_range(kind: str, field: str, bad: object) -> None:
    assert error_of(kind, **{field: bad}) == f"out_of_range:{field}"


def test_id_length_bounds_are_inclusive() -> None:
    assert isinstance(run("logins", doc("logins", user_id="u" * 128, event_id="e")), Login)
    assert isinstance(run("logins", doc("logins", user_id="u", event_id="e" * 128)), Login)


def test_bad_timestamp_detail_has_no_personal_data() -> None:
    assert error_of("logins", ts=PII) == "bad_timestamp"


@pytest.mark.parametrize(
    ("kind", "field", "bad"),
    [
        ("integration_syncs", "status", "failed"),
        ("document_jobs", "status", "error"),
        ("document_jobs", "status", "OK"),
        ("subscriptions", "event", "upgrade"),
        ("subscriptions", "segment", "enterprise"),
        ("logins", "segment", "Course"),
        ("value", "segment", PII),
    ],
)
def test_bad_enum(kind: str, field: str, bad: str) -> None:
    assert error_of(kind, **{field: bad}) == f"bad_enum:{field}"


def test_unknown_kind_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="unknown event kind"):
        parse("erasure", b"{}")


# --- contract semantics ---------------------------------------------------------------------


@settings(max_examples=50)
@given(
    kind=st.sampled_from(KINDS),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=8).filter(lambda k: k not in FIELD_NAMES),
        json_values,
        max_size=4,
    ),
)
def test_unknown_fields_are_ignored(kind: str, extra: dict[str, Any]) -> None:
    assert run(kind, {**doc(kind), **extra}) == run(kind, doc(kind))


def test_defaults_are_applied() -> None:
    video = run("video_views", doc("video_views", watched_s=53, duration_s=60))
    assert video == VideoView(
        event_id="e1",
        user_id=PII,
        ts=TS,
        video_id="v1",
        watched_s=53.0,
        duration_s=60.0,
        seeks=0,
        rewinds=0,
        pauses=0,
        completed=False,
    )
    login = run("logins", doc("logins"))
    assert isinstance(login, Login)
    assert login.success is True
    job = run("document_jobs", doc("document_jobs"))
    assert isinstance(job, DocumentJob)
    assert (job.documents, job.ok) == (1, False)


@pytest.mark.parametrize(
    ("watched", "duration", "explicit", "expected"),
    [
        (54, 60, None, True),  # exactly 0.9
        (53.9, 60, None, False),
        (60, 60, None, True),
        (10, 60, True, True),  # explicit value wins
        (60, 60, False, False),
    ],
)
def test_completed_default(
    watched: float, duration: float, explicit: bool | None, expected: bool
) -> None:
    video = run(
        "video_views",
        doc("video_views", watched_s=watched, duration_s=duration, completed=explicit),
    )
    assert isinstance(video, VideoView)
    assert video.completed is expected


def test_status_and_kind_mapping() -> None:
    ok_sync = run("integration_syncs", doc("integration_syncs", status="ok"))
    bad_sync = run("integration_syncs", doc("integration_syncs", status="error"))
    assert isinstance(ok_sync, IntegrationSync) and ok_sync.ok is True
    assert isinstance(bad_sync, IntegrationSync) and bad_sync.ok is False
    value = run("value", doc("value", kind="saved_hours"))
    assert isinstance(value, ValueEvent) and value.value_kind == "saved_hours"


def test_null_optional_fields_count_as_absent() -> None:
    nulls = {"segment": None, "channel": None, "success": None}
    assert run("logins", doc("logins", **nulls)) == run("logins", doc("logins"))


def test_numbers_accept_ints_and_floats() -> None:
    a = run("value", doc("value", value=3))
    b = run("value", doc("value", value=3.0))
    assert isinstance(a, ValueEvent) and a == b and isinstance(a.value, float)


# --- event time against the receiver's clock ------------------------------------------------


@pytest.mark.parametrize("kind", sorted(MINIMAL))
def test_event_time_beyond_the_allowed_skew_is_its_own_error(kind: str) -> None:
    value = orjson.dumps(doc(kind, ts=TS + 86_401))
    result = parse(kind, value, not_after=TS + 86_400)
    assert isinstance(result, Invalid)
    assert result.error == "future_timestamp"
    assert PII not in result.detail
    assert isinstance(
        parse(kind, orjson.dumps(doc(kind, ts=TS + 86_400)), not_after=TS + 86_400), Event
    )


def test_without_a_clock_bound_history_of_any_age_is_accepted() -> None:
    # `replay` passes no bound: old events (and the contract's whole time range) stay valid.
    assert isinstance(parse("logins", orjson.dumps(doc("logins", ts=MIN_TS))), Login)
    assert isinstance(parse("logins", orjson.dumps(doc("logins", ts=MAX_TS - 1))), Login)
    old = orjson.dumps(doc("logins", ts=MIN_TS))
    assert isinstance(parse("logins", old, not_after=TS), Login)


# --- every number bounded -------------------------------------------------------------------

KIND_OF_FIELD = {
    name: kind
    for kind, cls in EVENT_TYPES.items()
    for name in (f.name for f in fields(cls))
    if name in MAXIMA
}


def test_every_numeric_field_of_the_contract_has_an_upper_bound() -> None:
    numeric = {
        f.name
        for cls in EVENT_TYPES.values()
        for f in fields(cls)
        if str(f.type).split(" |")[0] in {"int", "float"} and f.name != "ts"
    }
    assert numeric == set(MAXIMA)


@pytest.mark.parametrize("field", sorted(MAXIMA))
def test_numbers_above_their_bound_are_out_of_range(field: str) -> None:
    kind = KIND_OF_FIELD[field]
    top = MAXIMA[field]
    integral = field in {"seeks", "rewinds", "pauses", "records", "documents"}
    extremes = [10**18, int(top) + 1] if integral else [1e307, 1.7e307, 1.5e306, top * 1.000001]
    for bad in extremes:
        assert error_of(kind, **{field: bad}) == f"out_of_range:{field}"
    at_top = run(kind, doc(kind, **{field: int(top) if integral else top}))
    assert isinstance(at_top, Event), at_top
