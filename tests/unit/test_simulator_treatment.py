"""Simulated interventions (SimConfig.treatments): a treated customer's churn hazard falls
from the treatment day on; nobody else changes, and nobody churns sooner."""

from __future__ import annotations

import dataclasses

import pytest

from churnstream.stream.devtools.simulator import SimConfig, ground_truth
from churnstream.stream.devtools.simulator.customers import plan_customers

BASE = SimConfig(users=600, days=60, seed=4, churn_rate=0.4)


def test_treated_customers_churn_later_or_not_at_all_and_others_are_unchanged() -> None:
    before = {c.user_id: c for c in plan_customers(BASE)}
    # Treat every customer who churns after day 20, from day 20, with no or a full effect.
    late = [u for u, c in before.items() if c.churn_day is not None and c.churn_day > 20]
    treat_all = tuple((u, 20, 0.0) for u in late[: len(late) // 2])
    treat_none = tuple((u, 20, 1.0) for u in late[len(late) // 2 :])
    config = dataclasses.replace(BASE, treatments=treat_all + treat_none)
    after = {c.user_id: c for c in plan_customers(config)}
    for user, c in before.items():
        a = after[user]
        if user in {t[0] for t in treat_all}:
            assert a.churn_day is None, "a hazard multiplied by 0 cannot churn"
        else:
            assert (a.churn_day, a.churn_kind) == (c.churn_day, c.churn_kind), user
    assert len(treat_all) > 20


def test_a_partial_effect_lowers_churn_within_the_horizon() -> None:
    before = {c.user_id: c for c in plan_customers(BASE)}
    declining = [u for u, c in before.items() if c.decline_day is not None and c.decline_day < 40]
    config = dataclasses.replace(
        BASE, treatments=tuple((u, before[u].decline_day or 0, 0.5) for u in declining)
    )
    after = {c.user_id: c for c in plan_customers(config)}
    churned_before = sum(before[u].churn_day is not None for u in declining)
    churned_after = sum(after[u].churn_day is not None for u in declining)
    assert churned_after < churned_before
    for u in declining:
        if after[u].churn_day is not None:
            assert before[u].churn_day is not None and after[u].churn_day >= before[u].churn_day
    truth = ground_truth(config)
    assert sum(truth.users[u].churn_ts is not None for u in declining) == churned_after


def test_factors_outside_zero_one_are_refused() -> None:
    with pytest.raises(ValueError, match="treatment factors"):
        SimConfig(treatments=(("u", 1, 1.5),))
