"""Duplicate deliveries by event_id and by Kafka offset change nothing."""

from __future__ import annotations

from feature_events import at, login, state_of

from churnstream.features import Applied, FeatureConfig, UserState
from churnstream.stream.contract.events import Login


def test_duplicate_event_id_is_ignored() -> None:
    ev = login(at(0))
    st = state_of([ev])
    before = st.to_bytes()
    assert st.apply(ev) is Applied.DUPLICATE
    again = Login(event_id=ev.event_id, user_id=ev.user_id, ts=at(1))  # same id, other payload
    assert st.apply(again) is Applied.DUPLICATE
    assert st.to_bytes() == before
    assert st.features()["logins_7d"] == 1


def test_dedupe_ring_is_bounded() -> None:
    cfg = FeatureConfig(dedupe_slots=4)
    evs = [login(at(0)) for _ in range(5)]
    st = state_of(evs, cfg)
    assert st.apply(evs[0]) is Applied.APPLIED  # evicted: bounded memory, not exact forever
    assert st.apply(evs[4]) is Applied.DUPLICATE
    assert len(st.ids) == 4


def test_dedupe_survives_serialization() -> None:
    ev = login(at(0))
    st = UserState.from_bytes(state_of([ev]).to_bytes())
    assert st.apply(ev) is Applied.DUPLICATE


def test_offsets_keep_highest_per_source_and_partition() -> None:
    st = UserState.new("u")
    assert not st.seen_offset("behaviour.logins", 0, 0)
    st.mark_offset("behaviour.logins", 0, 10)
    st.mark_offset("behaviour.logins", 0, 7)  # lower: ignored
    assert st.seen_offset("behaviour.logins", 0, 10)
    assert st.seen_offset("behaviour.logins", 0, 3)
    assert not st.seen_offset("behaviour.logins", 0, 11)
    assert not st.seen_offset("behaviour.logins", 1, 3)
    assert not st.seen_offset("behaviour.video-views", 0, 3)
    back = UserState.from_bytes(st.to_bytes())
    assert back.seen_offset("behaviour.logins", 0, 10)
    assert not back.seen_offset("behaviour.logins", 0, 11)


def test_dedupe_after_decoding_into_a_smaller_ring_and_wrapping() -> None:
    # The ring holds each id once; an evicted id counts again, a held one never (the lookup
    # follows the ring through decoding and eviction).
    evs = [login(at(0)) for _ in range(8)]
    st = state_of(evs, FeatureConfig(dedupe_slots=8))
    back = UserState.from_bytes(st.to_bytes(), FeatureConfig(dedupe_slots=4))
    assert [back.apply(ev) for ev in evs[4:]] == [Applied.DUPLICATE] * 4  # the newest 4 kept
    assert [back.apply(ev) for ev in evs[:4]] == [Applied.APPLIED] * 4  # evicting evs[4:]
    assert [back.apply(ev) for ev in evs[4:]] == [Applied.APPLIED] * 4  # evicting evs[:4]
    assert [back.apply(ev) for ev in evs[4:]] == [Applied.DUPLICATE] * 4
    new = login(at(0))
    assert back.apply(new) is Applied.APPLIED
    assert back.apply(evs[4]) is Applied.APPLIED  # the oldest, evicted by `new`
    assert back.apply(new) is Applied.DUPLICATE
