"""The `active` flag of a daily row: activity inside its horizon only, however far the state ran.

Live, a row can be made after the user's state ran past the row's horizon (a source or the
model was waited for while events went on); an activity after the horizon must not make the
row active (measured: one course label in 1,244 differed from `replay`'s and every later model
score with it).
"""

from __future__ import annotations

from churnstream.features import UserState
from churnstream.model.labels import active_within
from churnstream.stream.contract.events import DAY_S, Login, VideoView

B = 20_500 * DAY_S  # a day boundary
H = 7 * DAY_S


def login(ts: float, i: int) -> Login:
    return Login(event_id=f"l{i}", user_id="u", ts=ts, success=True)


def state(*times: float) -> UserState:
    st = UserState.new("u")
    for i, ts in enumerate(times):
        st.apply(login(ts, i))
    return st


def test_activity_after_the_horizon_does_not_count() -> None:
    assert not active_within(state(B - 3600, B + H + 3600), "course", B, H)
    assert not active_within(state(B - 3600, B + H + 9 * DAY_S), "course", B, H)


def test_activity_inside_the_horizon_counts_also_when_the_state_ran_past_it() -> None:
    assert active_within(state(B + 2 * DAY_S), "course", B, H)
    assert active_within(state(B + 2 * DAY_S, B + H + 3 * DAY_S), "course", B, H)
    assert not active_within(state(B - 3600), "course", B, H)


def test_only_the_segment_kind_of_activity_counts() -> None:
    st = state(B + H + DAY_S)
    st.apply(
        VideoView(
            event_id="v",
            user_id="u",
            ts=B + DAY_S,
            video_id="x",
            watched_s=60.0,
            duration_s=120.0,
            completed=False,
        )
    )
    assert active_within(st, "course", B, H)  # a video is course activity
    assert not active_within(st, "docs", B, H)  # not a document job or login inside
