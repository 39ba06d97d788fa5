"""Binary encoding: exact round trip, versioning, corrupt input, size."""

from __future__ import annotations

import pytest
from feature_events import D0, DAY, at, job, life, login, state_of, sync, value, view
from hypothesis import given, settings
from hypothesis import strategies as st

from churnstream.features import Applied, FeatureConfig, UserState
from churnstream.features.codec import VERSION
from churnstream.stream.contract.events import (
    DocumentJob,
    Event,
    IntegrationSync,
    Lifecycle,
    Login,
    ValueEvent,
    VideoView,
)

_ts = st.floats(min_value=D0, max_value=D0 + 40 * DAY, allow_nan=False)
_amount = st.floats(min_value=0.0, max_value=1e5, allow_nan=False)
_name = st.sampled_from(["a", "b", "c", "d", "ë"])


def _event(i: int, kind: int, ts: float, x: float, y: float, flag: bool, name: str) -> Event:
    eid = f"h{i}"
    if kind == 0:
        return Login(event_id=eid, user_id="u", ts=ts, success=flag)
    if kind == 1:
        return VideoView(
            event_id=eid,
            user_id="u",
            ts=ts,
            video_id=name,
            watched_s=x,
            duration_s=y + 1.0,
            seeks=int(x) % 5,
            completed=flag,
        )
    if kind == 2:
        return IntegrationSync(
            event_id=eid,
            user_id="u",
            ts=ts,
            integration=name,
            ok=flag,
            latency_ms=x if flag else None,
        )
    if kind == 3:
        return DocumentJob(
            event_id=eid,
            user_id="u",
            ts=ts,
            job_id=eid,
            ok=flag,
            documents=1 + int(y) % 9,
            processing_ms=x,
        )
    if kind == 4:
        return ValueEvent(event_id=eid, user_id="u", ts=ts, value=x)
    return Lifecycle(
        event_id=eid,
        user_id="u",
        ts=ts,
        event=["signup", "renewal", "plan_change", "cancel", "reactivate"][int(y) % 5],
        segment=["course", "saas", "docs"][int(x) % 3],
        plan_price=y if flag else None,
    )


events_strategy = st.lists(
    st.tuples(st.integers(0, 5), _ts, _amount, _amount, st.booleans(), _name), max_size=60
).map(lambda raw: [_event(i, *r) for i, r in enumerate(raw)])


@settings(max_examples=150, deadline=None)
@given(events_strategy, st.sampled_from([None, 0.0, 15.0, 45.0]))
def test_round_trip_gives_identical_features(
    events: list[Event], offset_days: float | None
) -> None:
    src = UserState.new("u")
    kept = [ev for ev in events if src.apply(ev) is not Applied.TOO_LATE]
    src.mark_offset("behaviour.logins", 3, len(events))
    back = UserState.from_bytes(src.to_bytes())
    now = None if offset_days is None else D0 + offset_days * DAY
    assert back.vector(now) == src.vector(now)
    assert back.to_bytes() == src.to_bytes()
    assert (back.segment, back.churned, back.clock, back.signup_ts, back.plan_price) == (
        src.segment,
        src.churned,
        src.clock,
        src.signup_ts,
        src.plan_price,
    )
    for ev in kept[-10:]:  # the id ring survives (TOO_LATE events are never recorded)
        assert back.apply(ev) is Applied.DUPLICATE


def test_round_trip_keeps_config_from_caller() -> None:
    cfg = FeatureConfig(lateness_s=10.0, dedupe_slots=8)
    back = UserState.from_bytes(state_of([login(at(0))]).to_bytes(), cfg)
    assert back.config == cfg and len(back.ids) == 8


def test_unknown_version_and_garbage_are_rejected() -> None:
    blob = state_of([login(at(0)), view(at(0))]).to_bytes()
    assert blob[0] == VERSION
    with pytest.raises(ValueError, match="version"):
        UserState.from_bytes(bytes([VERSION + 1]) + blob[1:])
    with pytest.raises(ValueError):
        UserState.from_bytes(blob[:-3])
    with pytest.raises(ValueError):
        UserState.from_bytes(b"\x01")


def test_busy_user_fits_in_two_kib() -> None:
    evs = [life(at(0), "signup", price=99.0)]
    for d in range(40):
        for h in range(10):
            evs += [
                login(at(d, h)),
                view(at(d, h), video=f"v{d}-{h}", seeks=2),
                sync(at(d, h), integration=f"i{h % 4}", latency=120.0),
                job(at(d, h), ms=800.0, documents=3),
                value(at(d, h), 1.25),
            ]
    st_ = state_of(evs)
    st_.mark_offset("behaviour.video-views", 0, 123456789)
    assert len(st_.to_bytes()) <= 2048


def test_sparse_groups_keep_light_users_small() -> None:
    light = state_of([login(at(d)) for d in range(28)])
    assert len(light.to_bytes()) < 400


def test_counters_beyond_64_bits_or_negative_round_trip() -> None:
    evs = [value(at(0), 1e20), value(at(1), 5.0), view(at(1), watched=-30.0, duration=60.0)]
    src = state_of(evs)
    back = UserState.from_bytes(src.to_bytes())
    assert back.vector() == src.vector()
    assert back.features()["value_28d"] == pytest.approx(1e20 + 5.0)


def test_large_state_is_compressed_and_round_trips() -> None:
    src = state_of([login(at(0))])
    for p in range(120):  # many source partitions: payload above the compression threshold
        src.mark_offset("behaviour.video-views", p, 10**12 + p)
    blob = src.to_bytes()
    assert blob[1] & 1  # zlib flag
    back = UserState.from_bytes(blob)
    assert back.offsets == src.offsets and back.to_bytes() == blob


def test_corrupt_v2_column_code_and_trailing_bytes_are_rejected() -> None:
    blob = state_of([login(at(0))]).to_bytes()
    assert blob[1] == 0  # small: stored uncompressed
    with pytest.raises(ValueError, match="trailing"):
        UserState.from_bytes(blob + b"\0")
    # One day, two used counters (ACTIVE, LOGINS) as 1-byte columns after the 25 column codes,
    # then v5's empty mask of the days kept before the newest.
    codes_at = len(blob) - 1 - 2 - 25
    assert blob[codes_at : codes_at + 2] == b"\x01\x01"
    bad = bytearray(blob)
    bad[codes_at] = 9
    with pytest.raises(ValueError, match="column code"):
        UserState.from_bytes(bytes(bad))


def test_a_v5_day_before_the_newest_is_kept_only_if_out_of_the_ring() -> None:
    """v5 stored, per slot, the day of the event before the newest one's day; v6 the newest
    day that left the clock's ring. A v5 day still in the ring is in the day rows already."""
    st = state_of([login(at(0)), login(at(40))])
    out_of_ring = int(at(0) // DAY)
    assert st.day_before_ring[1] == out_of_ring
    st.day_before_ring[0] = int(at(35) // DAY)  # as a v5 writer held it: inside the ring
    blob = st.to_bytes()
    assert blob[0] == 6
    v5 = UserState.from_bytes(bytes((5,)) + blob[1:])
    assert v5.day_before_ring[1] == out_of_ring and v5.day_before_ring[0] == -1
    assert UserState.from_bytes(blob).day_before_ring == st.day_before_ring
