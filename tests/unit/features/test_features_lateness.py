"""Lateness policy: APPLIED within lateness, LATE_APPLIED inside the ring, TOO_LATE beyond."""

from __future__ import annotations

from feature_events import DAY, at, life, login, state_of

from churnstream.features import Applied, FeatureConfig, UserState


def test_in_order_and_within_lateness_are_applied() -> None:
    st = state_of([login(at(10))])
    assert st.apply(login(at(10) - DAY)) is Applied.APPLIED  # exactly at the lateness bound
    assert st.clock == at(10)
    assert st.features()["logins_7d"] == 2


def test_beyond_lateness_inside_ring_is_late_applied_to_its_day() -> None:
    st = state_of([login(at(10))])
    assert st.apply(login(at(10) - DAY - 1)) is Applied.LATE_APPLIED
    assert st.apply(login(at(-17, 0.0))) is Applied.LATE_APPLIED  # 27 days back: still in ring
    f = st.features()
    assert f["logins_7d"] == 2
    assert f["logins_28d"] == 3


def test_older_than_ring_is_too_late_and_changes_nothing() -> None:
    st = state_of([login(at(10))])
    before = st.to_bytes()
    assert st.apply(login(at(-18, 23.99))) is Applied.TOO_LATE  # 28 days back
    assert st.to_bytes() == before


def test_custom_lateness() -> None:
    st = state_of([login(at(10))], FeatureConfig(lateness_s=3600.0))
    assert st.apply(login(at(10) - 3600.0)) is Applied.APPLIED
    assert st.apply(login(at(10) - 3601.0)) is Applied.LATE_APPLIED


def test_clock_is_max_event_time() -> None:
    st = UserState.new("u")
    assert st.clock == 0.0
    st.apply(login(at(5)))
    st.apply(login(at(4)))
    assert st.clock == at(5)


def test_ring_reuses_slots_after_28_days() -> None:
    st = state_of([login(at(0)), login(at(28))])  # same ring slot, 28 days apart
    f = st.features()
    assert f["logins_28d"] == 1
    assert st.features(at(0))["logins_1d"] == 0  # the old day is gone, not mixed in


def test_old_lifecycle_is_never_too_late() -> None:
    st = state_of([login(at(100))])
    assert st.apply(life(at(0), "signup", price=10.0)) is Applied.LATE_APPLIED
    assert st.signup_ts == at(0)
    assert st.plan_price == 10.0


def test_days_expired_by_the_clock_stay_expired_for_past_now() -> None:
    # Day 0 left the ring when the clock reached day 29, even though its slot is not reused.
    st = state_of([login(at(0)), login(at(29))])
    assert st.features(at(0))["logins_1d"] == 0
    assert st.features(at(2))["logins_28d"] == 0
