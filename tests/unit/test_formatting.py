"""Tests for churnstream.stream.cli.formatting: one safe, readable line per output record."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnstream.stream.cli.formatting import (
    BOLD_RED,
    GREEN,
    MAGENTA,
    RED,
    RESET,
    YELLOW,
    format_record,
)
from churnstream.stream.contract.dlq import dlq_record

TS = 1_772_366_400.0
OUR_CODES = re.compile(r"\x1b\[[0-9;]*m")


def alert(**kw: Any) -> bytes:
    doc = {
        "alert_id": "a-1",
        "kind": "churn_risk",
        "user_id": "u-42",
        "segment": "saas",
        "ts": TS,
        "severity": "critical",
        "value": 0.873,
        "threshold": 0.7,
        "drivers": [
            {"feature": "logins_7d", "value": 0, "contribution": 0.31},
            {"feature": "sync_errors_7d", "value": 5, "contribution": 0.12},
        ],
        "action": {"code": "integration_call", "text": "Offer an integration support call"},
        "message": "risk 0.87 above 0.70",
    }
    return orjson.dumps(doc | kw)


def score(**kw: Any) -> bytes:
    doc = {
        "user_id": "u-42",
        "segment": "course",
        "ts": TS,
        "score": 0.12,
        "source": "rules",
        "model_version": None,
        "horizon_days": 7,
        "drivers": [{"feature": "watch_ratio_7d", "value": 0.2, "contribution": 0.05}],
        "scored_at": TS + 1,
    }
    return orjson.dumps(doc | kw)


def dlq(**kw: Any) -> bytes:
    args: dict[str, Any] = {
        "source_topic": "behaviour.logins",
        "partition": 2,
        "offset": 77,
        "error": "missing_field:user_id",
        "detail": "required field 'user_id' is missing",
        "payload": b'{"event_id": "e"}',
        "max_bytes": 65536,
        "received_at": TS,
    }
    return dlq_record(**(args | kw))


def test_alert_line_shows_the_essentials() -> None:
    line = format_record("churn.alerts", alert(), color=False)
    assert "\n" not in line
    for part in (
        "2026-03-01T12:00:00Z",
        "CRITICAL",
        "churn_risk",
        "u-42",
        "saas",
        "0.873",
        "0.700",
        "integration_call",
        "logins_7d",
        "+0.31",
    ):
        assert part in line
    assert "\x1b" not in line


def test_alert_action_may_be_a_plain_string() -> None:
    assert "roi_review" in format_record("churn.alerts", alert(action="roi_review"), color=False)


@pytest.mark.parametrize(("severity", "code"), [("critical", BOLD_RED), ("warning", YELLOW)])
def test_alert_colour_follows_severity(severity: str, code: str) -> None:
    line = format_record("churn.alerts", alert(severity=severity), color=True)
    assert code in line and RESET in line
    assert OUR_CODES.sub("", line) == format_record(
        "churn.alerts", alert(severity=severity), color=False
    )


@pytest.mark.parametrize(("value", "code"), [(0.95, RED), (0.5, YELLOW), (0.05, GREEN)])
def test_score_colour_follows_risk(value: float, code: str) -> None:
    line = format_record("churn.risk-scores", score(score=value), color=True)
    assert code in line
    assert f"{value:.3f}" in line


def test_dlq_line() -> None:
    line = format_record("churn.dlq", dlq(), color=True)
    assert MAGENTA in line
    plain = OUR_CODES.sub("", line)
    for part in ("missing_field:user_id", "behaviour.logins[2]@77", "required field"):
        assert part in plain


def test_columns_are_aligned() -> None:
    lines = [
        format_record("churn.alerts", alert(kind="roi_drop", severity="warning"), color=False),
        format_record("churn.alerts", alert(), color=False),
    ]
    assert lines[0].index("u-42") == lines[1].index("u-42")
    assert lines[0].index("saas") == lines[1].index("saas")


def test_prefixed_topics_and_shape_detection() -> None:
    expected = format_record("churn.alerts", alert(), color=False)
    assert format_record("prod.churn.alerts", alert(), color=False) == expected
    assert format_record("some-copy", alert(), color=False) == expected
    assert format_record("copy", score(), color=False) == format_record(
        "churn.risk-scores", score(), color=False
    )


def test_hostile_strings_cannot_reach_the_terminal() -> None:
    evil = "u-\x1b[2J\x9b31m\nnext"
    for line in (
        format_record("churn.alerts", alert(user_id=evil), color=True),
        format_record("churn.risk-scores", score(segment=evil), color=True),
        format_record("churn.dlq", dlq(detail=evil), color=True),
        format_record("other", orjson.dumps({"x": evil}), color=True),
    ):
        plain = OUR_CODES.sub("", line)
        assert "\x1b" not in plain and "\x9b" not in plain and "\n" not in plain


def test_unknown_records_are_printed_raw() -> None:
    assert format_record("other", b'{"a": 1}', color=True) == '{"a":1}'
    assert format_record("churn.alerts", b"[1,2]", color=True) == "[1,2]"
    assert format_record("churn.alerts", b"\xff\x1b", color=True) == repr(b"\xff\x1b")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
SHAPE_KEYS = [
    "alert_id",
    "kind",
    "user_id",
    "segment",
    "ts",
    "severity",
    "value",
    "threshold",
    "drivers",
    "action",
    "score",
    "source",
    "horizon_days",
    "model_version",
    "payload_b64",
    "received_at",
    "payload_size",
    "error",
    "detail",
    "offset",
]


@settings(max_examples=200)
@given(
    topic=st.sampled_from(["churn.alerts", "churn.risk-scores", "churn.dlq", "other"]),
    doc=st.dictionaries(st.sampled_from(SHAPE_KEYS), json_values, max_size=8),
    color=st.booleans(),
)
def test_never_raises_on_odd_shapes(topic: str, doc: dict[str, Any], color: bool) -> None:
    line = format_record(topic, orjson.dumps(doc), color=color)
    assert isinstance(line, str) and "\n" not in line


@settings(max_examples=200)
@given(
    topic=st.sampled_from(["churn.alerts", "churn.risk-scores", "churn.dlq", "other"]),
    value=st.binary(max_size=64),
)
def test_never_raises_on_arbitrary_bytes(topic: str, value: bytes) -> None:
    assert isinstance(format_record(topic, value, color=True), str)
