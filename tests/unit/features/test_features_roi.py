"""`UserState.roi_features` gives the `ROI_FEATURES` of `vector` bit for bit, and
`roi_features_if` them or None exactly when tenure or value events are below its minimums: at
every event of a simulated history (late events, duplicates, cancels and reactivations,
segment and price changes) and at random times around random event sequences."""

from __future__ import annotations

import struct

import orjson
from feature_events import D0, DAY
from hypothesis import given, settings
from hypothesis import strategies as st
from test_features_codec import events_strategy

from churnstream.features import FEATURE_NAMES, UserState
from churnstream.features.derive import ROI_FEATURES
from churnstream.stream.contract.events import Event
from churnstream.stream.contract.topics import KIND_BY_TOPIC
from churnstream.stream.contract.validation import Invalid, parse
from churnstream.stream.devtools.simulator import SimConfig, generate

_INDEX = [FEATURE_NAMES.index(name) for name in ROI_FEATURES]


def bits(values: list[float]) -> list[bytes]:
    """The exact bit patterns (0.0 and -0.0 differ, as they could in a later division)."""
    return [struct.pack("<d", v) for v in values]


_TENURE = FEATURE_NAMES.index("tenure_days")
_VALUE_EVENTS = FEATURE_NAMES.index("value_events_28d")
# (tenure days, value events) minimums: the alert policy's defaults and others around them.
_MINIMUMS = ((14.0, 5), (0.0, 0), (3.5, 1), (30.0, 12))


def check(state: UserState, now: float | None) -> None:
    full = state.vector(now)
    cheap = state.roi_features(now)
    assert list(cheap) == list(ROI_FEATURES)
    assert bits(list(cheap.values())) == bits([full[i] for i in _INDEX])
    # `roi_features_if` refuses exactly when the full vector's tenure or value events are
    # below the minimums, and otherwise gives the same features.
    at = state.clock if now is None else now
    for tenure, events in _MINIMUMS:
        gated = state.roi_features_if(at, tenure, events)
        if full[_TENURE] < tenure or full[_VALUE_EVENTS] < events:
            assert gated is None
        else:
            assert gated is not None
            assert bits(list(gated.values())) == bits([full[i] for i in _INDEX])


def test_every_event_of_a_simulated_history() -> None:
    states: dict[str, UserState] = {}
    checked = valued = 0
    for rec in generate(SimConfig(users=60, days=45, seed=3, bad_fraction=0.02)):
        kind = KIND_BY_TOPIC.get(rec.topic)
        raw = rec.raw if rec.raw is not None else orjson.dumps(rec.value)
        if kind is None or (rec.value is None and rec.raw is None):
            continue
        event = parse(kind, raw, 65536)
        if isinstance(event, Invalid):
            continue
        state = states.setdefault(event.user_id, UserState.new(event.user_id))
        state.apply(event)
        # Both orders: the cheap reading first fills the window cache the vector then reads.
        check(state, None)
        other = UserState.from_bytes(state.to_bytes())
        cheap = other.roi_features()
        assert bits(list(cheap.values())) == bits([state.vector()[i] for i in _INDEX])
        checked += 1
        valued += cheap["value_events_28d"] > 0 and cheap["cost_7d"] > 0
    assert checked > 10_000 and valued > 1_000  # the history reached the ROI paths


@settings(max_examples=200, deadline=None)
@given(events_strategy, st.lists(st.floats(-40.0, 40.0), min_size=1, max_size=4))
def test_random_events_and_times(events: list[Event], offsets_days: list[float]) -> None:
    state = UserState.new("u")
    for ev in events:
        state.apply(ev)
        check(state, None)
        for off in offsets_days:
            check(state, D0 + off * DAY)
