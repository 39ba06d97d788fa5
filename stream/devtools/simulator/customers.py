"""Who the customers are: static traits and the hidden lifecycle plan of each one.

Everything that decides churn is planned here, before any behaviour is generated, by a small
Markov process walked one day at a time from signup (`step_day`):

- a healthy user starts a *decline* on any day with probability `ChurnParams.onset`; its stress
  then ramps linearly to 1 over `ramp` days (7-21) and stays there;
- on every day the user churns with probability `churn_probability(decline stress, base)`: a
  small base (abrupt churn, no warning) plus a steep rise above `STRESS_KNEE`;
- a churner either cancels (a lifecycle `cancel` event) or drops out silently (no event at all
  from then on), with a per-segment silent share; some come back later and then stay;
- harmless bad weeks bump the stress (for behaviour only) but peak below the knee, so they never
  change the churn probability.

The hidden state on day d is therefore (days since signup, the decline's age and ramp, whether
the user came back), which is all `truth.oracle_series` may use.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from churnstream.stream.devtools.simulator.config import DEFAULT_START, SimConfig

DAY = 86_400.0
# Share of each business among users, renormalised over the configured segments.
SEGMENT_WEIGHTS = {"course": 0.4, "saas": 0.3, "docs": 0.3}
# Plan price range per 30 days by segment.
PRICE_RANGE = {"course": (30.0, 80.0), "saas": (200.0, 2000.0), "docs": (100.0, 800.0)}
# UTC offsets in hours; local waking hours map into [d - 14 h, d + 36 h] of UTC day d.
TIME_ZONES = (-8.0, -6.0, -5.0, -3.0, 0.0, 1.0, 2.0, 3.0, 5.5, 8.0, 9.0)
INTEGRATIONS = ("hubspot", "salesforce", "google_ads", "meta_ads", "mailchimp", "shopify")
# Share of the period's churn that comes abruptly from the base rate, with no decline first.
ABRUPT_SHARE = 0.2
# Shares of cancelled / silently dropped-out users that come back 5-30 days later.
REACTIVATE_PROB = 0.12
COMEBACK_PROB = 0.08
# Stress at which the churn probability starts to rise, and its daily maximum at stress 1.
STRESS_KNEE = 0.7
MAX_DAILY_CHURN = 0.45
# A decline reaches full stress after this many days (uniform, inclusive).
RAMP_DAYS = (7, 21)
# Nobody declines or churns in the first days after signup (they have barely started).
GRACE_DAYS = 2
# A decline takes two to three weeks from onset to churn; declines must start that much earlier
# than the end of the period to turn into churn inside it.
DECLINE_LAG_DAYS = 18


@dataclass(frozen=True, slots=True)
class ChurnParams:
    """Constants of the hidden churn process: what the oracle knows besides a user's state."""

    base: float
    """Daily churn probability of a healthy user (abrupt churn)."""
    onset: float
    """Daily probability that a healthy user starts a decline."""
    silent_share: dict[str, float]
    """Per segment, the share of churners that drop out silently instead of cancelling."""


def churn_params(config: SimConfig) -> ChurnParams:
    """The process constants that make about `config.churn_rate` of users churn in the period."""
    days = config.days
    base = -math.log(1.0 - min(config.churn_rate * ABRUPT_SHARE, 0.99)) / days
    # Mean exposure of a user (60 % from day 0, the rest from a uniform day) minus the lag.
    exposure = max(0.8 * days - DECLINE_LAG_DAYS, days / 4)
    declining = min(config.churn_rate * (1.0 - ABRUPT_SHARE), 0.99)
    onset = -math.log(1.0 - declining) / exposure
    silent = {s: config.silent_share for s in config.segments}
    if "course" in silent:
        silent["course"] = config.course_silent_share
    return ChurnParams(base=base, onset=min(onset, 0.5), silent_share=silent)


@dataclass(slots=True)
class Customer:
    """One simulated customer: traits, planned lifecycle and a private random stream."""

    user_id: str
    segment: str
    rng_key: str
    """Seed prefix of the customer's random streams (planning, then one per day)."""
    rng: random.Random
    """The planning stream."""
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
    """Hidden stress per day of the period (decline and bad weeks), driving behaviour."""
    decline_day: int | None = None
    """First day of the user's decline (at most one before churning)."""
    ramp: int = 0
    """Days the decline takes to reach full stress."""
    churn_day: int | None = None
    churn_kind: str | None = None
    """"cancel" or "silent" (stops without a cancel), None while the user stays."""
    churn_local_s: float = 0.0
    """Local second of the cancel, or of a silent dropout's final activity."""
    return_day: int | None = None
    """Day a churner comes back (reactivates after a cancel, resumes after a dropout)."""
    return_local_s: float = 0.0
    roi_drop_day: int | None = None
    roi_drop_factor: float = 1.0
    plan_change_day: int | None = None
    new_plan_price: float = 0.0
    value_per_day: float = 0.0
    integrations: tuple[str, ...] = ()
    treatment: tuple[int, float] | None = None
    """(day, factor): the churn probability is multiplied by factor from that day on."""
    seq: int = field(default=0)

    @property
    def cancel_day(self) -> int | None:
        """Day of the lifecycle cancel event (None for a silent dropout)."""
        return self.churn_day if self.churn_kind == "cancel" else None

    def next_event_id(self) -> str:
        self.seq += 1
        return f"{self.user_id}-{self.seq:x}"

    def utc(self, start: float, day: int, local_s: float, days: int) -> float:
        """Epoch seconds of a local time of day `day`, kept inside the period (ms resolution)."""
        ts = start + day * DAY + local_s - self.tz_hours * 3600.0
        return round(min(max(ts, start), start + days * DAY - 0.001), 3)

    def is_active(self, day: int) -> bool:
        """Present at some moment of `day` (signup, churn and return days included)."""
        if day < self.signup_day:
            return False
        if self.churn_day is None or day <= self.churn_day:
            return True
        return self.return_day is not None and day >= self.return_day

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


def churn_probability(stress: float, base: float) -> float:
    """Daily churn probability: the abrupt base plus a steep rise above the stress knee."""
    if stress <= STRESS_KNEE:
        return base
    x = (stress - STRESS_KNEE) / (1.0 - STRESS_KNEE)
    return base + MAX_DAILY_CHURN * x * x


def decline_stress(age: int, ramp: int) -> float:
    """Stress on the day a decline is `age` days old (0 on its first day)."""
    return min(1.0, (age + 1) / ramp)


def plan_customers(config: SimConfig) -> list[Customer]:
    """Plan every customer of `config` (deterministic in `config.seed`)."""
    weights = [SEGMENT_WEIGHTS[s] for s in config.segments]
    seg_rng = random.Random(f"{config.seed}/segments")
    segments = seg_rng.choices(config.segments, weights=weights, k=config.users)
    params = churn_params(config)
    treated = {user: (day, factor) for user, day, factor in config.treatments}
    return [_plan_one(config, i, segments[i], params, treated) for i in range(config.users)]


def new_customer(index: int, segment: str, rng_key: str, days: int) -> Customer:
    """A customer's static traits (no lifecycle yet): the first draws of its planning stream."""
    rng = random.Random(rng_key)
    # Staggered signups: most exist at the start, the rest trickle in.
    signup_day = 0 if rng.random() < 0.6 else rng.randrange(days)
    lo, hi = PRICE_RANGE[segment]
    return Customer(
        user_id=f"{segment}-{index:05d}",
        segment=segment,
        rng_key=rng_key,
        rng=rng,
        tz_hours=rng.choice(TIME_ZONES),
        activity=rng.lognormvariate(0.0, 0.55),
        base_error=rng.uniform(0.005, 0.06),
        plan_price=round(math.exp(rng.uniform(math.log(lo), math.log(hi))), 2),
        signup_day=signup_day,
        signup_local_s=waking_second(rng),
        stress=[0.0] * days,
    )


def _plan_one(
    config: SimConfig,
    index: int,
    segment: str,
    params: ChurnParams,
    treated: dict[str, tuple[int, float]] | None = None,
) -> Customer:
    days = config.days
    c = new_customer(index, segment, f"{config.seed}/user/{index}", days)
    # A run that continues another one (a later --start, same user ids) numbers its events
    # apart, so its event ids are not taken for repeats of the earlier run's.
    c.seq = round((config.start - DEFAULT_START) / DAY) << 32 if config.start > DEFAULT_START else 0
    c.treatment = (treated or {}).get(c.user_id)
    rng = c.rng
    price, signup_day = c.plan_price, c.signup_day
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

    _plan_bad_weeks(c, rng, days)
    for d in range(signup_day, days):
        if step_day(c, d, rng, params):
            settle_churn(c, rng, days, params)
            break
    return c


def _plan_bad_weeks(c: Customer, rng: random.Random, days: int) -> None:
    """Harmless bad weeks: a bump of stress peaking below the knee (behaviour only)."""
    for _ in range(rng.choice((0, 0, 0, 1, 1, 2))):
        first = rng.randrange(c.signup_day, days)
        length = rng.randint(5, 12)
        peak = rng.uniform(0.3, STRESS_KNEE)
        for k in range(length):
            d = first + k
            if d < days:
                c.stress[d] = max(c.stress[d], peak * (1.0 - abs(2.0 * k / (length - 1) - 1.0)))


def step_day(c: Customer, day: int, rng: random.Random, params: ChurnParams) -> bool:
    """Advance the hidden state into `day` (maybe starting a decline), then draw whether the
    user churns that day; True when it does (`c.churn_day` is set)."""
    if day < c.signup_day + GRACE_DAYS:
        return False
    if c.decline_day is None and rng.random() < params.onset:
        c.decline_day = day
        c.ramp = rng.randint(*RAMP_DAYS)
    stress = 0.0 if c.decline_day is None else decline_stress(day - c.decline_day, c.ramp)
    c.stress[day] = max(c.stress[day], stress)
    p = churn_probability(stress, params.base)
    if c.treatment is not None and day >= c.treatment[0]:
        p *= c.treatment[1]  # an intervention that works (SimConfig.treatments)
    if rng.random() < p:
        c.churn_day = day
        return True
    return False


def settle_churn(c: Customer, rng: random.Random, days: int, params: ChurnParams) -> None:
    """How the churn on `c.churn_day` happens: cancel or silent, when, and whether they return."""
    cd = c.churn_day
    assert cd is not None
    silent = rng.random() < params.silent_share[c.segment]
    c.churn_kind = "silent" if silent else "cancel"
    c.churn_local_s = waking_second(rng)
    # The decline stress was written only up to the churn day: returners are healthy again.
    if rng.random() < (COMEBACK_PROB if silent else REACTIVATE_PROB) and cd + 5 < days:
        c.return_day = rng.randint(cd + 5, min(cd + 30, days - 1))
        c.return_local_s = waking_second(rng)
