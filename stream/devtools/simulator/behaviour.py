"""What customers do on one day: contract events driven by their traits and hidden stress.

Stress (0 healthy .. 1 about to leave) lowers activity and raises friction in each business:
less and shallower viewing with more seeks, rewinds and abandoned videos (course); failing
integration syncs and falling value (SaaS); failing and slower document jobs (docs); failed
logins everywhere.

A silent dropout's churn day ends with one last visit exactly at the churn moment (its
`churn_ts`, so the truth's last activity is known at plan time) and nothing follows it; a
returning dropout's first visit is exactly at its return moment.
"""

from __future__ import annotations

import math
import random
from typing import Any

from churnstream.stream.devtools.simulator.config import (
    DOC_JOBS,
    LIFECYCLE,
    LOGINS,
    SYNCS,
    VALUE,
    VIDEO_VIEWS,
)
from churnstream.stream.devtools.simulator.customers import Customer, waking_second
from churnstream.stream.devtools.simulator.records import SimRecord, rfc3339

WEEKEND_FACTOR = 0.55
SYNC_ERRORS = ("auth_expired", "rate_limited", "schema_mismatch", "timeout")
JOB_ERRORS = ("ocr_failed", "unsupported_format", "timeout", "corrupt_pdf")
CHANNELS = ("web", "web", "ios", "android")


def poisson(rng: random.Random, lam: float) -> int:
    """Knuth's Poisson sampler (means here are small)."""
    if lam <= 0.0:
        return 0
    limit = math.exp(-lam)
    k = 0
    p = rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


class DayWriter:
    """Builds the records of one customer-day with the shared contract fields."""

    __slots__ = ("c", "days", "out", "rng", "start")

    def __init__(self, c: Customer, day: int, start: float, days: int) -> None:
        self.c = c
        # A stream per customer-day: any day can be regenerated alone (ground truth does).
        self.rng = random.Random(f"{c.rng_key}/day/{day}")
        self.start = start
        self.days = days
        self.out: list[SimRecord] = []

    def emit(self, topic: str, ts: float, body: dict[str, Any], *, segment: bool = False) -> None:
        c = self.c
        rng = self.rng
        ts_ms = round(ts * 1000)
        # Both contract forms of ts, and segment only sometimes (it is optional off lifecycle).
        value: dict[str, Any] = {
            "event_id": c.next_event_id(),
            "user_id": c.user_id,
            "ts": rfc3339(ts_ms) if rng.random() < 0.5 else ts_ms / 1000,
        }
        if segment or rng.random() < 0.7:
            value["segment"] = c.segment
        value.update(body)
        self.out.append(SimRecord(topic, c.user_id, value, None, ts_ms / 1000))

    def login(self, ts: float, fail_p: float) -> float:
        """A login, retried after a failure; returns the time the user is in."""
        rng = self.rng
        channel = rng.choice(CHANNELS)
        while rng.random() < fail_p:
            self.emit(LOGINS, ts, {"success": False, "channel": channel})
            ts += rng.uniform(10.0, 120.0)
            fail_p *= 0.6
        self.emit(LOGINS, ts, {"success": True, "channel": channel})
        return ts + rng.uniform(2.0, 20.0)


def customer_day(c: Customer, day: int, start: float, days: int) -> list[SimRecord]:
    """All records of customer `c` on its local day `day`, unordered."""
    w = DayWriter(c, day, start, days)
    stress = min(1.0, max(0.0, c.stress[day] + w.rng.gauss(0.0, 0.05)))
    weekend = WEEKEND_FACTOR if day % 7 >= 5 else 1.0
    day0 = start + day * 86_400.0 - c.tz_hours * 3600.0
    if c.segment == "course":
        _course_day(w, day0, stress, weekend)
    elif c.segment == "saas":
        _saas_day(w, day, day0, stress, weekend)
    else:
        _docs_day(w, day0, stress, weekend)
    if c.churn_kind == "silent" and day in (c.churn_day, c.return_day):
        local_s = c.churn_local_s if day == c.churn_day else c.return_local_s
        _visit(w, c.utc(start, day, local_s, days), stress)
    _lifecycle_day(w, day)
    return _clip_to_subscription(c, day, start, days, w.out)


def _session_starts(rng: random.Random, day0: float, n: int) -> list[float]:
    return sorted(day0 + waking_second(rng) for _ in range(n))


def _course_day(w: DayWriter, day0: float, stress: float, weekend: float) -> None:
    c, rng = w.c, w.rng
    sessions = poisson(rng, 1.2 * c.activity * weekend * (1.0 - 0.75 * stress))
    abandon_p = 0.06 + 0.45 * stress
    for t in _session_starts(rng, day0, sessions):
        t = w.login(t, c.base_error + 0.3 * stress)
        for _ in range(1 + poisson(rng, 3.0 * (1.0 - 0.4 * stress))):
            view = _video_view(c, rng, stress, abandon_p)
            t += view["watched_s"]
            w.emit(VIDEO_VIEWS, t, view)
            t += rng.uniform(5.0, 90.0)


def _video_view(c: Customer, rng: random.Random, stress: float, abandon_p: float) -> dict[str, Any]:
    """Body of one video view; the event time is the end of the watching."""
    duration = float(rng.randrange(240, 1800, 30))
    if rng.random() < abandon_p:
        frac = rng.uniform(0.02, 0.3)
    else:
        frac = min(1.0, max(0.3, rng.gauss(0.92 - 0.3 * stress, 0.1)))
    watched = round(duration * frac, 1)
    return {
        "video_id": f"v{rng.randrange(400):03d}",
        "course_id": f"course-{int(c.user_id[-5:]) % 12:02d}",
        "watched_s": watched,
        "duration_s": duration,
        "seeks": poisson(rng, 0.7 + 4.0 * stress),
        "rewinds": poisson(rng, 0.4 + 2.5 * stress),
        "pauses": poisson(rng, 1.0 + stress),
        "completed": watched >= 0.9 * duration,
    }


def _saas_day(w: DayWriter, day: int, day0: float, stress: float, weekend: float) -> None:
    c, rng = w.c, w.rng
    for t in _session_starts(rng, day0, poisson(rng, 1.6 * c.activity * weekend * (1 - stress))):
        w.login(t, c.base_error + 0.3 * stress)
    error_p = c.base_error + 0.5 * stress
    for integration in c.integrations:
        # Scheduled syncs run around the clock, weekends included.
        for _ in range(poisson(rng, 3.0)):
            ok = rng.random() >= error_p
            body: dict[str, Any] = {
                "integration": integration,
                "status": "ok" if ok else "error",
                "records": int(rng.expovariate(1 / 400)) if ok else 0,
                "latency_ms": round(rng.lognormvariate(6.0, 0.5) * (1.0 + 2.0 * stress), 1),
            }
            if not ok:
                body["error_code"] = rng.choice(SYNC_ERRORS)
            w.emit(SYNCS, day0 + rng.uniform(0.0, 86_400.0), body)
    value = c.value_per_day * (1.0 - 0.85 * stress) * weekend * rng.lognormvariate(0.0, 0.3)
    if c.roi_drop_day is not None and day >= c.roi_drop_day:
        value *= c.roi_drop_factor
    parts = 1 + poisson(rng, 1.5)
    for _ in range(parts):
        w.emit(
            VALUE,
            day0 + waking_second(rng),
            {"value": round(value / parts, 2), "kind": rng.choice(("leads", "revenue"))},
        )


def _docs_day(w: DayWriter, day0: float, stress: float, weekend: float) -> None:
    c, rng = w.c, w.rng
    mult = c.activity * weekend * (1.0 - 0.7 * stress)
    for t in _session_starts(rng, day0, poisson(rng, 1.0 * mult)):
        w.login(t, c.base_error + 0.3 * stress)
    fail_p = c.base_error + 0.4 * stress
    ok_docs = 0
    for _ in range(poisson(rng, 5.0 * mult)):
        body = _document_job(rng, stress, fail_p)
        if body["status"] == "ok":
            ok_docs += body["documents"]
        w.emit(DOC_JOBS, day0 + waking_second(rng), body)
    if ok_docs:
        # Value tracks successful throughput; a typical user processes ~45 documents a day.
        value = c.value_per_day * ok_docs / 45.0 * rng.lognormvariate(0.0, 0.2)
        w.emit(VALUE, day0 + 86_000.0, {"value": round(value, 2), "kind": "hours_saved"})


def _document_job(rng: random.Random, stress: float, fail_p: float) -> dict[str, Any]:
    documents = 1 + int(rng.expovariate(1 / 8))
    ok = rng.random() >= fail_p
    body: dict[str, Any] = {
        "job_id": f"j{rng.getrandbits(40):010x}",
        "status": "ok" if ok else "failed",
        "documents": documents,
        "processing_ms": round(documents * rng.lognormvariate(6.5, 0.4) * (1.0 + 2.5 * stress), 1),
    }
    if not ok:
        body["error"] = rng.choice(JOB_ERRORS)
    return body


def _visit(w: DayWriter, ts: float, stress: float) -> None:
    """One record of the segment's own kind exactly at `ts`: a silent dropout's last activity
    or a returner's first (a video left early, a login, a document job)."""
    c, rng = w.c, w.rng
    if c.segment == "course":
        w.emit(VIDEO_VIEWS, ts, _video_view(c, rng, stress, abandon_p=1.0))
    elif c.segment == "saas":
        w.emit(LOGINS, ts, {"success": True, "channel": rng.choice(CHANNELS)})
    else:
        w.emit(DOC_JOBS, ts, _document_job(rng, stress, c.base_error + 0.4 * stress))


def _lifecycle_day(w: DayWriter, day: int) -> None:
    c = w.c
    start = w.start

    def life(event: str, local_s: float, price: float | None) -> None:
        body: dict[str, Any] = {"event": event}
        if price is not None:
            body["plan_price"] = price
            body["currency"] = "USD"
        w.emit(LIFECYCLE, c.utc(start, day, local_s, w.days), body, segment=True)

    if day == c.signup_day:
        life("signup", c.signup_local_s, c.plan_price)
    cancelled = c.churn_kind == "cancel"
    # A reactivation starts a new billing cycle; a silent returner never left its old one.
    anchor = c.signup_day
    if cancelled and c.return_day is not None and day >= c.return_day:
        anchor = c.return_day
    if day > anchor and (day - anchor) % 30 == 0:
        life("renewal", c.signup_local_s, c.price_on(day))
    if day == c.plan_change_day:
        life("plan_change", waking_second(w.rng), c.new_plan_price)
    if cancelled and day == c.churn_day:
        life("cancel", c.churn_local_s, None)
    if cancelled and day == c.return_day:
        life("reactivate", c.return_local_s, c.price_on(day))


def _clip_to_subscription(
    c: Customer, day: int, start: float, days: int, out: list[SimRecord]
) -> list[SimRecord]:
    """Drop records outside the period and the user's presence (before signup or a return,
    after the churn moment)."""
    lo = start
    hi = start + days * 86_400.0
    if day == c.signup_day:
        lo = c.utc(start, day, c.signup_local_s, days)
    if day == c.return_day:
        lo = c.utc(start, day, c.return_local_s, days)
    if day == c.churn_day:
        hi = c.utc(start, day, c.churn_local_s, days)
    if day not in (0, days - 1, c.signup_day, c.return_day, c.churn_day):
        return out
    return [r for r in out if lo <= r.ts <= hi and r.ts < start + days * 86_400.0]
