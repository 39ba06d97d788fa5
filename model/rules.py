"""Transparent health rule: the score users get before a segment's model is ready."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType

from churnstream.model.explain import Driver, top_drivers


def sigmoid(z: float) -> float:
    """Numerically safe logistic function."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def logit(p: float) -> float:
    """Inverse of `sigmoid`, clipped so 0 and 1 stay finite."""
    p = min(max(p, 1e-9), 1.0 - 1e-9)
    return math.log(p / (1.0 - p))


class RulesScore:
    """score = sigmoid(bias + sum_i w_i * (f_i - c_i)) over a few interpretable features.

    `centers` (c_i, default 0) let a weight act on the distance from a "healthy" value, e.g.
    a trend of 1.0 means "as usual", so a negative weight on `trend_value` turns a drop into a
    positive, explainable contribution. With no centers this is exactly
    sigmoid(bias + sum w_i * f_i). With bias = logit(base_rate), a user sitting at every
    center scores the segment's base rate. A feature missing from the input counts as its
    center (contributes nothing) rather than as 0, which could mean "very unhealthy".
    """

    __slots__ = ("_terms", "bias", "centers", "horizon_days", "segment", "weights")

    def __init__(
        self,
        weights: Mapping[str, float],
        bias: float,
        *,
        centers: Mapping[str, float] | None = None,
        segment: str = "",
        horizon_days: float = 14.0,
    ) -> None:
        # Read-only: `_terms` flattens them once for the per-score loop.
        self.weights: Mapping[str, float] = MappingProxyType(
            {k: float(v) for k, v in weights.items()}
        )
        self.bias = float(bias)
        self.centers: Mapping[str, float] = MappingProxyType(
            {k: float(v) for k, v in (centers or {}).items()}
        )
        self.segment = segment
        self.horizon_days = horizon_days
        self._terms = tuple((n, w, self.centers.get(n, 0.0)) for n, w in self.weights.items())

    def contributions(self, x: Mapping[str, float]) -> list[tuple[str, float]]:
        """(feature, w_i * (f_i - c_i)) for every weighted feature, in weight order."""
        get = x.get
        return [
            (name, 0.0 if (f := get(name)) is None else w * (float(f) - c))
            for name, w, c in self._terms
        ]

    def predict(self, x: Mapping[str, float]) -> float:
        """Probability-like churn score in [0, 1]."""
        return sigmoid(self.bias + sum([c for _, c in self.contributions(x)]))

    def explain(self, x: Mapping[str, float], top: int = 3) -> list[Driver]:
        """Top risk-raising features, largest contribution first (raw values)."""
        return top_drivers(self.contributions(x), x, top)
