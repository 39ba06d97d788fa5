"""Risk drivers: which features push a score up, in a form a person can read."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple


class Driver(NamedTuple):
    """One feature's push on a score, in log-odds units.

    `value` is the raw feature value (what a person recognises, e.g. 12 days since the last
    event); `contribution` is what it added to the log-odds of churn.
    """

    feature: str
    value: float
    contribution: float

    def to_dict(self) -> dict[str, float | str]:
        """JSON-able form used in `churn.risk-scores` and `churn.alerts`."""
        return {"feature": self.feature, "value": self.value, "contribution": self.contribution}


def top_drivers(
    contributions: Iterable[tuple[str, float]], values: Mapping[str, float], top: int = 3
) -> list[Driver]:
    """The `top` risk-raising drivers, largest contribution first.

    Only strictly positive contributions qualify: a feature that lowers the risk does not
    explain why the risk is high. Ties are broken by feature name so output is deterministic.
    """
    if top <= 0:
        return []
    # Sorting (-c, f) tuples in C beats heapq.nsmallest with a key for a few dozen features;
    # the order is the same total order, and -(-c) == c exactly.
    best = sorted([(-c, f) for f, c in contributions if c > 0.0])[:top]
    return [Driver(f, float(values.get(f, 0.0)), -neg) for neg, f in best]
