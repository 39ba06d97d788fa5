"""Churn-risk alert policy: thresholds, hysteresis, cooldown, escalation, lifecycle, ids."""

from __future__ import annotations

import pytest

from churnstream.model.alerts import (
    Action,
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    Driver,
    RiskThresholds,
    alert_id,
    top_drivers,
)

DAY = 86_400.0
T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z
DRIVERS = [Driver("rewinds_per_min_7d", 0.25, 0.9), Driver("trend_watch_minutes", 0.3, 1.4)]


@pytest.fixture
def policy() -> AlertPolicy:
    # Explicit levels, no warm-up, no hold: these tests are about the mechanics, not defaults.
    return AlertPolicy(
        AlertConfig(
            thresholds=RiskThresholds(0.5, 0.75, 0.35),
            segment_thresholds={"saas": RiskThresholds(0.6, 0.9, 0.4)},
            risk_warmup_s=0.0,
            risk_hold_s=0.0,
        )
    )


def run(
    policy: AlertPolicy,
    scores: list[tuple[float, float]],
    segment: str = "course",
    memory: AlertMemory | None = None,
) -> list[tuple[float, str]]:
    """Feed (ts, score) pairs; return (ts, severity) of the alerts raised."""
    memory = memory if memory is not None else AlertMemory()
    out = []
    for ts, score in scores:
        alert = policy.on_score("u1", segment, ts, score, DRIVERS, memory)
        if alert is not None:
            out.append((alert.ts, alert.severity))
    return out


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.49, None),
        (0.5, "warning"),
        (0.74, "warning"),
        (0.75, "critical"),
        (1.0, "critical"),
    ],
)
def test_default_thresholds(policy: AlertPolicy, score: float, expected: str | None) -> None:
    alert = policy.on_score("u1", "course", T0, score, DRIVERS, AlertMemory())
    assert (alert.severity if alert else None) == expected
    if alert:
        assert alert.value == score
        assert alert.threshold == (0.75 if expected == "critical" else 0.5)


def test_segment_thresholds_override_defaults(policy: AlertPolicy) -> None:
    assert policy.on_score("u1", "saas", T0, 0.55, DRIVERS, AlertMemory()) is None
    alert = policy.on_score("u1", "saas", T0, 0.61, DRIVERS, AlertMemory())
    assert alert is not None and alert.threshold == 0.6


def test_raised_once_while_condition_holds(policy: AlertPolicy) -> None:
    hours = [(T0 + h * 3600, 0.6) for h in range(48)]
    assert run(policy, hours) == [(T0, "warning")]


def test_hysteresis_no_reraise_between_clear_and_warning(policy: AlertPolicy) -> None:
    # Dipping to 0.4 (above clear 0.35) keeps the episode, even after the cooldown.
    scores = [(T0, 0.6), (T0 + 8 * DAY, 0.4), (T0 + 9 * DAY, 0.6)]
    assert run(policy, scores) == [(T0, "warning")]


def test_clears_below_clear_level_then_raises_again(policy: AlertPolicy) -> None:
    scores = [(T0, 0.6), (T0 + 8 * DAY, 0.3), (T0 + 9 * DAY, 0.6)]
    assert run(policy, scores) == [(T0, "warning"), (T0 + 9 * DAY, "warning")]


def test_cooldown_in_event_time(policy: AlertPolicy) -> None:
    restart = [
        (T0, 0.6),
        (T0 + DAY, 0.2),
        (T0 + 2 * DAY, 0.6),  # inside cooldown: suppressed
        (T0 + 3 * DAY, 0.2),
        (T0 + 7 * DAY, 0.6),
    ]  # exactly 7 days later: allowed
    assert run(policy, restart) == [(T0, "warning"), (T0 + 7 * DAY, "warning")]


def test_lower_severity_suppressed_inside_cooldown(policy: AlertPolicy) -> None:
    scores = [(T0, 0.8), (T0 + DAY, 0.1), (T0 + 2 * DAY, 0.6), (T0 + 3 * DAY, 0.9)]
    assert run(policy, scores) == [(T0, "critical")]


def test_escalation_inside_cooldown_raises(policy: AlertPolicy) -> None:
    scores = [
        (T0, 0.6),
        (T0 + DAY, 0.8),
        (T0 + 2 * DAY, 0.9),
        (T0 + 3 * DAY, 0.6),
        (T0 + 4 * DAY, 0.8),
    ]
    assert run(policy, scores) == [(T0, "warning"), (T0 + DAY, "critical")]


def test_cancel_stops_and_reactivate_resumes(policy: AlertPolicy) -> None:
    memory = AlertMemory()
    assert run(policy, [(T0, 0.8)], memory=memory) == [(T0, "critical")]
    policy.on_cancel(memory, T0 + DAY / 2)
    assert run(policy, [(T0 + DAY, 0.1), (T0 + 2 * DAY, 0.9)], memory=memory) == []
    policy.on_reactivate(memory, T0 + 2.5 * DAY)
    assert run(policy, [(T0 + 3 * DAY, 0.9)], memory=memory) == [(T0 + 3 * DAY, "critical")]


def test_a_cancel_applied_before_an_earlier_row_is_decided_does_not_stop_it(
    policy: AlertPolicy,
) -> None:
    """Live, a boundary waiting for a lagging source has its rows made after later events of
    the user: the decision is the one made at once, before the cancel happened."""
    memory = AlertMemory()
    assert run(policy, [(T0, 0.1)], memory=memory) == []
    policy.on_cancel(memory, T0 + 2.5 * DAY)  # applied first, happened after the next rows
    assert run(policy, [(T0 + DAY, 0.6), (T0 + 2 * DAY, 0.8)], memory=memory) == [
        (T0 + DAY, "warning"),
        (T0 + 2 * DAY, "critical"),
    ]
    assert run(policy, [(T0 + 3 * DAY, 0.9)], memory=memory) == []
    restored = AlertMemory.from_bytes(memory.to_bytes())
    assert restored == memory


def test_changes_wait_in_the_stored_memory_until_a_decision_reaches_them(
    policy: AlertPolicy,
) -> None:
    memory = AlertMemory()
    policy.on_reactivate(memory, T0 + 5 * DAY)
    policy.on_cancel(memory, T0 + 4 * DAY)
    restored = AlertMemory.from_bytes(memory.to_bytes())
    assert restored.lifecycle == [(T0 + 4 * DAY, "cancel"), (T0 + 5 * DAY, "reactivate")]
    assert run(policy, [(T0 + 3 * DAY, 0.9)], memory=restored) == [(T0 + 3 * DAY, "critical")]
    assert run(policy, [(T0 + 4 * DAY, 0.9)], memory=restored) == []  # cancelled
    assert run(policy, [(T0 + 6 * DAY, 0.9)], memory=restored) == [(T0 + 6 * DAY, "critical")]


def test_replay_gives_same_alert_ids(policy: AlertPolicy) -> None:
    scores = [(T0 + i * DAY, s) for i, s in enumerate([0.2, 0.6, 0.9, 0.1, 0.3, 0.7, 0.2])]

    def ids() -> list[str]:
        memory = AlertMemory()
        alerts = (policy.on_score("u1", "course", ts, s, DRIVERS, memory) for ts, s in scores)
        return [a.alert_id for a in alerts if a is not None]

    first = ids()
    assert len(first) == 2 and first == ids()
    assert len(set(first)) == len(first)
    assert first[0] == alert_id("u1", "churn_risk", T0 + DAY, "warning")
    assert alert_id("u2", "churn_risk", T0 + DAY, "warning") != first[0]


def test_memory_round_trip_preserves_behaviour(policy: AlertPolicy) -> None:
    memory = AlertMemory()
    run(policy, [(T0, 0.6)], memory=memory)
    restored = AlertMemory.from_bytes(memory.to_bytes())
    assert restored == memory
    # The restored memory still knows the episode is active: no re-raise.
    assert run(policy, [(T0 + DAY, 0.6)], memory=restored) == []
    assert AlertMemory.from_dict(memory.to_dict()) == memory


def test_alert_dict_has_contract_field_order(policy: AlertPolicy) -> None:
    alert = policy.on_score("u1", "course", T0, 0.82, DRIVERS, AlertMemory())
    assert alert is not None
    d = alert.to_dict()
    assert list(d) == [
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
        "message",
        "probability",
        "horizon_days",
        "revenue_at_risk",
    ]
    assert d["ts"] == "2026-03-01T12:00:00.000Z"
    assert [x["feature"] for x in d["drivers"]] == ["trend_watch_minutes", "rewinds_per_min_7d"]
    assert set(d["action"]) == {"code", "text"}


def test_top_drivers_accepts_mappings_and_tuples_and_keeps_risky_three() -> None:
    from churnstream.model.explain import Driver as ExplainDriver

    raw = [
        {"feature": "a", "value": 1, "contribution": 0.1},
        ExplainDriver("b", 2.0, 0.5),
        Driver("c", 3.0, -0.2),
        {"feature": "d", "value": 4, "contribution": 0.3},
        Driver("e", 5.0, 0.05),
    ]
    assert [d.feature for d in top_drivers(raw)] == ["b", "d", "a"]


def test_invalid_thresholds_rejected() -> None:
    with pytest.raises(ValueError, match="clear <= warning"):
        RiskThresholds(warning=0.5, critical=0.75, clear=0.6)
    with pytest.raises(ValueError, match="roi_detector"):
        AlertConfig(roi_detector="magic")  # type: ignore[arg-type]


def test_action_label() -> None:
    assert Action("mentor_match", "x").label == "mentor match"


def test_no_risk_alert_during_warmup_of_a_relationship() -> None:
    policy = AlertPolicy(
        AlertConfig(
            thresholds=RiskThresholds(0.5, 0.75, 0.35),
            segment_thresholds={},
            risk_warmup_s=DAY,
            risk_hold_s=0.0,
        )
    )
    memory = AlertMemory()
    # High at signup (no history yet): silent for a day, then the held condition raises once.
    assert run(policy, [(T0, 0.9), (T0 + 3600, 0.9)], memory=memory) == []
    assert run(policy, [(T0 + DAY, 0.9), (T0 + DAY + 60, 0.9)], memory=memory) == [
        (T0 + DAY, "critical")
    ]
    # A reactivation starts a new relationship, hence a new warm-up.
    policy.on_cancel(memory, T0 + 29 * DAY)
    policy.on_reactivate(memory, T0 + 29 * DAY + 60)
    assert run(policy, [(T0 + 30 * DAY, 0.9)], memory=memory) == []
    assert run(policy, [(T0 + 31 * DAY, 0.9)], memory=memory) == [(T0 + 31 * DAY, "critical")]


def test_memory_without_since_is_an_established_user() -> None:
    policy = AlertPolicy(AlertConfig(risk_warmup_s=DAY, risk_hold_s=0.0))
    legacy = AlertMemory.to_dict(AlertMemory())
    del legacy["since"]
    memory = AlertMemory.from_dict(legacy)
    assert policy.on_score("u1", "course", T0, 0.99, DRIVERS, memory) is not None


HOLD = 600.0


@pytest.fixture
def holding() -> AlertPolicy:
    return AlertPolicy(
        AlertConfig(
            thresholds=RiskThresholds(0.5, 0.75, 0.35),
            segment_thresholds={},
            risk_warmup_s=0.0,
            risk_hold_s=HOLD,
        )
    )


def test_lone_spike_is_not_raised(holding: AlertPolicy) -> None:
    # A login after days away scores high; the next event minutes later does not.
    assert run(holding, [(T0, 0.95), (T0 + 120, 0.2), (T0 + DAY, 0.3)]) == []


def test_condition_held_long_enough_is_raised_at_the_confirming_score(
    holding: AlertPolicy,
) -> None:
    scores = [(T0, 0.6), (T0 + 300, 0.6), (T0 + HOLD - 1, 0.6), (T0 + HOLD, 0.6), (T0 + 900, 0.6)]
    assert run(holding, scores) == [(T0 + HOLD, "warning")]
    # The severity is the confirming score's, and one later score may confirm on its own.
    assert run(holding, [(T0, 0.6), (T0 + DAY, 0.8)]) == [(T0 + DAY, "critical")]


def test_a_score_below_warning_restarts_the_hold(holding: AlertPolicy) -> None:
    # 0.45 is above clear (0.35): no new episode, but the held condition was broken.
    scores = [(T0, 0.6), (T0 + 300, 0.45), (T0 + 700, 0.6), (T0 + 1000, 0.6), (T0 + 1300, 0.6)]
    assert run(holding, scores) == [(T0 + 1300, "warning")]


def test_escalation_of_a_raised_episode_is_not_held(holding: AlertPolicy) -> None:
    scores = [(T0, 0.6), (T0 + HOLD, 0.6), (T0 + HOLD + 1, 0.8), (T0 + HOLD + 2, 0.8)]
    assert run(holding, scores) == [(T0 + HOLD, "warning"), (T0 + HOLD + 1, "critical")]


def test_hold_survives_the_memory_round_trip(holding: AlertPolicy) -> None:
    memory = AlertMemory()
    assert run(holding, [(T0, 0.6)], memory=memory) == []
    restored = AlertMemory.from_bytes(memory.to_bytes())
    assert restored.kind("churn_risk").holding == T0
    assert run(holding, [(T0 + HOLD, 0.6)], memory=restored) == [(T0 + HOLD, "warning")]
    legacy = memory.to_dict()
    del legacy["kinds"]["churn_risk"]["holding"]  # stored before the hold existed
    assert AlertMemory.from_dict(legacy).kind("churn_risk").holding is None


def test_negative_hold_rejected() -> None:
    with pytest.raises(ValueError, match="risk_hold_s"):
        AlertConfig(risk_hold_s=-1.0)
