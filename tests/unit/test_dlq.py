"""Tests for churnstream.stream.contract.dlq: the contract's dead-letter record."""

from __future__ import annotations

import base64
from datetime import datetime
from types import SimpleNamespace

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnstream.stream.contract.dlq import DLQ_FIELDS, dead_letter_of, decode_dlq, dlq_record
from churnstream.stream.contract.validation import Invalid, parse

RECEIVED = 1_772_366_400.123  # 2026-03-01T12:00:00.123Z


def record(payload: bytes | None, max_bytes: int = 65536, **kw: object) -> bytes:
    args: dict[str, object] = {
        "source_topic": "behaviour.logins",
        "partition": 3,
        "offset": 1042,
        "error": "not_json",
        "detail": "record value is not valid UTF-8 JSON",
        "payload": payload,
        "max_bytes": max_bytes,
        "received_at": RECEIVED,
        **kw,
    }
    return dlq_record(**args)  # type: ignore[arg-type]


def test_record_has_exactly_the_contract_fields_plus_size() -> None:
    doc = orjson.loads(record(b"{oops"))
    assert set(doc) == {*DLQ_FIELDS, "payload_size", "payload_truncated"}
    assert doc["payload_truncated"] is False
    assert doc["source_topic"] == "behaviour.logins"
    assert (doc["partition"], doc["offset"]) == (3, 1042)
    assert doc["error"] == "not_json"
    assert base64.b64decode(doc["payload_b64"]) == b"{oops"
    assert doc["payload_size"] == 5


def test_received_at_is_rfc3339_utc() -> None:
    text = orjson.loads(record(b"x"))["received_at"]
    assert text == "2026-03-01T12:00:00.123Z"
    assert datetime.fromisoformat(text).timestamp() == pytest.approx(RECEIVED, abs=1e-3)


@settings(max_examples=100)
@given(payload=st.binary(max_size=300), max_bytes=st.integers(min_value=0, max_value=400))
def test_payload_is_cut_at_the_limit_and_round_trips(payload: bytes, max_bytes: int) -> None:
    decoded = decode_dlq(record(payload, max_bytes=max_bytes))
    assert decoded["payload"] == payload[:max_bytes]
    assert decoded["payload_size"] == len(payload)
    assert decoded["payload_truncated"] is (max_bytes < len(payload))


@settings(max_examples=200)
@given(
    size=st.integers(min_value=0, max_value=50_000),
    limit=st.integers(min_value=2000, max_value=40_000),
    key=st.none() | st.binary(max_size=200),
)
def test_a_dead_letter_record_always_fits_its_limit(
    size: int, limit: int, key: bytes | None
) -> None:
    """However large the value, key plus record stay within the limit (the broker would refuse
    a larger one and hold the worker's inputs); a cut payload says so and keeps its size."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    msg = SimpleNamespace(topic="behaviour.logins", partition=0, offset=7, key=key, value=payload)
    out_key, value = dead_letter_of(
        msg, "too_large", "d" * 600, max_bytes=16 * 2**20, record_limit=limit
    )
    assert len(value) + len(out_key or b"") <= limit
    decoded = decode_dlq(value)
    assert decoded["payload_size"] == size
    assert decoded["payload"] == payload[: len(decoded["payload"])]
    assert decoded["payload_truncated"] is (len(decoded["payload"]) < size)
    if decoded["payload_truncated"]:  # cut no further than needed (base64 comes in fours)
        assert len(value) + len(out_key or b"") > limit - 8


def test_null_payload() -> None:
    decoded = decode_dlq(record(None, error="empty"))
    assert decoded["payload_b64"] is None
    assert decoded["payload"] is None
    assert decoded["payload_size"] is None


def test_long_detail_is_capped() -> None:
    decoded = decode_dlq(record(b"x", detail="d" * 10_000))
    assert 0 < len(decoded["detail"]) < 10_000


def test_from_a_parse_result() -> None:
    raw = b'{"event_id": "e", "user_id": "u", "ts": "yesterday"}'
    invalid = parse("logins", raw)
    assert isinstance(invalid, Invalid)
    decoded = decode_dlq(record(raw, error=invalid.error, detail=invalid.detail))
    assert (decoded["error"], decoded["detail"]) == (invalid.error, invalid.detail)
    assert decoded["payload"] == raw


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"[1, 2]",
        b'{"source_topic": "t"}',
        orjson.dumps({name: "x" for name in DLQ_FIELDS} | {"payload_b64": "***"}),
        orjson.dumps({name: "x" for name in DLQ_FIELDS} | {"payload_b64": 12}),
    ],
)
def test_decode_rejects_non_dlq_values(bad: bytes) -> None:
    with pytest.raises(ValueError, match="DLQ"):
        decode_dlq(bad)
