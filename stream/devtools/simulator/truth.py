"""Ground truth of a simulated history: what really happened and an honest oracle of the risk.

Churn (`UserTruth.churn_kind`, `churn_ts`) is a lifecycle cancel or a silent dropout: the user
stops without cancelling and emits no event at all afterwards; its `churn_ts` is the time of its
last activity. `churned_within` judges a prediction made at t against that, per label mode.

`oracle[d]` is the probability that the user churns, per its segment's default label mode
(course: either kind; SaaS and docs: cancels only), on one of the days d .. d+H-1 of the user's
local calendar (H the segment horizon), i.e. within (t_d, t_d + H] for t_d the local start of day
d, given only what the hidden process knows at the start of day d: days since signup, the age
and ramp of a decline in progress (a decline starting on day d counts), and whether the user
came back after a churn (returners stay). The future is integrated out through the process's
own dynamics (`customers.step_day`), exactly:

- in a decline of age a with ramp R, stress follows deterministically and the survival over
  the window is prod_i (1 - p(min(1, (a + i + 1) / R))) for i < H;
- a healthy user survives each day with 1 - base, and from the next day on may start a decline
  (probability `onset`, ramp uniform over 7..21) before that day's churn draw, which gives the
  recursion W(n) = (1 - onset)(1 - base) W(n - 1) + onset * mean_R D(0, R, n), W(0) = 1;
- the first GRACE_DAYS after signup can neither churn nor start a decline;
- the kind of churn is drawn independently of the state, so the cancel-only probability is the
  churn probability times (1 - the segment's silent share).

It never looks at the realised future (later declines, the sampled churn day), so it is the
best any detector of the hidden state could do; null on days the user is not at risk (before
signup, after a churn until the day it came back). Scored against `churned_within`, it gives the
"oracle AUC": a ceiling for a model that only sees the events, assuming it could read the state.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import orjson

from churnstream.stream.devtools.simulator.config import (
    DEFAULT_LABEL_MODE,
    HORIZON_DAYS,
    LABEL_MODES,
    SimConfig,
)
from churnstream.stream.devtools.simulator.customers import (
    DAY,
    GRACE_DAYS,
    RAMP_DAYS,
    ChurnParams,
    Customer,
    churn_probability,
    decline_stress,
)


@dataclass(slots=True)
class UserTruth:
    """What happened to one user; times in epoch seconds (UTC)."""

    segment: str
    utc_offset_h: float
    """The user's time zone; day d of `oracle` starts at start + d * 86400 - utc_offset_h * 3600."""
    signup_ts: float
    churn_kind: str | None
    """"cancel" (a lifecycle cancel), "silent" (stopped without one) or None (stayed)."""
    churn_ts: float | None
    """The cancel, or a silent dropout's last activity; nothing but a return follows it."""
    last_active_ts: float | None
    """Last behaviour record before the churn (or the end of the period); None if none."""
    decline_start_ts: float | None
    """Local start of the first day of a decline, if one began before the churn (or the end)."""
    cancel_ts: float | None
    """`churn_ts` of a cancel, None otherwise."""
    reactivate_ts: float | None
    """When a churner came back: its reactivate event, or a dropout's first activity again."""
    warning_start_ts: float | None
    """`decline_start_ts` of a cancel that followed a decline, None otherwise."""
    roi_drop_ts: float | None
    silent: bool
    """Churned (either kind) with no decline first; named before silent dropouts existed: a
    churner without warning, not `churn_kind == "silent"`."""
    oracle: list[float | None]
    """Per local day of the period: the honest churn probability within the horizon."""

    @property
    def hazard(self) -> list[float | None]:
        """The oracle under its former name, for readers not migrated yet."""
        return self.oracle

    def day_start(self, start: float, day: int) -> float:
        """Epoch seconds of the start of the user's local day `day` (what `oracle` counts)."""
        return start + day * DAY - self.utc_offset_h * 3600.0


@dataclass(slots=True)
class GroundTruth:
    """Per-user truth plus the configuration it came from."""

    start: float
    days: int
    horizon_days: dict[str, int]
    label_modes: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_LABEL_MODE))
    """Per segment, the label mode the oracle is computed for."""
    users: dict[str, UserTruth] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2)

    @classmethod
    def from_json(cls, data: bytes) -> GroundTruth:
        raw = orjson.loads(data)
        users = {uid: UserTruth(**u) for uid, u in raw.pop("users").items()}
        return cls(users=users, **raw)

    def write(self, path: str | Path) -> None:
        Path(path).write_bytes(self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> GroundTruth:
        return cls.from_json(Path(path).read_bytes())

    def churn_rate(self) -> float:
        """Fraction of users that churned (cancelled or dropped out) within the period."""
        if not self.users:
            return 0.0
        return sum(u.churn_kind is not None for u in self.users.values()) / len(self.users)


def churned_within(user: UserTruth, t: float, horizon_s: float, mode: str) -> bool:
    """Whether `user` churned within (t, t + horizon_s], by label mode:

    - "cancel": a lifecycle cancel at `churn_ts` in the window;
    - "inactivity": the user went quiet for good in the window: a silent dropout's last activity
      or a cancel (nothing follows a cancel either) at `churn_ts`;
    - "either": a cancel or inactivity; in the simulator every churner stops all activity at
      `churn_ts`, so it names the same truth as "inactivity". The modes differ in the product,
      which sees inactivity only H quiet days later and can mistake a quiet week for churn;
    - "quiet": the product's quiet-spell label, which aims at this same truth as "either".
    """
    if mode not in LABEL_MODES:
        raise ValueError(f"label mode {mode!r} is not one of {LABEL_MODES}")
    if user.churn_ts is None or not t < user.churn_ts <= t + horizon_s:
        return False
    return mode != "cancel" or user.churn_kind == "cancel"


def truth_path(out: str | Path) -> Path:
    """Side file of the truth for a JSONL output: `sim.jsonl` -> `sim.truth.json`."""
    return Path(out).with_suffix(".truth.json")


def oracle_series(c: Customer, params: ChurnParams, days: int) -> list[float | None]:
    """`oracle[d]` for every day of the period, each from the hidden state at the start of d."""
    horizon = HORIZON_DAYS[c.segment]
    counted = 1.0
    if DEFAULT_LABEL_MODE[c.segment] == "cancel":
        counted = 1.0 - params.silent_share[c.segment]
    out: list[float | None] = []
    for d in range(days):
        # Whether the user churned before d, and whether it is back by d, is known at d.
        churned = c.churn_day is not None and d > c.churn_day
        if d < c.signup_day or (churned and (c.return_day is None or d <= c.return_day)):
            out.append(None)
            continue
        if churned:
            out.append(0.0)  # returners stay for good
            continue
        if c.decline_day is not None and c.decline_day <= d:
            survive = _decline_survival(d - c.decline_day, c.ramp, horizon, params.base)
        else:
            grace = max(0, c.signup_day + GRACE_DAYS - d)
            survive = _healthy_survival(grace, horizon, params.base, params.onset)
        out.append(round((1.0 - survive) * counted, 6))
    return out


@lru_cache(maxsize=4096)
def _decline_survival(age: int, ramp: int, n: int, base: float) -> float:
    """P(no churn on n days) from a decline `age` days old (its day-`age` draw still to come)."""
    survive = 1.0
    for i in range(n):
        survive *= 1.0 - churn_probability(decline_stress(age + i, ramp), base)
    return survive


@lru_cache(maxsize=256)
def _healthy_survival(grace: int, n: int, base: float, onset: float) -> float:
    """P(no churn on n days) for a healthy user, `grace` of them before churn is possible.

    With grace 0 the first day's onset draw was made (no decline), its churn draw was not.
    """
    if grace:
        return _fresh_survival(max(0, n - grace), base, onset)
    return (1.0 - base) * _fresh_survival(n - 1, base, onset) if n else 1.0


@lru_cache(maxsize=256)
def _fresh_survival(n: int, base: float, onset: float) -> float:
    """W(n): survival over n days of a healthy user whose first day's onset draw is to come."""
    if n <= 0:
        return 1.0
    ramps = range(RAMP_DAYS[0], RAMP_DAYS[1] + 1)
    declining = sum(_decline_survival(0, r, n, base) for r in ramps) / len(ramps)
    stays = (1.0 - onset) * (1.0 - base) * _fresh_survival(n - 1, base, onset)
    return stays + onset * declining


def build_truth(
    config: SimConfig,
    customers: list[Customer],
    params: ChurnParams,
    last_active: dict[str, float],
) -> GroundTruth:
    """Ground truth of planned customers, given each one's last activity before its churn."""
    start, days = config.start, config.days
    truth = GroundTruth(start=start, days=days, horizon_days=dict(HORIZON_DAYS))
    for c in customers:

        def at(day: int | None, local_s: float, c: Customer = c) -> float | None:
            return None if day is None else c.utc(start, day, local_s, days)

        churn_ts = at(c.churn_day, c.churn_local_s)
        # The plan stops at the churn, so a decline on record always began before it.
        decline_ts = at(c.decline_day, 0.0)
        truth.users[c.user_id] = UserTruth(
            segment=c.segment,
            utc_offset_h=c.tz_hours,
            signup_ts=c.utc(start, c.signup_day, c.signup_local_s, days),
            churn_kind=c.churn_kind,
            churn_ts=churn_ts,
            last_active_ts=last_active.get(c.user_id),
            decline_start_ts=decline_ts,
            cancel_ts=churn_ts if c.churn_kind == "cancel" else None,
            reactivate_ts=at(c.return_day, c.return_local_s),
            warning_start_ts=decline_ts if c.churn_kind == "cancel" else None,
            roi_drop_ts=None if c.roi_drop_day is None else start + c.roi_drop_day * DAY,
            silent=c.churn_kind is not None and decline_ts is None,
            oracle=oracle_series(c, params, days),
        )
    return truth
