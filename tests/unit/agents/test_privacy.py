"""Privacy of what a worker keeps: no raw user id in the DLQ when pseudonymisation is on, and
erasure requests naming a pseudonym or a raw id erase the right user."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from churnstream.agents.configure import alert_policy, live_engine_config
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.processor import EventProcessor
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.cli.commands.forget import request_for
from churnstream.stream.contract.dlq import decode_dlq
from churnstream.stream.contract.pseudonym import Pseudonymizer, pseudonym
from churnstream.stream.kafka.security import ENV_VARS
from churnstream.stream.settings import Settings

KEY = "0123456789abcdef-test-key"
RAW = "alice@example.org"
ALIAS = pseudonym(RAW, KEY.encode())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)


class Records:
    def __init__(self) -> None:
        self.records: dict[str, UserRecord] = {}

    def get(self, user_id: str) -> UserRecord | None:
        return self.records.get(user_id)

    def put(self, record: UserRecord) -> None:
        self.records[record.user_id] = record


class Out:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.records.append((topic, key, value))


def processor(extra: dict[str, str]) -> EventProcessor:
    settings = Settings(extra=extra)
    config = live_engine_config(settings)
    repo = Records()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    return EventProcessor(settings, WorkerMetrics(), detector, repo)  # type: ignore[arg-type]


def message(value: bytes, key: bytes | None = RAW.encode()) -> Any:
    return SimpleNamespace(
        topic="behaviour.logins", partition=0, offset=3, key=key, value=value, headers=None
    )


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        # Invalid (no ts): the payload is kept with the user id replaced.
        (orjson.dumps({"event_id": "e1", "user_id": RAW}), True),
        # Not JSON, or no string user_id: the raw id may be anywhere, nothing is kept.
        (b"garbage " + RAW.encode(), False),
        (orjson.dumps({"event_id": "e1", "userId": RAW, "ts": 1}), False),
    ],
)
def test_no_raw_id_in_the_dlq_when_pseudonymisation_is_on(value: bytes, kept: bool) -> None:
    p = processor({"CHURNSTREAM_PSEUDONYM_KEY": KEY})
    out = Out()
    assert p.validate(message(value), out) is None
    [(topic, key, record)] = out.records
    assert topic == "churn.dlq"
    assert key == ALIAS.encode()
    assert RAW.encode() not in record
    dead = decode_dlq(record)
    if kept:
        assert orjson.loads(dead["payload"])["user_id"] == ALIAS
        assert "user_id pseudonymised" in dead["detail"]
    else:
        assert dead["payload"] is None
        assert "payload dropped" in dead["detail"]
    assert dead["payload_size"] is None or dead["payload_size"] > 0


def test_without_pseudonymisation_the_dlq_keeps_the_record_as_it_came() -> None:
    p = processor({})
    out = Out()
    value = orjson.dumps({"event_id": "e1", "user_id": RAW})
    p.validate(message(value), out)
    [(_, key, record)] = out.records
    assert key == RAW.encode()
    assert decode_dlq(record)["payload"] == value


def test_forget_takes_a_pseudonym_or_a_raw_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNSTREAM_PSEUDONYM_KEY", KEY)
    # The pseudonym is published as given (it was hashed again, naming nobody).
    assert request_for(ALIAS, Settings()).user_id == ALIAS
    assert request_for(RAW, Settings()).user_id == ALIAS


def test_forget_without_pseudonymisation_takes_every_id_as_raw() -> None:
    assert request_for(ALIAS, Settings()).user_id == ALIAS
    assert request_for(RAW, Settings()).user_id == RAW


def test_stored_id() -> None:
    on, off = Pseudonymizer(KEY.encode()), Pseudonymizer(None)
    assert on.stored_id(RAW) == ALIAS == on.stored_id(ALIAS)
    assert off.stored_id(RAW) == RAW and off.stored_id(ALIAS) == ALIAS


def test_the_key_fingerprint_names_the_key_without_revealing_it() -> None:
    from churnstream.stream.contract.pseudonym import fingerprint

    on = Pseudonymizer(KEY.encode()).fingerprint
    assert on == fingerprint(KEY.encode()) and on.startswith("hmac-sha256:")
    assert KEY not in on and on != fingerprint(b"another-key-of-16-bytes")
    assert Pseudonymizer(None).fingerprint == "off"
