"""Features that mean the same on a user's day 2 and day 200 (issue 14, item 4).

Normalised trends, history length, unknown ROI flagged, days to renewal, log companions, the
28-day frustration baselines, and the state size of a busy user under the 2 KiB budget.
"""

from __future__ import annotations

import math
import random
import zlib

import pytest
from feature_events import D0, DAY, at, job, life, login, state_of, sync, value, view

from churnstream.features import FEATURE_NAMES, UserState
from churnstream.features.codec import VERSION
from churnstream.features.names import LOG_SCALED, SEGMENT_FEATURES
from churnstream.stream.contract.events import Event

TRENDS = [n for n in FEATURE_NAMES if n.startswith("trend_")]


def steady(days: int) -> UserState:
    """A learner who does exactly the same every day: a login, two views, a sync, a job."""
    st = UserState.new("u")
    for d in range(days):
        for ev in (login(at(d, 8.0)), view(at(d, 9.0)), view(at(d, 10.0), video="v2")):
            st.apply(ev)
        st.apply(sync(at(d, 11.0), latency=200.0))
        st.apply(job(at(d, 12.0), ms=300.0))
        st.apply(value(at(d, 13.0), 5.0))
    return st


@pytest.mark.parametrize("day", [1, 3, 6, 10, 27, 60])
def test_a_steady_user_reads_a_trend_of_one_at_any_age(day: int) -> None:
    # Before: 4.0 on days 1-6 (a 28-day window not yet full read as a surge), 1.0 from day 28.
    st = steady(day + 1)
    daily = dict(zip(FEATURE_NAMES, st.vector_at(D0 + day * DAY), strict=True))
    event = st.features(at(day, 23.0))
    for name in TRENDS:
        assert daily[name] == pytest.approx(1.0), (name, "daily")
        assert event[name] == pytest.approx(1.0), (name, "event")


def test_a_drop_reads_the_same_early_and_late() -> None:
    # Active every day, then nothing in the last 7 days: 0 whenever there is a past to compare.
    for days in (10, 60):
        st = steady(days - 7)
        f = dict(zip(FEATURE_NAMES, st.vector_at(D0 + days * DAY), strict=True))
        assert f["trend_active_days"] == 0.0
        assert f["trend_logins"] == 0.0


def test_history_days_counts_observed_days_up_to_the_longest_window() -> None:
    assert steady(1).features(at(0, 23.0))["history_days"] == 1.0
    assert steady(3).features(at(2, 23.0))["history_days"] == 3.0
    assert steady(60).features(at(59, 23.0))["history_days"] == 28.0
    # Daily rows: from the first event's day to the last complete day before the boundary.
    st = steady(5)
    assert dict(zip(FEATURE_NAMES, st.vector_at(D0 + 4 * DAY), strict=True))["history_days"] == 4
    # A deployment's first week: a long-standing customer is seen for the first time.
    veteran = state_of([login(at(100))])
    assert veteran.features(at(102))["history_days"] == 3.0


def test_unknown_roi_is_flagged_and_neutral_not_the_worst() -> None:
    no_price = state_of([value(at(0), 0.0), login(at(0))]).features()
    priced = state_of([life(at(0), "signup", price=30.0), login(at(0))]).features()
    assert (no_price["roi_7d"], no_price["roi_known"]) == (1.0, 0.0)
    assert (priced["roi_7d"], priced["roi_known"]) == (0.0, 1.0)  # a cost and no value: worst


def test_days_to_renewal_follows_the_latest_billing_anchor() -> None:
    st = state_of([life(at(0, 0.0), "signup", price=30.0)])
    f = st.features(at(10, 0.0))
    assert (f["days_to_renewal"], f["renewal_known"]) == (20.0, 1.0)
    assert st.features(at(0, 0.0))["days_to_renewal"] == 30.0  # renews in a full cycle
    assert st.features(at(45, 0.0))["days_to_renewal"] == 15.0  # extrapolated past a renewal
    st.apply(life(at(31, 0.0), "renewal", price=30.0))  # a day late: the cycle moves
    assert st.features(at(40, 0.0))["days_to_renewal"] == 21.0
    st.apply(life(at(1, 0.0), "renewal"))  # an older anchor arriving late changes nothing
    assert st.features(at(40, 0.0))["days_to_renewal"] == 21.0
    st.apply(life(at(41, 0.0), "cancel"))
    f = st.features(at(42, 0.0))
    assert (f["days_to_renewal"], f["renewal_known"]) == (15.0, 0.0)  # no renewal coming
    unknown = state_of([login(at(0))]).features()
    assert (unknown["days_to_renewal"], unknown["renewal_known"]) == (15.0, 0.0)


def test_log_companions_are_log1p_of_their_source_and_stay_bounded() -> None:
    evs: list[Event] = [login(at(0)) for _ in range(200)]
    evs += [value(at(0), 1e12), job(at(0), documents=10**9, ms=1e9), value(at(1), -50.0)]
    f = state_of(evs).features(at(1))
    for name in LOG_SCALED:
        raw = f[name]
        assert f[f"log_{name}"] == pytest.approx(math.copysign(math.log1p(abs(raw)), raw)), name
        assert abs(f[f"log_{name}"]) < 30.0, name  # even 1e12 currency units
    assert f["log_logins_7d"] == pytest.approx(math.log(201))


def test_the_28_day_frustration_baselines_are_kept() -> None:
    evs: list[Event] = [
        view(at(-20), watched=10.0, duration=100.0, seeks=6),  # abandoned, 6 seeks a 1/6 min
        view(at(0), watched=60.0, duration=60.0),
        sync(at(-20), latency=900.0),
        sync(at(0), latency=100.0),
        job(at(-20), ms=4000.0),
        job(at(0), ms=1000.0),
    ]
    f = state_of(evs).features()
    assert f["abandoned_ratio_28d"] == 0.5 and f["abandoned_ratio_7d"] == 0.0
    assert f["watched_fraction_28d"] == pytest.approx(0.55)
    assert f["seeks_per_min_28d"] == pytest.approx(6 / (70 / 60))
    assert f["sync_latency_ms_28d"] == 500.0 and f["sync_latency_ms_7d"] == 100.0
    assert f["processing_ms_mean_28d"] == 2500.0


def test_processing_per_document_of_the_last_three_days_against_the_days_before() -> None:
    evs: list[Event] = [
        job(at(-20), documents=10, ms=10_000.0),  # 1 s a document, 10 s a job
        job(at(-3), documents=2, ms=4000.0),  # before the 3 days (days -2, -1 and 0)
        job(at(-1), documents=1, ms=3000.0),  # 3 s a document
        job(at(0), documents=3, ms=9000.0),
        job(at(0), documents=5),  # no processing time: counts its documents all the same
    ]
    f = state_of(evs).features()
    assert f["processing_ms_per_doc_3d"] == 12_000 / 9
    assert f["processing_per_doc_3d_vs_before"] == pytest.approx(
        math.log1p(12_000 / 9) - math.log1p(14_000 / 12)
    )
    # The daily row as of the next boundary reads the same complete days.
    row = dict(zip(FEATURE_NAMES, state_of(evs).vector_at(at(1, 0.0)), strict=True))
    assert row["processing_per_doc_3d_vs_before"] == f["processing_per_doc_3d_vs_before"]
    # No job in the last 3 days, or none before them: 0.0, i.e. "as usual".
    quiet = dict(zip(FEATURE_NAMES, state_of(evs).vector_at(at(5, 0.0)), strict=True))
    assert quiet["processing_ms_per_doc_3d"] == quiet["processing_per_doc_3d_vs_before"] == 0.0
    new = state_of([job(at(0), documents=3, ms=9000.0)]).features()
    assert new["processing_ms_per_doc_3d"] == 3000.0
    assert new["processing_per_doc_3d_vs_before"] == 0.0
    assert "processing_per_doc_3d_vs_before" in SEGMENT_FEATURES["docs"]
    assert "processing_ms_per_doc_3d" not in SEGMENT_FEATURES["docs"]  # raw, for people


def busy_user(days: int, seed: int = 7) -> UserState:
    """A heavy SaaS-and-course user: 30 to 60 events a day of every kind, from 3 partitions."""
    rng = random.Random(seed)
    st = UserState.new("busy-user-0001")
    st.apply(life(at(0, 0.0), "signup", price=499.0))
    offset = 0
    for d in range(days):
        if d and d % 30 == 0:
            st.apply(life(at(d, 0.0), "renewal", price=499.0))
        for _ in range(rng.randint(30, 60)):
            ts = at(d, rng.uniform(0.0, 23.9))
            kind = rng.randrange(6)
            ev: Event
            if kind == 0:
                ev = login(ts, success=rng.random() > 0.1)
            elif kind == 1:
                ev = view(ts, watched=rng.uniform(5, 900), video=f"v{rng.randrange(300)}")
            elif kind == 2:
                ev = sync(
                    ts, ok=rng.random() > 0.2, integration=f"i{rng.randrange(9)}", latency=300.0
                )
            elif kind == 3:
                ev = job(ts, ok=rng.random() > 0.1, documents=rng.randint(1, 400), ms=9000.0)
            else:
                ev = value(ts, rng.uniform(0, 2000))
            st.apply(ev)
            offset += 1
            st.mark_offset(f"topic-{kind % 3}", rng.randrange(12), offset)
    return st


def test_a_busy_user_over_60_days_stays_within_two_kib(capsys: pytest.CaptureFixture[str]) -> None:
    sizes = [len(busy_user(days).to_bytes()) for days in (1, 7, 28, 45, 60)]
    with capsys.disabled():
        print(f"\nstate bytes of a busy user after 1/7/28/45/60 days: {sizes}")
    assert max(sizes) <= 2048


def test_a_v2_state_still_decodes() -> None:
    st = busy_user(10)
    st.renewal_ts = None  # what a v2 writer could hold: the same layout without the anchor
    st.renewal_before = st.signup_before = None  # nor the ones before the newest (v5)
    st.day_before_ring = [-1] * len(st.last)
    blob = st.to_bytes()
    payload = zlib.decompress(blob[2:]) if blob[1] & 1 else blob[2:]
    v2 = bytes((2, 0)) + payload[:-1]  # without v5's (empty) mask of the days before the newest
    back = UserState.from_bytes(v2)
    assert back.vector() == st.vector() and back.renewal_ts is None
    assert VERSION == 6
    anchored = busy_user(40)
    assert UserState.from_bytes(anchored.to_bytes()).renewal_ts == anchored.renewal_ts == at(30, 0)
