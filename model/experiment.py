"""The intervention experiment: which users are held out of delivered alerts (pure).

A user is in the holdout when a hash of the experiment's name and the user id falls below the
holdout share of the user's segment. The assignment needs no state, is the same on every
worker and in `replay`, and a new experiment name reshuffles everyone (docs/alerts.md,
"A/B holdout"). Holdout alerts are decided like any other and written to `churn.alerts` with
`holdout: true`; `churnstream deliver` does not send them, so their outcomes show what happens
without the intervention.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = ["DEFAULT_EFFECT_DAYS", "DEFAULT_HOLDOUT_SHARE", "Experiment", "bucket"]

DEFAULT_HOLDOUT_SHARE: Final = 0.1
# How long an intervention may change a customer's outcome (event-time days).
DEFAULT_EFFECT_DAYS: Final = 30.0
_SCALE: Final = float(2**64)


def bucket(experiment: str, user_id: str) -> float:
    """A uniform number in [0, 1) fixed by the experiment name and the user id."""
    digest = hashlib.sha256(f"{experiment}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Experiment:
    """`holdout_share` of the users (per segment where `segment_shares` says otherwise) are
    held out of delivered alerts. Unless `learn_from_treated`, the labels of treatment-arm
    customers alerted within `effect_days` before a prediction (or during its horizon) are
    not learned: a customer the intervention saved would teach the model that customers like
    it stay, and the model would stop flagging exactly those it should flag."""

    name: str
    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    segment_shares: Mapping[str, float] = field(default_factory=dict)
    learn_from_treated: bool = False
    effect_days: float = DEFAULT_EFFECT_DAYS

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an experiment needs a name")
        for share in (self.holdout_share, *self.segment_shares.values()):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"holdout shares must be in [0, 1], got {share}")
        if self.effect_days < 0:
            raise ValueError(f"effect_days must be >= 0, got {self.effect_days}")

    def share(self, segment: str | None) -> float:
        """Holdout share of `segment`."""
        if segment is None:
            return self.holdout_share
        return self.segment_shares.get(segment, self.holdout_share)

    def is_holdout(self, user_id: str, segment: str | None) -> bool:
        """True when the user's alerts are recorded but not delivered."""
        return bucket(self.name, user_id) < self.share(segment)
