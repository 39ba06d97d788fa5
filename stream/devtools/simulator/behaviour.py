"""What customers do on one day: contract events driven by their traits and hidden stress.

Stress (0 healthy .. 1 about to leave) lowers activity and raises friction in each business:
less and shallower viewing with more seeks, rewinds and abandoned videos (course); failing
integration syncs and falling value (SaaS); failing and slower document jobs (docs); failed
logins everywhere.
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

    def __init__(self, c: Customer, start: float, days: int) -> None:
        self.c = c
        self.rng = c.rng
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
    w = DayWriter(c, start, days)
    rng = c.rng
    stress = min(1.0, max(0.0, c.stress[day] + rng.gauss(0.0, 0.05)))
    weekend = WEEKEND_FACTOR if day % 7 >= 5 else 1.0
    day0 = start + day * 86_400.0 - c.tz_hours * 3600.0
    if c.segment == "course":
        _course_day(w, day0, stress, weekend)
    elif c.segment == "saas":
        _saas_day(w, day, day0, stress, weekend)
    else:
        _docs_day(w, day0, stress, weekend)
    _lifecycle_day(w, day)
    return _clip_to_subscription(c, day, start, days, w.out)


def _session_starts(rng: random.Random, day0: float, n: int) -> list[float]:
    return sorted(day0 + waking_second(rng) for _ in range(n))


def _course_day(w: DayWriter, day0: float, stress: float, weekend: float) -> None:
    c, rng = w.c, w.rng
    sessions = poisson(rng, 1.2 * c.activity * weekend * (1.0 - 0.75 * stress))
    course_id = f"course-{int(c.user_id[-5:]) % 12:02d}"
    abandon_p = 0.06 + 0.45 * stress
    for t in _session_starts(rng, day0, sessions):
        t = w.login(t, c.base_error + 0.3 * stress)
        for _ in range(1 + poisson(rng, 3.0 * (1.0 - 0.4 * stress))):
            duration = float(rng.randrange(240, 1800, 30))
            if rng.random() < abandon_p:
                frac = rng.uniform(0.02, 0.3)
            else:
                frac = min(1.0, max(0.3, rng.gauss(0.92 - 0.3 * stress, 0.1)))
            watched = round(duration * frac, 1)
            w.emit(
                VIDEO_VIEWS,
                t + watched,
                {
                    "video_id": f"v{rng.randrange(400):03d}",
                    "course_id": course_id,
                    "watched_s": watched,
                    "duration_s": duration,
                    "seeks": poisson(rng, 0.7 + 4.0 * stress),
                    "rewinds": poisson(rng, 0.4 + 2.5 * stress),
                    "pauses": poisson(rng, 1.0 + stress),
                    "completed": watched >= 0.9 * duration,
                },
            )
            t += watched + rng.uniform(5.0, 90.0)


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
        documents = 1 + int(rng.expovariate(1 / 8))
        ok = rng.random() >= fail_p
        body: dict[str, Any] = {
            "job_id": f"j{rng.getrandbits(40):010x}",
            "status": "ok" if ok else "failed",
            "documents": documents,
            "processing_ms": round(
                documents * rng.lognormvariate(6.5, 0.4) * (1.0 + 2.5 * stress), 1
            ),
        }
        if ok:
            ok_docs += documents
        else:
            body["error"] = rng.choice(JOB_ERRORS)
        w.emit(DOC_JOBS, day0 + waking_second(rng), body)
    if ok_docs:
        # Value tracks successful throughput; a typical user processes ~45 documents a day.
        value = c.value_per_day * ok_docs / 45.0 * rng.lognormvariate(0.0, 0.2)
        w.emit(VALUE, day0 + 86_000.0, {"value": round(value, 2), "kind": "hours_saved"})


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
    anchor = c.signup_day
    if c.reactivate_day is not None and day >= c.reactivate_day:
        anchor = c.reactivate_day
    if day > anchor and (day - anchor) % 30 == 0:
        life("renewal", c.signup_local_s, c.price_on(day))
    if day == c.plan_change_day:
        life("plan_change", waking_second(w.rng), c.new_plan_price)
    if day == c.cancel_day:
        life("cancel", c.cancel_local_s, None)
    if day == c.reactivate_day:
        life("reactivate", c.reactivate_local_s, c.price_on(day))


def _clip_to_subscription(
    c: Customer, day: int, start: float, days: int, out: list[SimRecord]
) -> list[SimRecord]:
    """Drop behaviour outside the period and the subscription (before signup or reactivation,
    after cancel)."""
    lo = start
    hi = start + days * 86_400.0
    if day == c.signup_day:
        lo = c.utc(start, day, c.signup_local_s, days)
    if day == c.reactivate_day:
        lo = c.utc(start, day, c.reactivate_local_s, days)
    if day == c.cancel_day:
        hi = c.utc(start, day, c.cancel_local_s, days)
    if day not in (0, days - 1, c.signup_day, c.reactivate_day, c.cancel_day):
        return out
    return [r for r in out if lo <= r.ts <= hi and r.ts < start + days * 86_400.0]
