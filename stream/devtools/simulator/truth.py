"""Ground truth of a simulated history: what really happened and the generator's own risk.

`hazard[d]` is the probability, under the generator's hidden process, that the user cancels
within its segment horizon counted from the start of day d: 1 - prod(1 - p_k) over the daily
cancel probabilities p_k of days d .. d+H-1. It is null on days the user is not at risk (before
signup, after a cancel until a reactivation). Scoring it against the labels gives the "oracle
AUC", an upper bound for any model that sees only the events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson

from churnstream.stream.devtools.simulator.config import HORIZON_DAYS, SimConfig
from churnstream.stream.devtools.simulator.customers import DAY, Customer


@dataclass(slots=True)
class UserTruth:
    """What the generator planned for one user; times in epoch seconds."""

    segment: str
    signup_ts: float
    cancel_ts: float | None
    reactivate_ts: float | None
    warning_start_ts: float | None
    """Start of the stress episode that ended in the cancel (None: a silent cancel)."""
    roi_drop_ts: float | None
    silent: bool
    hazard: list[float | None]


@dataclass(slots=True)
class GroundTruth:
    """Per-user truth plus the configuration it came from."""

    start: float
    days: int
    horizon_days: dict[str, int]
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
        """Fraction of users that cancelled within the period."""
        if not self.users:
            return 0.0
        return sum(u.cancel_ts is not None for u in self.users.values()) / len(self.users)


def truth_path(out: str | Path) -> Path:
    """Side file of the truth for a JSONL output: `sim.jsonl` -> `sim.truth.json`."""
    return Path(out).with_suffix(".truth.json")


def hazards(c: Customer, days: int) -> list[float | None]:
    """The generator's churn probability within the segment horizon, per day of the period."""
    horizon = HORIZON_DAYS[c.segment]
    out: list[float | None] = []
    for d in range(days):
        at_risk = d >= c.signup_day and (
            c.cancel_day is None
            or d <= c.cancel_day
            or (c.reactivate_day is not None and d > c.reactivate_day)
        )
        if not at_risk:
            out.append(None)
            continue
        survive = 1.0
        for p in c.cancel_prob[d : d + horizon]:
            survive *= 1.0 - p
        out.append(round(1.0 - survive, 5))
    return out


def build_truth(config: SimConfig, customers: list[Customer]) -> GroundTruth:
    """Ground truth of planned customers (no behaviour needed)."""
    start = config.start
    truth = GroundTruth(start=start, days=config.days, horizon_days=dict(HORIZON_DAYS))
    for c in customers:

        def at(day: int | None, local_s: float, c: Customer = c) -> float | None:
            return None if day is None else c.utc(start, day, local_s, config.days)

        truth.users[c.user_id] = UserTruth(
            segment=c.segment,
            signup_ts=c.utc(start, c.signup_day, c.signup_local_s, config.days),
            cancel_ts=at(c.cancel_day, c.cancel_local_s),
            reactivate_ts=at(c.reactivate_day, c.reactivate_local_s),
            warning_start_ts=None if c.warning_day is None else start + c.warning_day * DAY,
            roi_drop_ts=None if c.roi_drop_day is None else start + c.roi_drop_day * DAY,
            silent=c.silent,
            hazard=hazards(c, config.days),
        )
    return truth
