"""Who the customers are: static traits and the hidden lifecycle plan of each one.

Everything that decides churn is planned here, before any behaviour is generated: a latent
daily *stress* path (decline episodes that lead towards a cancel, and harmless bad weeks),
the generator's daily cancel probability derived from it, and the sampled cancel itself.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from churnstream.stream.devtools.simulator.config import HORIZON_DAYS, SimConfig

DAY = 86_400.0
# Share of each business among users, renormalised over the configured segments.
SEGMENT_WEIGHTS = {"course": 0.4, "saas": 0.3, "docs": 0.3}
# Plan price range per 30 days by segment.
PRICE_RANGE = {"course": (30.0, 80.0), "saas": (200.0, 2000.0), "docs": (100.0, 800.0)}
# UTC offsets in hours; local waking hours map into [d - 14 h, d + 36 h] of UTC day d.
TIME_ZONES = (-8.0, -6.0, -5.0, -3.0, 0.0, 1.0, 2.0, 3.0, 5.5, 8.0, 9.0)
INTEGRATIONS = ("hubspot", "salesforce", "google_ads", "meta_ads", "mailchimp", "shopify")
# Share of a period's cancels that come with no behavioural warning at all.
SILENT_SHARE = 0.2
REACTIVATE_PROB = 0.12
# Stress at which the cancel probability starts to rise, and its daily maximum at stress 1.
STRESS_KNEE = 0.7
MAX_DAILY_CANCEL = 0.45
# Headroom beyond the period so hazards near the end look ahead a full horizon.
LOOKAHEAD_DAYS = max(HORIZON_DAYS.values())


@dataclass(slots=True)
class Customer:
    """One simulated customer: traits, planned lifecycle and a private random stream."""

    user_id: str
    segment: str
    rng: random.Random
    tz_hours: float
    activity: float
    """Multiplier of the segment's base activity (heterogeneous users)."""
    base_error: float
    """Baseline failure rate of this user's syncs / jobs / logins."""
    plan_price: float
    signup_day: int
    signup_local_s: float
    """Local second of day of signup; renewals happen at the same local time."""
    stress: list[float]
    cancel_prob: list[float]
    """Generator's probability that the user cancels on day d (given not cancelled before)."""
    cancel_day: int | None = None
    cancel_local_s: float = 0.0
    reactivate_day: int | None = None
    reactivate_local_s: float = 0.0
    warning_day: int | None = None
    """First day of the stress episode during which the user cancelled."""
    silent: bool = False
    roi_drop_day: int | None = None
    roi_drop_factor: float = 1.0
    plan_change_day: int | None = None
    new_plan_price: float = 0.0
    value_per_day: float = 0.0
    integrations: tuple[str, ...] = ()
    seq: int = field(default=0)

    def next_event_id(self) -> str:
        self.seq += 1
        return f"{self.user_id}-{self.seq:x}"

    def utc(self, start: float, day: int, local_s: float, days: int) -> float:
        """Epoch seconds of a local time of day `day`, kept inside the period (ms resolution)."""
        ts = start + day * DAY + local_s - self.tz_hours * 3600.0
        return round(min(max(ts, start), start + days * DAY - 0.001), 3)

    def is_active(self, day: int) -> bool:
        """Subscribed at some moment of `day` (signup, cancel and reactivate days included)."""
        if day < self.signup_day:
            return False
        if self.cancel_day is None or day <= self.cancel_day:
            return True
        return self.reactivate_day is not None and day >= self.reactivate_day

    def price_on(self, day: int) -> float:
        if self.plan_change_day is not None and day >= self.plan_change_day:
            return self.new_plan_price
        return self.plan_price


def waking_second(rng: random.Random) -> float:
    """A local second of day in waking hours, busiest mid-morning and evening."""
    hour = rng.choices(_HOURS, cum_weights=_HOUR_CUM)[0]
    return hour * 3600.0 + rng.random() * 3600.0


_HOURS = tuple(range(6, 24))
_HOUR_WEIGHTS = (1, 2, 4, 6, 6, 5, 4, 4, 4, 4, 4, 4, 5, 6, 6, 5, 3, 2)
_HOUR_CUM = tuple(sum(_HOUR_WEIGHTS[: i + 1]) for i in range(len(_HOUR_WEIGHTS)))


def cancel_probability(stress: float, base: float) -> float:
    """Daily cancel probability: a small silent base plus a steep rise above the stress knee."""
    if stress <= STRESS_KNEE:
        return base
    x = (stress - STRESS_KNEE) / (1.0 - STRESS_KNEE)
    return base + MAX_DAILY_CANCEL * x * x


def plan_customers(config: SimConfig) -> list[Customer]:
    """Plan every customer of `config` (deterministic in `config.seed`)."""
    weights = [SEGMENT_WEIGHTS[s] for s in config.segments]
    seg_rng = random.Random(f"{config.seed}/segments")
    segments = seg_rng.choices(config.segments, weights=weights, k=config.users)
    # Declines are the visible road to cancel; the silent base covers the rest of churn_rate.
    decline_prob = min(1.0, config.churn_rate * (1.0 - SILENT_SHARE) * 1.2)
    silent_total = config.churn_rate * SILENT_SHARE
    base = -math.log(1.0 - min(silent_total, 0.99)) / config.days
    return [_plan_one(config, i, segments[i], decline_prob, base) for i in range(config.users)]


def _plan_one(
    config: SimConfig, index: int, segment: str, decline_prob: float, base: float
) -> Customer:
    rng = random.Random(f"{config.seed}/user/{index}")
    days = config.days
    # Staggered signups: most exist at the start, the rest trickle in.
    signup_day = 0 if rng.random() < 0.6 else rng.randrange(days)
    lo, hi = PRICE_RANGE[segment]
    price = round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 2)
    c = Customer(
        user_id=f"{segment}-{index:05d}",
        segment=segment,
        rng=rng,
        tz_hours=rng.choice(TIME_ZONES),
        activity=rng.lognormvariate(0.0, 0.55),
        base_error=rng.uniform(0.005, 0.06),
        plan_price=price,
        signup_day=signup_day,
        signup_local_s=waking_second(rng),
        stress=[0.0] * (days + LOOKAHEAD_DAYS),
        cancel_prob=[0.0] * (days + LOOKAHEAD_DAYS),
    )
    if segment == "saas":
        c.integrations = tuple(rng.sample(INTEGRATIONS, rng.randint(1, 4)))
        c.value_per_day = price / 30.0 * rng.lognormvariate(math.log(3.0), 0.5)
        if rng.random() < config.roi_drop_fraction and signup_day + 10 < days - 3:
            c.roi_drop_day = rng.randrange(signup_day + 10, days - 3)
            c.roi_drop_factor = rng.uniform(0.1, 0.4)
    elif segment == "docs":
        # Money saved per processed document, so that ROI sits around 2x for a typical user.
        c.value_per_day = price / 30.0 * rng.lognormvariate(math.log(2.0), 0.5)
    if rng.random() < 0.12 and signup_day + 10 < days:
        c.plan_change_day = rng.randrange(signup_day + 10, days)
        c.new_plan_price = round(price * rng.choice((0.5, 0.75, 1.5, 2.0)), 2)

    episodes = _plan_stress(c, rng, days, decline_prob)
    _sample_cancel(c, rng, days, base, episodes)
    return c


def _plan_stress(
    c: Customer, rng: random.Random, days: int, decline_prob: float
) -> list[tuple[int, int]]:
    """Fill `c.stress`; returns the episodes as (first day, last day) pairs."""
    episodes: list[tuple[int, int]] = []
    horizon = len(c.stress)
    # Harmless bad weeks: a bump of stress that peaks below or just above the knee.
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        first = rng.randrange(c.signup_day, horizon)
        length = rng.randint(5, 12)
        peak = rng.uniform(0.3, 0.8)
        for k in range(length):
            d = first + k
            if d < horizon:
                bump = peak * (1.0 - abs(2.0 * k / (length - 1) - 1.0))
                c.stress[d] = max(c.stress[d], bump)
        episodes.append((first, first + length - 1))
    # A decline: stress ramps to 1 over 1-3 weeks and stays there; cancel follows near the top.
    if rng.random() < decline_prob:
        ramp = rng.randint(7, 21)
        latest = days - ramp - 1
        earliest = c.signup_day + 2
        if latest < earliest:
            ramp = max(4, days - earliest - 1)
            latest = earliest
        first = rng.randint(earliest, max(earliest, latest))
        for d in range(first, horizon):
            c.stress[d] = max(c.stress[d], min(1.0, (d - first + 1) / ramp))
        episodes.append((first, horizon - 1))
    return episodes


def _sample_cancel(
    c: Customer, rng: random.Random, days: int, base: float, episodes: list[tuple[int, int]]
) -> None:
    for d in range(c.signup_day + 2, len(c.stress)):
        c.cancel_prob[d] = cancel_probability(c.stress[d], base)
    for d in range(c.signup_day + 2, days):
        if rng.random() < c.cancel_prob[d]:
            c.cancel_day = d
            break
    if c.cancel_day is None:
        return
    cd = c.cancel_day
    c.cancel_local_s = waking_second(rng)
    starts = [first for first, last in episodes if first <= cd <= last]
    c.warning_day = min(starts) if starts else None
    c.silent = c.stress[cd] <= STRESS_KNEE
    # After a reactivation the user is healthy again and (in this simulator) does not re-cancel.
    for d in range(cd + 1, len(c.stress)):
        c.stress[d] = 0.0
        c.cancel_prob[d] = 0.0
    if rng.random() < REACTIVATE_PROB and cd + 5 < days:
        c.reactivate_day = rng.randint(cd + 5, min(cd + 30, days - 1))
        c.reactivate_local_s = waking_second(rng)
