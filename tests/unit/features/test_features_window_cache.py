"""The cached window totals give exactly what summing every day row from scratch gives."""

from __future__ import annotations

from feature_events import D0, DAY, at, login
from hypothesis import given, settings
from hypothesis import strategies as st
from test_features_codec import events_strategy

from churnstream.features import UserState
from churnstream.features.buckets import WINDOW_DAYS, aggregate, combine
from churnstream.features.derive import derive
from churnstream.stream.contract.events import DAY_S, Event


def from_scratch(state: UserState, now: float) -> list[float]:
    """The vector without the cache: every live day row of each window summed again."""
    nd = int(now // DAY_S)
    lo = max(nd - (WINDOW_DAYS - 1), int(state.clock // DAY_S) - (WINDOW_DAYS - 1))
    rows = [
        (d, r)
        for d, r in zip(state.days, state.rows, strict=True)
        if r is not None and lo <= d <= nd
    ]
    r1 = next((r for d, r in rows if d == nd), None)
    w3 = aggregate([r for d, r in rows if d >= nd - 2])
    w7 = aggregate([r for d, r in rows if d >= nd - 6])
    w28 = aggregate([r for _, r in rows])
    return derive(state, now, nd, r1, w3, w7, w28, lo)


@settings(max_examples=120, deadline=None)
@given(events_strategy, st.lists(st.floats(-30.0, 30.0), min_size=1, max_size=4))
def test_vector_between_events_matches_from_scratch(
    events: list[Event], offsets_days: list[float]
) -> None:
    # Out-of-order events exercise the invalidation: a late event lands in a cached day.
    state = UserState.new("u")
    for ev in events:
        state.apply(ev)
        for off in offsets_days:
            now = (state.clock or D0) + off * DAY
            assert state.vector(now) == from_scratch(state, now)


def test_late_event_after_a_cached_vector_is_counted() -> None:
    state = UserState.new("u")
    state.apply(login(at(10)))
    before = state.features()["logins_7d"]
    state.apply(login(at(8)))  # late, into a day the cache already summed
    assert (before, state.features()["logins_7d"]) == (1.0, 2.0)


def test_combine_is_aggregate_of_one_more_row() -> None:
    a = [3] * 25
    b = [5] * 25
    a[11], b[11] = 0b0101, 0b0011  # bitmaps OR, maxima max, the rest sum
    assert combine(aggregate([a]), b) == aggregate([a, b])
    assert a == [3] * 11 + [0b0101] + [3] * 13  # inputs untouched
