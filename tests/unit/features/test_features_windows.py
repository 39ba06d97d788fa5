"""Each feature against hand-computed values, including day-edge window boundaries."""

from __future__ import annotations

import math

import pytest
from feature_events import D0, DAY, at, job, life, login, state_of, sync, value, view

from churnstream.features import FEATURE_NAMES, UserState


def test_empty_state_has_all_names_and_neutral_values() -> None:
    f = UserState.new("x").features(now=D0)
    assert list(f) == list(FEATURE_NAMES)
    assert f["days_since_event"] == 0.0  # never seen counts from the start (tenure 0)
    assert f["tenure_days"] == 0.0
    assert f["trend_logins"] == 1.0
    assert (f["roi_28d"], f["roi_known"]) == (1.0, 0.0)  # unknown: break-even, flagged
    assert (f["history_days"], f["renewal_known"]) == (0.0, 0.0)
    assert all(math.isfinite(v) for v in f.values())


def test_vector_matches_features_order() -> None:
    st = state_of([login(at(0)), view(at(0))])
    assert st.vector() == list(st.features().values())


@pytest.mark.parametrize(
    ("days_back", "in_1d", "in_7d", "in_28d"),
    [(0, 1, 1, 1), (1, 0, 1, 1), (6, 0, 1, 1), (7, 0, 0, 1), (27, 0, 0, 1), (28, 0, 0, 0)],
)
def test_login_windows_by_day_age(days_back: int, in_1d: int, in_7d: int, in_28d: int) -> None:
    now = at(40, 23.0)
    st = state_of([login(at(40 - days_back)), login(now)])
    f = st.features(now)
    assert f["logins_1d"] == 1 + in_1d
    assert f["logins_7d"] == 1 + in_7d
    assert f["logins_28d"] == 1 + in_28d


def test_day_edges_belong_to_the_day_they_start() -> None:
    # 00:00:00 of day 7 is in day 7; one microsecond earlier is day 6.
    now = D0 + 13 * DAY  # day 13 starts: 7d window = days 7..13
    st = state_of([login(D0 + 7 * DAY), login(D0 + 7 * DAY - 1e-6), login(now)])
    f = st.features(now)
    assert f["logins_1d"] == 1
    assert f["logins_7d"] == 2
    assert f["logins_28d"] == 3


def test_windows_follow_now_not_only_the_clock() -> None:
    st = state_of([login(at(0)), login(at(1)), login(at(1))])
    assert st.features(at(1))["logins_1d"] == 2
    assert st.features(at(2))["logins_1d"] == 0
    assert st.features(at(7))["logins_7d"] == 2
    assert st.features(at(8))["logins_7d"] == 0
    assert st.features(at(0))["logins_7d"] == 1  # now before the clock drops later days


def test_login_and_activity_counts() -> None:
    evs = [
        login(at(0)),
        login(at(0), success=False),
        login(at(3), success=False),
        login(at(5)),
        view(at(5)),
        sync(at(20)),
    ]
    f = state_of(evs).features(at(20, 13))
    assert f["logins_28d"] == 2
    assert f["failed_logins_28d"] == 2
    assert f["failed_logins_7d"] == 0
    assert f["active_days_28d"] == 3  # days 0, 5, 20; the failed-only day 3 is not active
    assert f["active_days_7d"] == 1
    assert f["days_since_login"] == pytest.approx(15 + 1 / 24)
    assert f["days_since_event"] == pytest.approx(1 / 24)


def test_course_features() -> None:
    evs = [
        view(at(0), watched=600, duration=600, video="a", seeks=3, rewinds=1, pauses=2),
        view(at(1), watched=30, duration=300, video="b", seeks=1),  # 10 %: abandoned
        view(at(1), watched=150, duration=300, video="a"),  # 50 %
        view(at(-10), watched=1200, duration=1200, video="c"),  # only in 28d
    ]
    f = state_of(evs).features(at(1, 18))
    assert f["videos_started_7d"] == 3
    assert f["videos_started_28d"] == 4
    assert f["videos_completed_7d"] == 1
    assert f["videos_completed_28d"] == 2
    assert f["watch_minutes_1d"] == pytest.approx(3.0)
    assert f["watch_minutes_7d"] == pytest.approx(13.0)
    assert f["watch_minutes_28d"] == pytest.approx(33.0)
    assert f["watched_fraction_7d"] == pytest.approx((1.0 + 0.1 + 0.5) / 3)
    assert f["abandoned_7d"] == 1
    assert f["abandoned_ratio_7d"] == pytest.approx(1 / 3)
    assert f["seeks_per_min_7d"] == pytest.approx(4 / 13)
    assert f["rewinds_per_min_7d"] == pytest.approx(1 / 13)
    assert f["pauses_per_min_7d"] == pytest.approx(2 / 13)
    assert f["distinct_videos_7d"] == 2
    assert f["distinct_videos_28d"] == 3
    assert f["days_since_video"] == pytest.approx(0.25)


def test_watched_fraction_is_capped_at_one() -> None:
    f = state_of([view(at(0), watched=500, duration=100)]).features()
    assert f["watched_fraction_7d"] == 1.0


def test_saas_features() -> None:
    evs = [
        sync(at(0), latency=100),
        sync(at(0), ok=False, integration="erp", latency=300),
        sync(at(-9), ok=False, integration="mail"),
        sync(at(-9)),
        value(at(0), 12.34),
        value(at(-20), 100.0),
        value(at(-3), 0.0),
    ]
    f = state_of(evs).features()
    assert f["syncs_7d"] == 2
    assert f["syncs_28d"] == 4
    assert f["sync_error_ratio_7d"] == 0.5
    assert f["sync_error_ratio_28d"] == 0.5
    assert f["distinct_integrations_28d"] == 3
    assert f["sync_latency_ms_7d"] == 200.0
    assert f["value_7d"] == pytest.approx(12.34)
    assert f["value_28d"] == pytest.approx(112.34)
    assert f["value_events_28d"] == 3
    assert f["days_since_sync"] == 0.0
    assert f["days_since_ok_sync"] == 0.0
    assert f["days_since_value"] == 0.0


def test_days_since_ok_sync_ignores_errors() -> None:
    f = state_of([sync(at(0)), sync(at(2), ok=False)]).features(at(2))
    assert f["days_since_sync"] == 0.0
    assert f["days_since_ok_sync"] == 2.0


def test_days_since_is_capped_at_60() -> None:
    f = state_of([login(at(0))]).features(at(100))
    assert f["days_since_login"] == 60.0


def test_docs_features() -> None:
    evs = [
        job(at(0), documents=3, ms=100),
        job(at(0), ok=False, ms=500),
        job(at(-1)),
        job(at(-15), ok=False, documents=7, ms=9000),
    ]
    f = state_of(evs).features()
    assert f["jobs_7d"] == 3
    assert f["jobs_28d"] == 4
    assert f["documents_7d"] == 5
    assert f["job_failure_ratio_7d"] == pytest.approx(1 / 3)
    assert f["job_failure_ratio_28d"] == 0.5
    assert f["processing_ms_mean_7d"] == 300.0
    assert f["processing_ms_max_7d"] == 500.0
    assert f["days_since_job"] == 0.0


def test_cost_and_roi_prorate_price_per_subscribed_day() -> None:
    # Signed up on day 0 at 30/30 days = 1 per day; now is day 3 -> 4 subscribed days.
    evs = [life(at(0), "signup", price=30.0), value(at(3), 2.0)]
    f = state_of(evs).features(at(3))
    assert f["plan_price"] == 30.0
    assert f["cost_7d"] == pytest.approx(4.0)
    assert f["cost_28d"] == pytest.approx(4.0)
    assert f["roi_7d"] == pytest.approx(0.5)
    f40 = state_of(evs).features(at(40))
    assert f40["cost_7d"] == pytest.approx(7.0)
    assert f40["cost_28d"] == pytest.approx(28.0)
    assert f40["roi_28d"] == 0.0  # value left the window


def test_roi_is_capped_and_flagged_unknown_without_cost() -> None:
    # No plan price: the ROI is unknown, not the worst: break-even with roi_known 0.
    unknown = state_of([value(at(0), 1e6)]).features()
    assert (unknown["roi_7d"], unknown["roi_28d"], unknown["roi_known"]) == (1.0, 1.0, 0.0)
    f = state_of([life(at(0), "signup", price=3.0), value(at(0), 1e6)]).features()
    assert (f["roi_7d"], f["roi_known"]) == (10.0, 1.0)
    nothing = state_of([life(at(0), "signup", price=3.0), login(at(0))]).features()
    assert (nothing["roi_7d"], nothing["roi_known"]) == (0.0, 1.0)  # known cost, no value


def test_cost_stops_at_cancel_day() -> None:
    evs = [life(at(0), "signup", price=30.0), life(at(2), "cancel")]
    f = state_of(evs).features(at(5))
    assert f["cost_7d"] == pytest.approx(3.0)  # days 0, 1, 2


def test_trends() -> None:
    # A full window (first event 27 days back): 28d: 8 logins (weekly average 2); 7d: 3 -> 1.5.
    evs = [login(at(d)) for d in (-27, -27, -15, -15, -10)] + [login(at(0)) for _ in range(3)]
    f = state_of(evs).features()
    assert f["trend_logins"] == pytest.approx(1.5)
    assert f["trend_syncs"] == 1.0  # no history: neutral
    assert f["trend_active_days"] == pytest.approx((1 / 7) / (4 / 28))
    # Observed for 21 days only: the rate is per observed day, 3/7 against 8/21.
    short = state_of([*evs[2:], login(at(-20)), login(at(-20))]).features()
    assert short["trend_logins"] == pytest.approx((3 / 7) / (8 / 21))
    # Observed for 28 days (signup), every login this week: the most a 7-day window can hold.
    burst = state_of([life(at(-27), "signup"), login(at(0)), login(at(-1))]).features()
    assert burst["trend_logins"] == 4.0


def test_a_new_user_is_not_a_surge() -> None:
    # One day of history: the 7-day and 28-day rates are the same days, so neutral (was 4.0).
    only_recent = state_of([login(at(0)), view(at(0))]).features()
    assert only_recent["trend_logins"] == only_recent["trend_active_days"] == 1.0


def test_tenure_from_signup_else_first_event() -> None:
    assert state_of([login(at(0)), login(at(3))]).features()["tenure_days"] == 3.0
    st = state_of([login(at(0)), life(at(1), "signup"), login(at(3))])
    assert st.features()["tenure_days"] == 2.0


def test_no_nan_or_inf_anywhere() -> None:
    evs = [
        view(at(0), watched=0.0, duration=1.0),
        sync(at(0)),
        job(at(0)),
        value(at(0), 0.0),
        life(at(0), "signup", price=0.0),
    ]
    st = state_of(evs)
    for now in (None, at(-100), at(0), at(1000)):
        assert all(math.isfinite(v) for v in st.vector(now))


def test_never_seen_counts_from_signup_and_is_capped() -> None:
    st = state_of([life(at(0), "signup", segment="course", price=30.0)])
    f = st.features(now=at(10))
    assert f["days_since_video"] == 10.0
    assert f["days_since_event"] == 10.0
    assert st.features(now=at(90))["days_since_video"] == 60.0
