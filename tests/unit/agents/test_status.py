"""What a worker waits for: `EventProcessor.status` and the line `churnstream tail --status`
prints from it."""

from __future__ import annotations

from typing import Any

from churnstream.agents.configure import alert_policy, live_engine_config
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.processor import EventProcessor
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.cli.commands.tail import format_status
from churnstream.stream.contract.events import Login, ValueEvent
from churnstream.stream.settings import Settings

T0 = 1_700_000_000.0


class Records:
    """The user records (the table repository's role in the detector and at a rebalance)."""

    def __init__(self) -> None:
        self.users: dict[str, UserRecord] = {}

    def get(self, user_id: str) -> UserRecord | None:
        return self.users.get(user_id)

    def put(self, record: UserRecord) -> None:
        self.users[record.user_id] = record

    def forget(self) -> None:
        pass  # nothing cached apart from what is stored

    def records(self) -> list[UserRecord]:
        return list(self.users.values())


def processor() -> EventProcessor:
    settings = Settings(topic_prefix="t.", source_wait_s=120.0)
    config = live_engine_config(settings)
    repo = Records()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    return EventProcessor(settings, WorkerMetrics(), detector, repo)  # type: ignore[arg-type]


def login(ts: float) -> Login:
    return Login(event_id=f"e{ts}", user_id="u1", ts=ts)


def value(ts: float) -> ValueEvent:
    return ValueEvent(event_id=f"v{ts}", user_id="u1", ts=ts, value=5.0)


def test_status_names_each_source_waited_for_and_how_long() -> None:
    p = processor()
    assert p.status(0.0) == {"waiting_for": [], "model_held": None}
    p.detector.handle(login(T0), ("t.behaviour.logins", 0, 0))
    p.waiting(100.0)
    status = p.status(130.0)
    waiting = {s["source"]: s for s in status["waiting_for"]}
    # Logins have started; every other contract topic has sent nothing yet.
    assert "behaviour.logins/0" not in waiting
    value = waiting["value (not started)"]
    assert value == {
        "source": "value (not started)",
        "kind": "value",
        "progress": None,
        "waited_s": 30.0,
        "limit_s": 120.0,
    }
    # Given up at the limit: no longer waited for.
    p.waiting(221.0)
    assert p.status(221.0)["waiting_for"] == []


def test_a_partition_of_a_kind_behind_the_others_is_shown_with_its_progress() -> None:
    p = processor()
    p.detector.handle(value(T0), ("t.business.value", 1, 0))
    for day in (1, 2, 3):  # the logins go on, one day at a time; value stays
        p.detector.handle(login(T0 + day * 86400), ("t.behaviour.logins", 0, day))
    # A logins partition behind the other one only lacks events: not waited for.
    p.detector.handle(login(T0), ("t.behaviour.logins", 1, 0))
    p.waiting(10.0)
    waiting = {s["source"]: s for s in p.status(12.0)["waiting_for"]}
    assert "behaviour.logins/1" not in waiting
    assert waiting["business.value/1"]["progress"] == "2023-11-14T22:13:20.000Z"
    assert waiting["business.value/1"]["kind"] == "value"
    assert waiting["business.value/1"]["waited_s"] == 2.0


def test_the_status_line() -> None:
    doc: dict[str, Any] = {
        "waiting_for": [
            {"source": "business.value/2", "kind": "value", "progress": "2024-03-01T00:00:00Z",
             "waited_s": 41.6, "limit_s": 120.0},
            {"source": "login (not started)", "kind": "login", "progress": None,
             "waited_s": 3.0, "limit_s": 120.0},
        ],
        "model_held": {"boundary": "2024-03-02T00:00:00Z", "waited_s": 5.0, "limit_s": 60.0},
    }  # fmt: skip
    assert format_status(doc) == (
        "worker waits for business.value/2 (at 2024-03-01T00:00:00Z, waited 42 of 120 s); "
        "login (not started) (nothing yet, waited 3 of 120 s); "
        "a model snapshot as of 2024-03-02T00:00:00Z (waited 5 of 60 s)"
    )
    assert format_status({"waiting_for": [], "model_held": None}) == "worker waits for nothing"


def test_the_status_line_names_where_intake_stopped() -> None:
    doc: dict[str, Any] = {
        "waiting_for": [],
        "model_held": None,
        "events_held": {"t.behaviour.logins": 120, "t.business.value": 3},
        "intake_held": "2024-03-06T00:00:00.000Z",
    }
    assert format_status(doc) == (
        "worker waits for the daily rows before 2024-03-06T00:00:00.000Z "
        "(123 events from then on held)"
    )
