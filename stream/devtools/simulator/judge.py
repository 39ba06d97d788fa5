"""The simulator's ground truth as `model.evaluation.Truth`: what `replay --report` and the
alert bench judge predictions against. Labels come from `truth.churned_within`, so the
evaluation and the simulator agree on what churn within a horizon means."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from churnstream.model.evaluation import Churn
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator.truth import GroundTruth, churned_within


class SimulatorTruth:
    """Adapter of a `GroundTruth` (read-only)."""

    def __init__(self, truth: GroundTruth) -> None:
        self.truth = truth
        self.start = truth.start
        self.end = truth.start + truth.days * DAY_S
        self._churns = {
            uid: Churn(
                uid,
                u.segment,
                u.churn_kind,
                u.churn_ts,
                u.decline_start_ts is not None,
                u.reactivate_ts,
            )
            for uid, u in truth.users.items()
            if u.churn_kind is not None and u.churn_ts is not None
        }

    @classmethod
    def read(cls, path: str | Path) -> SimulatorTruth:
        return cls(GroundTruth.read(path))

    def churns(self) -> Iterator[Churn]:
        return iter(self._churns.values())

    def churn_of(self, user_id: str) -> Churn | None:
        return self._churns.get(user_id)

    def at_risk(self, user_id: str, t: float) -> bool:
        """Signed up, and not churned by `t` unless back by then."""
        u = self.truth.users.get(user_id)
        if u is None or t < u.signup_ts:
            return False
        if u.churn_ts is None or t < u.churn_ts:
            return True
        return u.reactivate_ts is not None and t >= u.reactivate_ts

    def churned_within(self, user_id: str, t: float, horizon_s: float, mode: str) -> bool:
        u = self.truth.users.get(user_id)
        return u is not None and churned_within(u, t, horizon_s, mode)

    def oracle(self, user_id: str, t: float) -> float | None:
        """`oracle[d]` of the user's local day that holds `t`."""
        u = self.truth.users.get(user_id)
        if u is None:
            return None
        day = int((t - self.start + u.utc_offset_h * 3600.0) // DAY_S)
        return u.oracle[day] if 0 <= day < len(u.oracle) else None
