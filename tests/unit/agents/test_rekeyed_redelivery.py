"""Copies re-sent through churn.rekeyed after a crash are applied once (pseudonymisation on).

Every record goes through churn.rekeyed; a worker that crashed before committing its input
offsets re-keys the same records again, and the copies get new offsets there. A user with more
events in that window than the 64 event-id hashes a state keeps must still count each once.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from churnstream.agents.configure import alert_policy, live_engine_config
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.processor import EventProcessor
from churnstream.agents.redelivery import ORIGIN_HEADER, origin_of
from churnstream.features import FEATURE_NAMES
from churnstream.features.buckets import LOGINS
from churnstream.model.engine import Detector
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.pseudonym import pseudonym
from churnstream.stream.kafka.security import ENV_VARS
from churnstream.stream.settings import Settings

KEY = "0123456789abcdef-test-key"
RAW = "alice@example.org"
ALIAS = pseudonym(RAW, KEY.encode())
T0 = 1_700_000_000.0
N = 200  # events in the redelivery window, far more than the 64 event-id hashes


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


class Rekeyed:
    """churn.rekeyed (one partition): what the processor produces, at growing offsets."""

    def __init__(self) -> None:
        self.log: list[Any] = []
        self.other: list[str] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        if topic != "churn.rekeyed":
            self.other.append(topic)
            return
        self.log.append(
            SimpleNamespace(
                topic=topic,
                partition=0,
                offset=len(self.log),
                key=key,
                value=value,
                headers=headers,
                timestamp=T0,
            )
        )


def processor() -> tuple[EventProcessor, Records]:
    settings = Settings(extra={"CHURNSTREAM_PSEUDONYM_KEY": KEY})
    config = live_engine_config(settings)
    repo = Records()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    return EventProcessor(settings, WorkerMetrics(), detector, repo), repo  # type: ignore[arg-type]


def logins() -> list[Any]:
    """The producer's records on behaviour.logins partition 2, keyed by the raw id."""
    return [
        SimpleNamespace(
            topic="behaviour.logins",
            partition=2,
            offset=100 + i,
            key=RAW.encode(),
            value=orjson.dumps({"user_id": RAW, "event_id": f"e{i}", "ts": T0 + 60.0 * i}),
            headers=None,
        )
        for i in range(N)
    ]


def test_copies_re_sent_after_a_crash_are_applied_once() -> None:
    p, repo = processor()
    rekeyed = Rekeyed()
    for message in logins():  # the first run re-keys the window...
        assert p.validate(message, rekeyed) is None
    for message in logins():  # ...crashes before its commit, and the restart re-keys it again
        assert p.validate(message, rekeyed) is None
    assert len(rekeyed.log) == 2 * N
    results = []
    for copy in rekeyed.log:  # the owner of the pseudonym's partition applies what arrives
        event = p.validate(copy, rekeyed)
        assert event is not None and event.user_id == ALIAS
        before = p.metrics.registry.get_sample_value(
            "churnstream_records_consumed_total", {"topic": "churn.rekeyed", "result": "ok"}
        )
        p.apply(event, copy, rekeyed)
        after = p.metrics.registry.get_sample_value(
            "churnstream_records_consumed_total", {"topic": "churn.rekeyed", "result": "ok"}
        )
        results.append(after != before)
    assert results == [True] * N + [False] * N
    redelivered = p.metrics.registry.get_sample_value(
        "churnstream_records_consumed_total", {"topic": "churn.rekeyed", "result": "redelivered"}
    )
    assert redelivered == N
    state = repo.records[ALIAS].state
    assert sum(row[LOGINS] for row in state.rows if row is not None) == N  # counted once
    assert RAW.encode() not in state.to_bytes()


def test_the_origin_header_names_the_input_position_and_bad_headers_are_ignored() -> None:
    p, _ = processor()
    rekeyed = Rekeyed()
    p.validate(logins()[5], rekeyed)
    [copy] = rekeyed.log
    assert dict(copy.headers)[ORIGIN_HEADER] == b"behaviour.logins:2:105"
    assert origin_of(copy) == ("behaviour.logins~", 2, 105)
    for bad in (b"", b"behaviour.logins:x:1", b"\xff", b"nocolon"):
        copy.headers = [(ORIGIN_HEADER, bad)]
        assert origin_of(copy) is None
