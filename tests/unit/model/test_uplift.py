"""model.uplift: Newcombe's interval against the published example, arms per segment x
action, the first alert of a customer only, and the customers still needed."""

from __future__ import annotations

from typing import Any

import pytest

from churnstream.model.uplift import Arm, measure, needed_total, newcombe, wilson


def test_newcombe_matches_the_published_example() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80.
    low, high = newcombe(Arm(70, 56), Arm(80, 48))
    assert low == pytest.approx(0.0524, abs=1e-4)
    assert high == pytest.approx(0.3339, abs=1e-4)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))


def alerts(
    segment: str, action: str, holdout: bool, n: int, churned: int, start: int = 0
) -> list[dict[str, Any]]:
    return [
        {
            "user_id": f"{segment}-{action}-{holdout}-{i}",
            "segment": segment,
            "kind": "churn_risk",
            "ts": "2026-02-01T00:00:00.000Z",
            "action": {"code": action},
            "holdout": holdout,
            "churned": i < churned,
        }
        for i in range(start, start + n)
    ]


def outcome(alert: dict[str, Any]) -> bool | None:
    return alert.get("churned")


def test_a_real_effect_is_measured_and_no_effect_contains_zero() -> None:
    records = (
        alerts("saas", "call", False, 1800, 540)  # 30% churn when called
        + alerts("saas", "call", True, 200, 90)  # 45% in the holdout
        + alerts("saas", "mail", False, 1800, 540)  # mail does nothing
        + alerts("saas", "mail", True, 200, 60)
    )
    rows = {r.action: r for r in measure(records, outcome)}
    call, mail = rows["call"], rows["mail"]
    assert call.treated == Arm(1800, 540) and call.holdout == Arm(200, 90)
    assert call.uplift == pytest.approx(0.15)
    assert call.ci_low is not None and 0.07 < call.ci_low < 0.15 < call.ci_high
    assert call.more_needed == 0  # 2000 customers are more than 80% power needs
    assert mail.uplift == 0.0
    assert mail.ci_low < 0 < mail.ci_high
    assert mail.more_needed is None


def test_each_customer_counts_once_with_its_first_alert() -> None:
    first = {"user_id": "u", "segment": "course", "kind": "churn_risk", "action": {"code": "a"}}
    records = [
        {**first, "ts": "2026-02-03T00:00:00.000Z", "holdout": False, "churned": True},
        {**first, "ts": "2026-02-01T00:00:00.000Z", "holdout": False, "churned": False},
        {
            **first,
            "user_id": "h",
            "ts": "2026-02-01T00:00:00.000Z",
            "holdout": True,
            "churned": True,
        },
        {
            **first,
            "user_id": "x",
            "ts": "2026-02-01T00:00:00.000Z",
            "churned": True,
        },  # no experiment
        {
            **first,
            "user_id": "y",
            "ts": "2026-02-01T00:00:00.000Z",
            "holdout": True,
        },  # open outcome
    ]
    (row,) = measure(records, outcome)
    assert row.treated == Arm(1, 0) and row.holdout == Arm(1, 1)


def test_an_empty_arm_has_no_uplift() -> None:
    (row,) = measure(alerts("docs", "a", False, 10, 3), outcome)
    assert row.uplift is None and row.ci_low is None and row.more_needed is None


def test_customers_needed_grow_as_the_difference_shrinks() -> None:
    big, small = needed_total(0.45, 0.30, 9.0), needed_total(0.33, 0.30, 9.0)
    assert big is not None and small is not None and small > 10 * big
    assert needed_total(0.3, 0.3, 9.0) is None
    # Equal arms, 0.45 vs 0.30: the textbook ~163 per arm.
    assert needed_total(0.45, 0.30, 1.0) == pytest.approx(2 * 163, rel=0.03)


def test_a_significant_result_from_tiny_arms_still_asks_for_more() -> None:
    records = alerts("saas", "call", False, 5, 1) + alerts("saas", "call", True, 2, 2)
    (row,) = measure(records, outcome)
    assert row.ci_low is not None and row.ci_low > 0  # "significant" by chance
    assert row.more_needed is not None and row.more_needed > 0
