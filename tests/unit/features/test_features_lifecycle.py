"""Lifecycle facts: segment, signup, price, churn and reactivation."""

from __future__ import annotations

from feature_events import at, life, login, state_of

from churnstream.features import UserState


def test_signup_sets_facts() -> None:
    st = state_of([life(at(0), "signup", segment="course", price=20.0)])
    assert (st.segment, st.signup_ts, st.plan_price, st.churned) == ("course", at(0), 20.0, False)


def test_plan_change_and_renewal_update_price() -> None:
    st = state_of([life(at(0), "signup", price=20.0), life(at(1), "plan_change", price=50.0)])
    assert st.plan_price == 50.0
    st.apply(life(at(2), "renewal", price=45.0))
    assert st.plan_price == 45.0
    st.apply(life(at(3), "renewal"))  # no price: kept
    assert st.plan_price == 45.0


def test_cancel_then_reactivate() -> None:
    st = state_of([life(at(0), "signup", price=30.0), life(at(2), "cancel")])
    assert st.churned and st.cancel_ts == at(2)
    st.apply(life(at(5), "reactivate"))
    assert not st.churned
    # Subscribed days 0..2 and 5..6 in the 7-day window ending day 6: 5 days at 1 per day.
    assert st.features(at(6))["cost_7d"] == 5.0


def test_signup_clears_churn() -> None:
    st = state_of([life(at(0), "signup"), life(at(1), "cancel"), life(at(2), "signup")])
    assert not st.churned
    assert st.signup_ts == at(2)


def test_older_lifecycle_does_not_override_newer() -> None:
    st = state_of([life(at(0), "signup", price=10.0), life(at(5), "cancel")])
    st.apply(life(at(3), "plan_change", segment="docs", price=99.0))
    assert st.churned
    assert st.plan_price == 10.0
    assert st.segment == "saas"


def test_behaviour_segment_only_fills_unknown_segment() -> None:
    st = UserState.new("u")
    st.apply(login(at(0), segment="course"))
    assert st.segment == "course"
    st.apply(life(at(1), "signup", segment="saas"))
    st.apply(login(at(2), segment="docs"))
    assert st.segment == "saas"
    st.apply(login(at(3)))
    assert st.segment == "saas"
