"""`UserState.vector_at`: features as of a day boundary, from the complete days before it."""

from __future__ import annotations

import pytest
from feature_events import D0, DAY, at, login, view

from churnstream.features import FEATURE_NAMES, UserState


def as_of(state: UserState, boundary: float) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, state.vector_at(boundary), strict=True))


def test_events_at_or_after_the_boundary_are_ignored() -> None:
    before = UserState.new("u")
    after = UserState.new("u")
    for st in (before, after):
        st.apply(login(at(0)))
        st.apply(view(at(1)))
    # The state runs ahead of the watermark: later events are already applied.
    after.apply(login(D0 + 2 * DAY))  # exactly at the boundary
    after.apply(view(at(2, 5.0)))
    boundary = D0 + 2 * DAY
    assert after.vector_at(boundary) == before.vector_at(boundary)
    f = as_of(after, boundary)
    assert (f["logins_7d"], f["videos_started_7d"], f["logins_1d"]) == (1.0, 1.0, 0.0)


def test_recency_counts_whole_days_before_the_boundary() -> None:
    st = UserState.new("u")
    st.apply(login(at(0, 1.0)))
    st.apply(view(at(2, 23.0)))
    st.apply(login(at(6)))  # after the boundary: the login recency comes from the day rows
    f = as_of(st, D0 + 3 * DAY)
    # The video was on the last complete day (0), the login two days before that (2).
    assert (f["days_since_event"], f["days_since_video"], f["days_since_login"]) == (0, 0, 2)
    assert f["tenure_days"] == pytest.approx(3 - 1 / 24)
    later = as_of(st, D0 + 5 * DAY)
    assert (later["days_since_event"], later["days_since_login"]) == (2.0, 4.0)


def test_never_seen_before_the_boundary_counts_from_the_start() -> None:
    st = UserState.new("u")
    st.apply(view(at(0, 0.0)))
    st.apply(login(at(3)))
    f = as_of(st, D0 + 2 * DAY)
    assert f["days_since_login"] == f["tenure_days"] == 2.0


def test_windows_match_the_event_vector_at_the_end_of_the_last_day() -> None:
    # Nothing 28 days back, where the daily 28-day window (27 days) and the event one differ.
    st = UserState.new("u")
    for day in range(0, 20, 3):
        st.apply(view(at(day), watched=100.0))
        st.apply(login(at(day, 8.0)))
    boundary = D0 + 20 * DAY
    daily = as_of(st, boundary)
    event = st.features(boundary - 1.0)  # one second before: the same complete days
    for name in ("logins_7d", "logins_28d", "watch_minutes_28d", "active_days_7d", "trend_logins"):
        assert daily[name] == event[name], name


def test_a_row_does_not_depend_on_how_far_the_state_ran_ahead() -> None:
    early, ahead = UserState.new("u"), UserState.new("u")
    for st in (early, ahead):
        for day in range(0, 28, 2):
            st.apply(login(at(day)))
    # The boundary's own day arrives before the watermark reaches it and takes day 0's slot.
    ahead.apply(view(at(28)))
    boundary = D0 + 28 * DAY
    assert ahead.vector_at(boundary) == early.vector_at(boundary)
    assert as_of(ahead, boundary)["logins_28d"] == 13.0  # days 2..26: the 27 days before
