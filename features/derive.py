"""Turn window totals into the feature vector (order of `FEATURE_NAMES`).

Never returns NaN or inf: every ratio has a guarded denominator, every unbounded value a cap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from features import buckets as b
from features.buckets import DAY_S, aggregate
from features.names import DAYS_SINCE_CAP, ROI_CAP, TREND_CAP

if TYPE_CHECKING:
    from features.state import UserState

_INF = float("inf")


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0


def _trend(x7: float, x28: float) -> float:
    # 7-day amount against the 28-day weekly average; neutral 1.0 without history.
    if not x28:
        return 1.0
    return min(TREND_CAP, x7 * 4.0 / x28)


def _roi(value: float, cost: float) -> float:
    if cost <= 0:
        return 0.0
    return min(ROI_CAP, max(0.0, value / cost))


def _since(now: float, last: float) -> float:
    # last == -inf (never seen) gives +inf, capped here.
    return min(DAYS_SINCE_CAP, max(0.0, (now - last) / DAY_S))


def derive(
    st: UserState,
    now: float,
    now_day: int,
    r1: list[int] | None,
    r7: list[list[int]],
    r28: list[list[int]],
) -> list[float]:
    """Feature vector from the day rows of the 1-, 7- and 28-day windows ending at `now_day`."""
    w7 = aggregate(r7)
    w28 = aggregate(r28)

    start = st.signup_ts if st.signup_ts is not None else st.first_ts
    tenure = max(0.0, (now - start) / DAY_S) if start != _INF else 0.0
    price = st.plan_price or 0.0
    per_day = price / 30.0
    cost7 = per_day * st.subscribed_days(now_day - 6, now_day) if per_day else 0.0
    cost28 = per_day * st.subscribed_days(now_day - 27, now_day) if per_day else 0.0
    last = st.last

    logins1 = r1[b.LOGINS] if r1 is not None else 0
    watch1 = r1[b.WATCH_DS] / 600.0 if r1 is not None else 0.0

    videos7 = w7[b.VIDEOS]
    watch7 = w7[b.WATCH_DS] / 600.0
    watch28 = w28[b.WATCH_DS] / 600.0
    value7 = w7[b.VALUE_CENTS] / 100.0
    value28 = w28[b.VALUE_CENTS] / 100.0

    return [
        tenure,
        float(price),
        _since(now, last[b.LAST_EVENT]),
        _since(now, last[b.LAST_LOGIN]),
        _since(now, last[b.LAST_VIDEO]),
        _since(now, last[b.LAST_SYNC]),
        _since(now, last[b.LAST_OK_SYNC]),
        _since(now, last[b.LAST_JOB]),
        _since(now, last[b.LAST_VALUE]),
        float(logins1),
        float(w7[b.LOGINS]),
        float(w28[b.LOGINS]),
        float(w7[b.FAILED_LOGINS]),
        float(w28[b.FAILED_LOGINS]),
        float(w7[b.ACTIVE]),
        float(w28[b.ACTIVE]),
        float(videos7),
        float(w28[b.VIDEOS]),
        float(w7[b.VIDEOS_DONE]),
        float(w28[b.VIDEOS_DONE]),
        watch1,
        watch7,
        watch28,
        _ratio(w7[b.WATCH_FRAC_BP] / 10000.0, videos7),
        float(w7[b.ABANDONED]),
        _ratio(w7[b.ABANDONED], videos7),
        _ratio(w7[b.SEEKS], watch7),
        _ratio(w7[b.REWINDS], watch7),
        _ratio(w7[b.PAUSES], watch7),
        float(w7[b.VIDEO_BITS].bit_count()),
        float(w28[b.VIDEO_BITS].bit_count()),
        float(w7[b.SYNCS]),
        float(w28[b.SYNCS]),
        _ratio(w7[b.SYNC_ERRORS], w7[b.SYNCS]),
        _ratio(w28[b.SYNC_ERRORS], w28[b.SYNCS]),
        float(w28[b.INTEGRATION_BITS].bit_count()),
        _ratio(w7[b.LATENCY_MS], w7[b.LATENCY_N]),
        value7,
        value28,
        cost7,
        cost28,
        _roi(value7, cost7),
        _roi(value28, cost28),
        float(w28[b.VALUE_EVENTS]),
        float(w7[b.JOBS]),
        float(w28[b.JOBS]),
        float(w7[b.DOCUMENTS]),
        _ratio(w7[b.JOBS_FAILED], w7[b.JOBS]),
        _ratio(w28[b.JOBS_FAILED], w28[b.JOBS]),
        _ratio(w7[b.PROC_MS], w7[b.PROC_N]),
        float(w7[b.PROC_MS_MAX]),
        _trend(w7[b.LOGINS], w28[b.LOGINS]),
        _trend(watch7, watch28),
        _trend(videos7, w28[b.VIDEOS]),
        _trend(w7[b.SYNCS], w28[b.SYNCS]),
        _trend(value7, value28),
        _trend(w7[b.JOBS], w28[b.JOBS]),
        _trend(w7[b.ACTIVE], w28[b.ACTIVE]),
    ]
