"""ROI checks for `roi_drop` alerts: the threshold/baseline rule and a Page-Hinkley detector.

Both are pure and deterministic. ROI_7d = value_7d / cost_7d; the baseline is the ROI of the
21 days before them, (value_28d - value_7d) / (cost_28d - cost_7d): a 28-day baseline would
include the dropped week itself and hide a quarter of any drop. The Page-Hinkley detector
is a tiny, serialisable re-implementation of River's `drift.PageHinkley(mode="down")` so its
state fits in the per-user alert memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from churnstream.stream.contract.alerts import CRITICAL, WARNING

_EPS: Final = 1e-9


@dataclass(frozen=True, slots=True)
class RoiReading:
    """ROI of the last 7 days against the baseline of the 21 days before them."""

    roi_7d: float
    baseline: float
    drop: float  # fraction lost against the baseline, 0 when ROI did not fall


def read_roi(
    features: Mapping[str, float],
    min_history_days: float,
    min_value_events: float,
) -> RoiReading | None:
    """ROI reading from features, or None when ROI is undefined or not trustworthy yet.

    Skipped: no cost in the last 7 days or in the 21 days before (no plan price known, or
    not subscribed then), tenure shorter than `min_history_days`, or fewer than
    `min_value_events` value events in 28 days (the customer does not report value, so a low
    ROI would be an artefact).
    """
    cost_7d = features.get("cost_7d", 0.0)
    cost_prior = features.get("cost_28d", 0.0) - cost_7d
    # Relative tolerance: the 28d and 7d costs are float sums of the same daily price.
    if cost_7d <= 0.0 or cost_prior <= _EPS * cost_7d:
        return None
    if features.get("tenure_days", 0.0) < min_history_days:
        return None
    if features.get("value_events_28d", 0.0) < min_value_events:
        return None
    value_7d = max(0.0, features.get("value_7d", 0.0))
    roi_7d = value_7d / cost_7d
    baseline = max(0.0, features.get("value_28d", 0.0) - value_7d) / cost_prior
    drop = max(0.0, 1.0 - roi_7d / baseline) if baseline > 0.0 else 0.0
    return RoiReading(roi_7d=roi_7d, baseline=baseline, drop=drop)


@dataclass(frozen=True, slots=True)
class RoiBreach:
    """A held ROI condition: severity, the ROI and the threshold it crossed."""

    severity: str
    value: float
    threshold: float


def rule_breach(reading: RoiReading, roi_threshold: float, roi_drop: float) -> RoiBreach | None:
    """Rule: ROI_7d < roi_threshold, or ROI_7d < (1 - roi_drop) * baseline.

    Critical when ROI_7d < roi_threshold / 2 or the drop exceeds 2 * roi_drop. When both
    conditions hold the absolute threshold is reported (it is the easier one to explain).
    """
    relative = (1.0 - roi_drop) * reading.baseline
    if reading.roi_7d < roi_threshold:
        threshold = roi_threshold
    elif reading.roi_7d < relative:
        threshold = relative
    else:
        return None
    critical = reading.roi_7d < 0.5 * roi_threshold or reading.drop > 2.0 * roi_drop
    return RoiBreach(CRITICAL if critical else WARNING, reading.roi_7d, threshold)


def rule_cleared(
    reading: RoiReading,
    roi_threshold: float,
    roi_drop: float,
    clear_factor: float,
) -> bool:
    """Hysteresis: the condition clears only once ROI is `clear_factor` above both limits."""
    relative = (1.0 - roi_drop) * reading.baseline
    return reading.roi_7d >= clear_factor * max(roi_threshold, relative)


@dataclass(slots=True)
class PageHinkleyDown:
    """Page-Hinkley test for a downward shift of the mean (River's algorithm, mode="down").

    Feed one value per day with `update`; it returns True on the update that detects a drop and
    then restarts from scratch, as River does.
    """

    min_instances: int = 7
    delta: float = 0.005
    threshold: float = 1.0
    alpha: float = 0.9999
    n: int = 0
    mean: float = 0.0
    sum_decrease: float = 0.0
    max_decrease: float = -1.0  # River's initial value, kept so both give the same detections

    def update(self, x: float) -> bool:
        """Add one observation; True when a downward change is detected."""
        self.n += 1
        self.mean += (x - self.mean) / self.n
        self.sum_decrease = self.alpha * self.sum_decrease + (x - self.mean) + self.delta
        self.max_decrease = max(self.max_decrease, self.sum_decrease)
        if self.n >= self.min_instances and self.max_decrease - self.sum_decrease > self.threshold:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        """Forget all observations (keeps the parameters)."""
        self.n, self.mean, self.sum_decrease, self.max_decrease = 0, 0.0, 0.0, -1.0

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict state (parameters included) for serialisation."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PageHinkleyDown:
        """Inverse of `to_dict`."""
        return cls(**data)
