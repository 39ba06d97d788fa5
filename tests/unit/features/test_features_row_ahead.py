"""A daily row as of boundary B reads the same features however far the state ran past B.

The live worker makes a boundary's rows later than `replay` when it waits for a source or a
model while the users' events go on; the row must not change (docs/architecture.md).
"""

from __future__ import annotations

from feature_events import D0, DAY, at, life, login, state_of, view

from churnstream.features import FEATURE_NAMES, UserState

B = D0 + 30 * DAY  # a boundary with 30 days of history before it


def history() -> list:  # type: ignore[type-arg]
    return [life(at(0), "signup", price=60.0), *(login(at(d)) for d in range(30))]


def row(st: UserState) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, st.vector_at(B), strict=True))


def test_the_oldest_day_of_the_window_survives_days_of_running_ahead() -> None:
    made_at_once = row(state_of(history()))
    # Four days past the boundary's own day: the margin the ring keeps (`AHEAD_DAYS`).
    ahead = state_of([*history(), *(login(at(30 + d)) for d in range(1, 5))])
    assert row(ahead) == made_at_once
    assert made_at_once["logins_28d"] == 27.0  # the 27 complete days before B


def test_a_price_change_after_the_boundary_is_not_read() -> None:
    before = row(state_of(history()))
    changed = state_of([*history(), life(at(32), "plan_change", price=30.0)])
    assert row(changed) == before
    assert before["plan_price"] == 60.0
    assert changed.vector()[FEATURE_NAMES.index("plan_price")] == 30.0


def test_the_price_before_a_change_survives_the_codec() -> None:
    st = state_of([*history(), life(at(32), "plan_change", price=30.0)])
    back = UserState.from_bytes(st.to_bytes())
    assert (back.price_before, back.price_from) == (60.0, at(32))
    assert (st.price_before, st.price_from) == (60.0, at(32))
    assert back.vector_at(B) == st.vector_at(B)


def test_a_signup_after_the_boundary_is_not_read() -> None:
    """A customer signed up again after B (a new subscription): the row as of B keeps the
    tenure, the days since never-seen events and the renewal phase of the old one. Live made
    such a row after the new signup (tenure 0.0, renewal phase moved) while `replay` made it
    before (tests/integration/test_parity.py, the second history signs every user up again)."""
    before = row(state_of(history()))
    again = state_of([*history(), life(at(30, hour=0.0) + DAY, "signup", price=60.0)])
    assert row(again) == before
    assert before["tenure_days"] == 30.0 - 0.5  # signed up at noon of day 0
    assert again.vector()[FEATURE_NAMES.index("tenure_days")] < 1.0
    back = UserState.from_bytes(again.to_bytes())
    assert (back.signup_before, back.renewal_before) == (at(0), at(0))
    assert back.vector_at(B) == again.vector_at(B)


def test_a_return_after_weeks_away_keeps_the_days_since_before_it() -> None:
    """The newest login before B is 40 days back (in no day row) and the user logs in again
    after B: the row as of B still counts it, as one made before the return does."""
    gone = [life(at(0), "signup", price=60.0), login(at(-10)), view(at(20))]
    before = row(state_of(gone))
    back = state_of([*gone, login(at(31))])
    assert row(back) == before
    assert before["days_since_login"] == 39.0  # whole days to the day before B
    assert UserState.from_bytes(back.to_bytes()).vector_at(B) == back.vector_at(B)


def test_a_return_with_events_on_every_day_past_the_boundary_keeps_the_days_since() -> None:
    """As above with logins on each of the 4 days past B the ring keeps: the day before the
    newest login is then after B too. Kept as the day before the newest, the row read the login
    as never seen (tenure instead: one saas example of 35,767 in the 800 x 75 catch-up, and
    the saas model diverged from replay's after it)."""
    gone = [life(at(0), "signup", price=60.0), login(at(-10)), view(at(20))]
    before = row(state_of(gone))
    back = state_of([*gone, *(login(at(30 + d)) for d in range(5))])
    assert row(back) == before
    assert before["days_since_login"] == 39.0
    assert UserState.from_bytes(back.to_bytes()).vector_at(B) == back.vector_at(B)


def test_days_that_leave_the_ring_keep_each_slots_newest() -> None:
    st = state_of([login(at(0)), view(at(1)), login(at(2)), login(at(40))])
    # Days 0-2 left the ring when the clock reached day 40 (the ring holds days 9-40).
    assert st.day_before_ring[1] == int(at(2) // DAY)  # logins
    assert st.day_before_ring[2] == int(at(1) // DAY)  # videos
    assert st.day_before_ring[3] == -1  # syncs: never
