"""Order independence of the final state and no NaN/inf on random behaviour streams."""

from __future__ import annotations

import math
import random

from feature_events import D0, DAY
from hypothesis import given, settings
from hypothesis import strategies as st
from test_features_codec import _event

from churnstream.features import Applied, UserState
from churnstream.stream.contract.events import Event


def _stream(span_days: float) -> st.SearchStrategy[list[Event]]:
    ts = st.floats(min_value=D0, max_value=D0 + span_days * DAY, allow_nan=False)
    amount = st.floats(min_value=0.0, max_value=1e4, allow_nan=False)
    row = st.tuples(
        st.integers(0, 4), ts, amount, amount, st.booleans(), st.sampled_from(["a", "b", "c"])
    )
    return st.lists(row, min_size=1, max_size=50).map(
        lambda raw: [_event(i, *r) for i, r in enumerate(raw)]
    )


def _final(events: list[Event]) -> UserState:
    s = UserState.new("u")
    for ev in events:
        s.apply(ev)
    return s


@settings(max_examples=100, deadline=None)
@given(_stream(1.0), st.integers(0, 2**32))
def test_shuffle_within_lateness_gives_same_features(events: list[Event], seed: int) -> None:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    a, b = _final(events), _final(shuffled)
    statuses = {b.apply(ev) for ev in events}
    assert statuses == {Applied.DUPLICATE}
    for now in (None, D0, D0 + 3 * DAY):
        assert a.vector(now) == b.vector(now)


@settings(max_examples=60, deadline=None)
@given(_stream(26.0), st.integers(0, 2**32))
def test_shuffle_within_ring_gives_same_features(events: list[Event], seed: int) -> None:
    shuffled = list(events)
    random.Random(seed).shuffle(shuffled)
    assert _final(events).vector() == _final(shuffled).vector()


@settings(max_examples=60, deadline=None)
@given(_stream(60.0))
def test_random_streams_never_give_nan_or_inf(events: list[Event]) -> None:
    s = _final(events)
    for now in (None, D0 - DAY, D0 + 30 * DAY, D0 + 1000 * DAY):
        assert all(math.isfinite(v) for v in s.vector(now))
