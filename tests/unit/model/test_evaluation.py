"""Honest evaluation (model/evaluation.py) on a hand-made ground truth, through the simulator's
adapter: which rows and alerts are judged, and how silent dropouts count."""

from __future__ import annotations

import pytest

from churnstream.model.evaluation import alert_quality, cold_start, daily_quality
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.devtools.simulator.truth import GroundTruth, UserTruth

DAY = 86_400.0
H = 7 * DAY
DAYS = 60


def user(churn_kind: str | None = None, churn_day: float | None = None, **kw: object) -> UserTruth:
    churn_ts = None if churn_day is None else churn_day * DAY
    fields: dict[str, object] = {
        "segment": "course",
        "utc_offset_h": 0.0,
        "signup_ts": 0.0,
        "churn_kind": churn_kind,
        "churn_ts": churn_ts,
        "last_active_ts": churn_ts,
        "decline_start_ts": None,
        "cancel_ts": churn_ts if churn_kind == "cancel" else None,
        "reactivate_ts": None,
        "warning_start_ts": None,
        "roi_drop_ts": None,
        "silent": churn_kind is not None,
        "oracle": [0.1 * (d % 10) for d in range(DAYS)],
    }
    fields.update(kw)
    return UserTruth(**fields)  # type: ignore[arg-type]


@pytest.fixture
def truth() -> SimulatorTruth:
    return SimulatorTruth(
        GroundTruth(
            start=0.0,
            days=DAYS,
            horizon_days={"course": 7},
            users={
                "stay": user(),
                "cancel": user("cancel", 20.5),
                "quiet": user("silent", 30.5),
                "back": user("silent", 40.5, reactivate_ts=43 * DAY),
            },
        )
    )


def test_rows_after_a_churn_and_open_rows_are_left_out(truth: SimulatorTruth) -> None:
    rows = [
        ("stay", 10 * DAY, 0.1),
        ("stay", 55 * DAY, 0.1),  # horizon passes the end: outcome unknown
        ("cancel", 19 * DAY, 0.9),  # 1.5 days before the cancel
        ("cancel", 15 * DAY, 0.2),  # 5.5 days before
        ("cancel", 12 * DAY, 0.05),  # 8.5 days before: a negative
        ("quiet", 33 * DAY, 0.99),  # already gone: not at risk
        ("back", 44 * DAY, 0.3),  # back: at risk again, stays
    ]
    q = daily_quality(rows, truth, H, "either")
    assert (q["rows"], q["positives"]) == (5, 2)
    assert (q["left_out_not_at_risk"], q["left_out_open"]) == (1, 1)
    # Positives 0.9, 0.2 vs negatives 0.1, 0.05, 0.3: 0.9 beats all, 0.2 beats two.
    assert q["auc"] == pytest.approx(5 / 6)
    assert q["auc_by_lead"]["0-2d"] == {"positives": 1, "auc": 1.0}
    assert q["auc_by_lead"]["2-7d"] == {"positives": 1, "auc": pytest.approx(2 / 3)}
    assert q["auc_by_lead"]["7+d"]["positives"] == 0
    assert q["oracle_rows"] == 5 and q["oracle_auc"] is not None
    # Cancel-only labels: the course cancel still counts, nothing else changes here.
    assert daily_quality(rows, truth, H, "cancel")["positives"] == 2


def test_alerts_within_the_horizon_and_silent_dropouts(truth: SimulatorTruth) -> None:
    alerts = [
        ("cancel", 14 * DAY),  # 6.5 days before the cancel: a hit
        ("stay", 5 * DAY),  # a false alarm
        ("quiet", 32 * DAY),  # 1.5 days after the last activity, never back: a hit
        ("back", 41 * DAY),  # after the last activity but back within the horizon: a miss
        ("stay", 56 * DAY),  # open: not judged
    ]
    q = alert_quality(alerts, truth, "course", H, "either")
    assert (q["alerts"], q["judged"]) == (5, 4)
    assert q["precision"] == pytest.approx(2 / 4)
    # All three churners were alerted: before the cancel, after the two silent churns.
    assert (q["churners"], q["recall"]) == (3, 1.0)
    assert q["median_lead_days"] == pytest.approx(6.5)
    assert (q["silent_dropouts"], q["silent_alerted"]) == (2, 2)
    assert q["silent_median_delay_days"] == pytest.approx(1.0)  # 1.5 and 0.5 days
    assert q["silent_alerted_within_3d"] == 1.0
    # Under cancel-only labels silent dropouts are no churn: their alerts are false alarms.
    c = alert_quality(alerts, truth, "course", H, "cancel")
    assert (c["churners"], c["precision"], c["silent_dropouts"]) == (1, 0.25, 0)


def test_a_late_alert_on_a_silent_dropout_is_not_prompt(truth: SimulatorTruth) -> None:
    q = alert_quality([("quiet", 36 * DAY)], truth, "course", H, "either")
    assert q["silent_median_delay_days"] == pytest.approx(5.5)
    assert q["silent_alerted_within_3d"] == 0.0  # of 2: one late, one never alerted


def test_cold_start_rate_and_precision(truth: SimulatorTruth) -> None:
    alerts = [("cancel", 14 * DAY), ("stay", 5 * DAY), ("quiet", 45 * DAY)]
    rows = [d * DAY for d in range(DAYS)]
    q = cold_start(alerts, rows, truth, H, "either")
    first, steady = q["first_14_days"], q["from_day_42"]
    assert (first["alerts"], first["rows"], first["precision"]) == (1, 14, 0.0)
    assert (steady["alerts"], steady["rows"], steady["precision"]) == (1, 18, 1.0)
    assert q["rate_ratio"] == pytest.approx((1 / 14) / (1 / 18))
