"""Turn window totals into the feature vector (order of `FEATURE_NAMES`).

Never returns NaN or inf: every ratio has a guarded denominator, every unbounded value a cap
or a log. Features mean the same on a user's second day as on their two hundredth: rates are
taken over the days the state has actually observed, not over a window it has not filled yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from churnstream.features import buckets as b
from churnstream.features.names import (
    DAYS_SINCE_CAP,
    HISTORY_CAP,
    LOG_SOURCES,
    RENEWAL_CYCLE_DAYS,
    RENEWAL_UNKNOWN,
    ROI_CAP,
    ROI_UNKNOWN,
    TREND_CAP,
)
from churnstream.stream.contract.events import DAY_S

if TYPE_CHECKING:
    from churnstream.features.state import UserState

_INF = float("inf")
_log1p = math.log1p


def _roi(value: float, cost: float) -> float:
    # No cost means no ROI, not the worst one: the neutral stand-in (`roi_known` says which).
    if cost <= 0:
        return ROI_UNKNOWN
    return min(ROI_CAP, max(0.0, value / cost))


# derive() unpacks window rows positionally; this pins the counter layout it assumes.
_LAYOUT = (
    b.ACTIVE,
    b.LOGINS,
    b.FAILED_LOGINS,
    b.VIDEOS,
    b.VIDEOS_DONE,
    b.WATCH_DS,
    b.WATCH_FRAC_BP,
    b.ABANDONED,
    b.SEEKS,
    b.REWINDS,
    b.PAUSES,
    b.VIDEO_BITS,
    b.SYNCS,
    b.SYNC_ERRORS,
    b.LATENCY_MS,
    b.LATENCY_N,
    b.INTEGRATION_BITS,
    b.VALUE_CENTS,
    b.VALUE_EVENTS,
    b.JOBS,
    b.JOBS_FAILED,
    b.DOCUMENTS,
    b.PROC_MS,
    b.PROC_N,
    b.PROC_MS_MAX,
)
if tuple(range(25)) != _LAYOUT or b.N_COUNTERS != 25 or b.N_LAST != 7:
    raise ImportError("features.derive is out of date with the features.buckets layout")


def derive(
    st: UserState,
    now: float,
    now_day: int,
    r1: list[int] | None,
    w3: list[int],
    w7: list[int],
    w28: list[int],
    lo28: int,
    last: Sequence[float] | None = None,
) -> list[float]:
    """Feature vector from `now_day`'s row and the 3-, 7- and 28-day window totals ending there.

    `lo28` is the first day of the 28-day window (`now_day - 27`, later when fewer days are
    held). `last` are the last-seen times of the `LAST_*` slots (default: the state's own).

    Hot path (once per scored event): window counters are unpacked into locals and ratios
    (`num / den if den else 0.0`) and days-since (`(now - last) / DAY_S` clamped to
    [0, DAYS_SINCE_CAP]; never seen counts from the user's start, also capped) are inline.
    """
    (
        active7,
        logins7,
        failed7,
        videos7,
        done7,
        watch_ds7,
        frac_bp7,
        abandoned7,
        seeks7,
        rewinds7,
        pauses7,
        vbits7,
        syncs7,
        sync_err7,
        latency7,
        latency_n7,
        _ibits7,
        cents7,
        _value_n7,
        jobs7,
        jobs_failed7,
        documents7,
        proc_ms7,
        proc_n7,
        proc_max7,
    ) = w7
    (
        active28,
        logins28,
        failed28,
        videos28,
        done28,
        watch_ds28,
        frac_bp28,
        abandoned28,
        seeks28,
        rewinds28,
        pauses28,
        vbits28,
        syncs28,
        sync_err28,
        latency28,
        latency_n28,
        ibits28,
        cents28,
        value_n28,
        jobs28,
        jobs_failed28,
        _documents28,
        proc_ms28,
        proc_n28,
        _proc_max28,
    ) = w28

    tenure, first_day, days_ratio, price, cost7, cost28 = _basis(st, now, now_day, lo28)
    history = float(min(HISTORY_CAP, max(0, now_day - first_day + 1)))

    def trend(x7: float, x28: float) -> float:
        return _trend(x7, x28, days_ratio)

    # Billing anchors repeat every cycle, so an anchor seen after `now` (the state runs ahead
    # of a daily row) still gives the same phase. A cancelled user has no renewal to come.
    anchor = st.renewal_at(now)
    cancelled = st.churned and st.cancel_ts is not None and st.cancel_ts <= now
    if anchor is None or cancelled:
        renewal_known = 0.0
        to_renewal = RENEWAL_UNKNOWN
    else:
        renewal_known = 1.0
        to_renewal = RENEWAL_CYCLE_DAYS - ((now - anchor) / DAY_S) % RENEWAL_CYCLE_DAYS

    # _since() for every `last` slot; LAST_* order is the days_since_* feature order.
    # Never seen counts from the user's start: a new user is not "60 days inactive".
    never = tenure if tenure < DAYS_SINCE_CAP else DAYS_SINCE_CAP
    since = []
    for t in st.last if last is None else last:
        if t == -_INF:
            since.append(never)
            continue
        d = (now - t) / DAY_S
        d = d if d > 0.0 else 0.0
        since.append(d if d < DAYS_SINCE_CAP else DAYS_SINCE_CAP)

    logins1 = r1[b.LOGINS] if r1 is not None else 0
    watch1 = r1[b.WATCH_DS] / 600.0 if r1 is not None else 0.0
    watch7 = watch_ds7 / 600.0
    watch28 = watch_ds28 / 600.0
    value7 = cents7 / 100.0
    value28 = cents28 / 100.0

    out = [
        tenure,
        float(price),
        *since,
        float(logins1),
        float(logins7),
        float(logins28),
        float(failed7),
        float(failed28),
        float(active7),
        float(active28),
        float(videos7),
        float(videos28),
        float(done7),
        float(done28),
        watch1,
        watch7,
        watch28,
        frac_bp7 / 10000.0 / videos7 if videos7 else 0.0,
        float(abandoned7),
        abandoned7 / videos7 if videos7 else 0.0,
        seeks7 / watch7 if watch7 else 0.0,
        rewinds7 / watch7 if watch7 else 0.0,
        pauses7 / watch7 if watch7 else 0.0,
        float(vbits7.bit_count()),
        float(vbits28.bit_count()),
        float(syncs7),
        float(syncs28),
        sync_err7 / syncs7 if syncs7 else 0.0,
        sync_err28 / syncs28 if syncs28 else 0.0,
        float(ibits28.bit_count()),
        latency7 / latency_n7 if latency_n7 else 0.0,
        value7,
        value28,
        cost7,
        cost28,
        _roi(value7, cost7),
        _roi(value28, cost28),
        float(value_n28),
        float(jobs7),
        float(jobs28),
        float(documents7),
        jobs_failed7 / jobs7 if jobs7 else 0.0,
        jobs_failed28 / jobs28 if jobs28 else 0.0,
        proc_ms7 / proc_n7 if proc_n7 else 0.0,
        float(proc_max7),
        trend(logins7, logins28),
        trend(watch7, watch28),
        trend(videos7, videos28),
        trend(syncs7, syncs28),
        trend(value7, value28),
        trend(jobs7, jobs28),
        trend(active7, active28),
        history,
        to_renewal,
        renewal_known,
        1.0 if cost7 > 0 else 0.0,
        # The 28-day frustration baselines: what is usual for this user, so a bad week stands
        # out against it (the 7-day values alone mix "frustrated now" with "always like this").
        frac_bp28 / 10000.0 / videos28 if videos28 else 0.0,
        abandoned28 / videos28 if videos28 else 0.0,
        seeks28 / watch28 if watch28 else 0.0,
        rewinds28 / watch28 if watch28 else 0.0,
        pauses28 / watch28 if watch28 else 0.0,
        latency28 / latency_n28 if latency_n28 else 0.0,
        proc_ms28 / proc_n28 if proc_n28 else 0.0,
    ]
    # Sign-preserving log1p (a value can be negative), inline: this runs once per scored event.
    out += [_log1p(v) if v >= 0.0 else -_log1p(-v) for v in map(out.__getitem__, LOG_SOURCES)]
    out += _recent(w3, w28)
    return out


def _recent(w3: list[int], w28: list[int]) -> list[float]:
    """`RECENT_NAMES`: the processing time per document of the last 3 days, alone (for people)
    and against the rest of the 28-day window (issue 14: the simulator's hidden stress slows
    jobs down as a decline ramps over 1-3 weeks, which the 7-day mean per job shows late).

    Per document, not per job: a job's time scales with its documents, whose count varies far
    more between jobs than the time per document. Against the days before the 3, not the whole
    28 days: the baseline leaves out the change it is compared with."""
    docs3 = w3[b.DOCUMENTS] if w3[b.PROC_N] else 0
    docs_before = w28[b.DOCUMENTS] - w3[b.DOCUMENTS] if w28[b.PROC_N] > w3[b.PROC_N] else 0
    ppd3 = w3[b.PROC_MS] / docs3 if docs3 else 0.0
    before = (w28[b.PROC_MS] - w3[b.PROC_MS]) / docs_before if docs_before > 0 else 0.0
    # 0.0 ("as usual") unless both are known.
    return [ppd3, _log1p(ppd3) - _log1p(before) if ppd3 and before else 0.0]


# The features a `roi_drop` decision reads (model.roi.read_roi and the alert's drivers).
ROI_FEATURES = (
    "tenure_days",
    "value_7d",
    "value_28d",
    "cost_7d",
    "cost_28d",
    "value_events_28d",
    "trend_value",
)


def derive_roi(
    st: UserState,
    now: float,
    now_day: int,
    cents7: int,
    cents28: int,
    value_n28: int,
    lo28: int,
) -> dict[str, float]:
    """`ROI_FEATURES` from the window totals of value cents and value events, as `derive`
    gives them (the same helpers), so the floats are equal bit for bit
    (tests/unit/features/test_features_roi.py compares them at every event of a history)."""
    tenure, _, days_ratio, _, cost7, cost28 = _basis(st, now, now_day, lo28)
    value7 = cents7 / 100.0
    value28 = cents28 / 100.0
    trend = _trend(value7, value28, days_ratio)
    return {
        "tenure_days": tenure,
        "value_7d": value7,
        "value_28d": value28,
        "cost_7d": cost7,
        "cost_28d": cost28,
        "value_events_28d": float(value_n28),
        "trend_value": trend,
    }


def _basis(
    st: UserState, now: float, now_day: int, lo28: int
) -> tuple[float, int, float, float, float, float]:
    """What many features share: tenure, the first day observed, the ratio of the days
    observed in the 28-day and the 7-day window, the plan price and the 7- and 28-day costs."""
    # Hot path (every event score, via `derive_roi`): `price_at` and `subscribed_days` are
    # inlined, with the same arithmetic in the same order.
    tenure = tenure_days(st, now)
    first_ts = st.first_ts
    # Days of each window the state has observed: from the day of the first event it saw
    # (a user's start, or a deployment's) to now_day. Rates per observed day make a steady
    # user's trend 1.0 from the first day instead of 4.0 until the 28-day window fills.
    first_day = int(first_ts // DAY_S) if first_ts != _INF else now_day + 1
    obs7 = now_day - (first_day if first_day > now_day - 6 else now_day - 6) + 1
    obs28 = now_day - (first_day if first_day > lo28 else lo28) + 1
    if obs7 < 0:
        obs7 = 0
    if obs28 < 0:
        obs28 = 0
    days_ratio = obs28 / obs7 if obs7 else 0.0
    since = st.price_from
    price = (st.price_before if since is not None and since > now else st.plan_price) or 0.0
    per_day = price / 30.0
    if per_day:
        cost7 = per_day * subscribed_days(st, now_day - 6, now_day)
        cost28 = per_day * subscribed_days(st, now_day - 27, now_day)
    else:
        cost7 = cost28 = 0.0
    return tenure, first_day, days_ratio, price, cost7, cost28


def tenure_days(st: UserState, now: float) -> float:
    """The `tenure_days` feature at `now`: days since the signup as of `now` (`signup_at`,
    inlined), else since the first event seen; for `_basis` and for `UserState.roi_features_if`,
    which reads it before deriving anything else."""
    signup = st.signup_ts
    if signup is not None and signup > now:
        signup = st.signup_before
    start = signup if signup is not None else st.first_ts
    # A comparison instead of max(): it keeps max()'s result, 0.0 on a tie or a NaN.
    tenure = (now - start) / DAY_S if start != _INF else 0.0
    return tenure if tenure > 0.0 else 0.0


def subscribed_days(st: UserState, lo_day: int, hi_day: int) -> int:
    """Days in [lo_day, hi_day] covered by a subscription period of `st` (whole days), for
    `UserState.subscribed_days`: a function (no method call from `_basis`) with comparisons
    instead of max()/min() calls, twice per event score."""
    start = st.sub_start_ts if st.sub_start_ts is not None else st.first_ts
    if start == _INF:
        return 0
    end_day = hi_day
    if st.churned and st.cancel_ts is not None:
        end_day = int(st.cancel_ts // DAY_S)
    a = hi_day if hi_day < end_day else end_day
    b_ = int(start // DAY_S)
    if lo_day > b_:
        b_ = lo_day
    n = a - b_ + 1
    if n < 0:
        n = 0
    prev = st.prev_sub
    if prev is not None:
        a = int(prev[1] // DAY_S)
        if hi_day < a:
            a = hi_day
        b_ = int(prev[0] // DAY_S)
        if lo_day > b_:
            b_ = lo_day
        if a - b_ + 1 > 0:
            n += a - b_ + 1
    span = hi_day - lo_day + 1
    return n if n < span else span


def _trend(x7: float, x28: float, days_ratio: float) -> float:
    """Rate over the last 7 observed days against the rate over the observed 28-day window;
    neutral 1.0 without activity in the window (or nothing observed)."""
    if not x28 or not days_ratio:
        return 1.0
    return min(TREND_CAP, x7 * days_ratio / x28)
