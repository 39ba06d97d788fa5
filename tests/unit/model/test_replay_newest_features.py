"""A replay without a scores file derives only each user's newest event score's features, at
the end, from the state as it is then (`Detector.event_vectors` False): the state must be the
one of that event. Histories that end with what changes a state without a newer event score
(a cancel, events of a churned user, a duplicate, an event too late) must give the stored last
scores, alerts and report of a replay that records every event score."""

from __future__ import annotations

import io
from typing import Any

import pytest

from churnstream.agents import configure
from churnstream.model.replay import Replay
from churnstream.stream.contract.events import (
    DAY_S,
    Event,
    Lifecycle,
    Login,
    ValueEvent,
)
from churnstream.stream.settings import Settings

D0 = 20_500 * DAY_S  # a UTC midnight
KIND = {Login: "logins", ValueEvent: "value", Lifecycle: "subscriptions"}


def history() -> list[Event]:
    """Four saas customers with 20 days of value and logins, each ending differently."""
    out: list[Event] = []
    ends = ("cancel", "churned_login", "duplicate", "too_late", "cancel_value")
    for u, end in enumerate(ends):
        uid = f"u{u}"
        out.append(
            Lifecycle(
                event_id=f"{uid}-s",
                user_id=uid,
                ts=D0 + 60.0 * u,
                event="signup",
                segment="saas",
                plan_price=90.0,
            )
        )
        for d in range(20):
            t = D0 + d * DAY_S + 3600.0 + 60.0 * u
            value = 50.0 if d < 12 else 1.0  # a drop in value: roi_drop alerts
            out.append(ValueEvent(event_id=f"{uid}-v{d}", user_id=uid, ts=t, value=value))
            out.append(Login(event_id=f"{uid}-l{d}", user_id=uid, ts=t + 600.0))
        last = D0 + 19 * DAY_S + 7200.0 + 60.0 * u
        if end.startswith("cancel"):
            out.append(Lifecycle(event_id=f"{uid}-c", user_id=uid, ts=last, event="cancel"))
        if end == "cancel_value":  # a churned customer's value event (no event score)
            out.append(ValueEvent(event_id=f"{uid}-vx", user_id=uid, ts=last + 60.0, value=9.0))
        if end == "churned_login":
            out.append(Lifecycle(event_id=f"{uid}-c", user_id=uid, ts=last, event="cancel"))
            out.append(Login(event_id=f"{uid}-lx", user_id=uid, ts=last + 3600.0))
        if end == "duplicate":
            out.append(Login(event_id=f"{uid}-l19", user_id=uid, ts=last))
        if end == "too_late":
            out.append(Login(event_id=f"{uid}-old", user_id=uid, ts=D0 - 40 * DAY_S))
    # The file's event-time order, as `churnstream replay` reads it (ties keep this order).
    return sorted(out, key=lambda e: e.ts)


def run(events: list[Event], *, event_vectors: bool, min_interval_s: float) -> dict[str, Any]:
    """Replay without a scores file; `event_vectors` True: the features of every event score
    are derived at the event (as before `UserState.roi_features`)."""
    alerts_out = io.BytesIO()
    replay: Replay = configure.replay(
        Settings.from_env({"CHURNSTREAM_SCORE_MIN_INTERVAL_S": str(min_interval_s)}),
        alerts_out=alerts_out,
        wall_clock=lambda: 0.0,
    )
    assert replay.detector.event_vectors is False
    replay.detector.event_vectors = event_vectors
    # The features each newest event score is worked out from at the end (`complete_last`).
    newest: list[tuple[str, float, dict[str, float]]] = []
    scorer, complete_last = replay.scorer, replay.detector.complete_last

    def recording_complete_last() -> None:
        score_with = scorer.score_with

        def recording(model: Any, segment: str, x: dict[str, float]) -> Any:
            newest.append((segment, x["tenure_days"], dict(x)))
            return score_with(model, segment, x)

        scorer.score_with = recording  # type: ignore[method-assign]
        try:
            complete_last()
        finally:
            del scorer.score_with

    replay.detector.complete_last = recording_complete_last  # type: ignore[method-assign]
    for event in events:
        replay.feed_parsed(KIND[type(event)], event)
    replay.finish()
    return {
        "report": replay.report(),
        "alerts": alerts_out.getvalue(),
        "states": sorted(replay.states(), key=lambda v: v["user_id"]),
        "newest": sorted(newest, key=lambda n: (n[0], n[1])),
    }


@pytest.mark.parametrize("min_interval_s", [0.0, 7200.0])
def test_newest_event_score_as_when_every_event_is_scored(min_interval_s: float) -> None:
    events = history()
    every = run(events, event_vectors=True, min_interval_s=min_interval_s)
    newest = run(events, event_vectors=False, min_interval_s=min_interval_s)
    assert b"roi_drop" in every["alerts"]
    assert [v["churned"] for v in every["states"]] == [True, True, False, False, True]
    assert len(every["newest"]) == 5
    for part in ("report", "alerts", "states", "newest"):
        assert newest[part] == every[part], part
