"""The percentile of a churn_risk alert among its boundary's daily scores: the share of the
segment's rows of that boundary scoring at or below it, the same whether the rows are made at
once or spread over sweeps, and after a restart mid-boundary."""

from __future__ import annotations

import pytest
from test_alert_budget import _quitting_history, budget_run, drive
from test_daily import canonical

from churnstream.features import FEATURE_NAMES
from churnstream.model.alert_policy import percentile
from churnstream.model.engine import Detector, Outputs
from churnstream.model.labels import stored_score
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.alerts import CHURN_RISK


def test_percentile_counts_the_scores_at_or_below() -> None:
    scores = sorted(stored_score(x) for x in (0.1, 0.2, 0.2, 0.5))
    assert percentile(scores, 0.2) == 75.0
    assert percentile(scores, 0.5) == 100.0
    assert percentile(scores, 0.15) == 25.0
    assert percentile([stored_score(x) for x in (0.1, 0.2, 0.3)], 0.1) == 33.3


def _recomputed(out: Outputs, alert: dict[str, object]) -> float:
    """The percentile from the published daily score records of the alert's boundary."""
    day = [
        s["score"]
        for s in out.scores
        if s["trigger"] == "daily" and s["ts"] == alert["ts"] and s["segment"] == alert["segment"]
    ]
    below = sum(1 for x in day if x <= alert["value"])
    return round(100.0 * below / len(day), 1)


@pytest.mark.parametrize("budget", [None, {"course": 1, "saas": 1}])
def test_every_churn_risk_alert_carries_its_percentile_among_the_days_rows(
    budget: dict[str, int] | None,
) -> None:
    out = drive(budget_run(budget, None))
    risk = [a for a in out.alerts if a["kind"] == CHURN_RISK]
    assert len(risk) >= 5
    assert all(a["percentile"] == _recomputed(out, a) for a in risk)
    # Not trivially the top: several alerts of a day share it, below the highest score.
    assert any(a["percentile"] < 100.0 for a in risk)
    assert all("percentile" not in a for a in out.alerts if a["kind"] != CHURN_RISK)


@pytest.mark.parametrize("budget", [None, {"course": 1, "saas": 1}])
@pytest.mark.parametrize(("per_sweep", "sweep_every"), [(1, None), (3, None), (2, 7)])
def test_spread_rows_give_the_same_alerts_and_percentiles(
    budget: dict[str, int] | None, per_sweep: int, sweep_every: int | None
) -> None:
    at_once = drive(budget_run(budget, None))
    spread = drive(budget_run(budget, per_sweep), sweep_every)
    assert canonical(spread)[1] == canonical(at_once)[1]


def test_a_restart_mid_boundary_rebuilds_the_scores_of_the_rows_made() -> None:
    run = budget_run(None, 1)
    detector = run.detector
    for ev in _quitting_history():
        if ev is not None:
            run.feed(ev)
        else:
            run.sweep()
        if detector._candidates and detector.rows_due:
            break
    assert detector._candidates and detector.rows_due, "no boundary left half made"
    stored = [
        UserRecord.from_bytes(r.user_id, r.to_bytes(), run.config.features)
        for r in run.repo.records.values()
    ]
    restarted = Detector(
        run.config,
        Scorer(run.config.model, FEATURE_NAMES),
        detector.alerts,
        run.repo,
        wall_clock=lambda: 0.0,
    )
    restarted.reschedule(stored)
    assert restarted._day_scores == detector._day_scores
    assert sum(len(v) for by in restarted._day_scores.values() for v in by.values()) >= 2
