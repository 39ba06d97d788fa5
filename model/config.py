"""Model settings: estimator, priors, horizons, label thresholds, rules and drift handling."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from churnstream.features.names import ROI_UNKNOWN
from churnstream.model.labels import (
    DEFAULT_QUIET_DAYS,
    LABEL_MODES,
    MAX_QUIET_SPAN_DAYS,
    LabelMode,
)
from churnstream.model.learner import OPTIMIZERS, SegmentModel
from churnstream.model.rules import RulesScore, logit
from churnstream.stream.contract.events import DAY_S, SEGMENTS

ESTIMATORS: Final = ("logistic", "hoeffding", "arf")

# Prior probability of churn within the segment's horizon, used as the cold-start intercept
# and as the rules bias. Course learners drop out fast (weekly cohorts, ~8 % within 7 days);
# SaaS and document-processing accounts are contract-bound (~4 % within 14 days, about 8 %
# a month). They are only starting points: the model's intercept learns the real rate.
DEFAULT_BASE_RATES: Final[dict[str, float]] = {"course": 0.08, "saas": 0.04, "docs": 0.04}
DEFAULT_HORIZON_DAYS: Final[dict[str, float]] = {"course": 7.0, "saas": 14.0, "docs": 14.0}
# What churn within the horizon means (model/labels.py). A learner who stops watching has left
# without cancelling anything, so a course label is a cancel or no activity at all; SaaS and
# document accounts are contract-bound: quiet weeks are normal, churn is the cancel.
DEFAULT_LABEL_MODES: Final[dict[str, LabelMode]] = {
    "course": "either",
    "saas": "cancel",
    "docs": "cancel",
}


@dataclass(frozen=True, slots=True)
class RulesParams:
    """Weights (log-odds per raw unit), healthy centers and bias of one segment's rule.

    `bias=None` means logit(base rate of the segment).
    """

    weights: Mapping[str, float]
    centers: Mapping[str, float] = field(default_factory=dict)
    bias: float | None = None


# Hand-set, deliberately few and readable. Days of silence and a collapsing usage trend are
# the universal signals; each segment adds its own friction (abandoned videos, failing syncs
# or jobs) and, where money is known, ROI below break-even. Trends are rates per observed day
# (docs/features.md), so their center 1.0 holds from a user's first day, not only from day 28;
# an unknown ROI reads ROI_UNKNOWN, the break-even center, and so adds nothing.
DEFAULT_RULES: Final[dict[str, RulesParams]] = {
    "course": RulesParams(
        weights={
            "days_since_event": 0.25,
            "trend_watch_minutes": -1.0,
            "abandoned_ratio_7d": 1.5,
            "failed_logins_7d": 0.3,
            "trend_active_days": -0.8,
        },
        centers={
            "days_since_event": 1.0,
            "trend_watch_minutes": 1.0,
            "abandoned_ratio_7d": 0.2,
            "trend_active_days": 1.0,
        },
    ),
    "saas": RulesParams(
        weights={
            "days_since_event": 0.2,
            "sync_error_ratio_7d": 2.5,
            "trend_value": -0.8,
            "roi_7d": -0.3,
            "failed_logins_7d": 0.3,
            "trend_active_days": -0.6,
        },
        centers={
            "days_since_event": 1.0,
            "trend_value": 1.0,
            "roi_7d": ROI_UNKNOWN,
            "trend_active_days": 1.0,
        },
    ),
    "docs": RulesParams(
        weights={
            "days_since_event": 0.2,
            "job_failure_ratio_7d": 2.5,
            "trend_jobs": -0.8,
            "roi_7d": -0.3,
            "trend_active_days": -0.6,
        },
        centers={
            "days_since_event": 1.0,
            "trend_jobs": 1.0,
            "roi_7d": ROI_UNKNOWN,
            "trend_active_days": 1.0,
        },
    ),
}


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Everything the model side needs; defaults are the documented production defaults."""

    estimator: str = "logistic"
    # Load pickled snapshots (tree estimators, format 1): unpickling runs code, so only when
    # no one but the trainer can write them (model.snapshot_codec).
    trust_pickled_snapshots: bool = False
    base_rates: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_BASE_RATES))
    horizons_days: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_HORIZON_DAYS))
    label_modes: Mapping[str, LabelMode] = field(default_factory=lambda: dict(DEFAULT_LABEL_MODES))
    # Quiet days Q of the `quiet` label mode (model/labels.py), whole days, every segment that
    # uses it: its labels are released Q days after their horizon.
    quiet_days: int = DEFAULT_QUIET_DAYS
    # A segment switches from rules to model once it learned this many labels, at least
    # min_class_labels of each class. 50 ranks the second to fourth weeks of SaaS and docs
    # better (a model that has seen a handful of churn rows ranks worse than the rules) but
    # leaves courses to their rules longer, which alarm more: 0.14 -> 0.23 of never-churning
    # learners alerted in 300 x 60 (docs/alerts.md "Cold start"). So 1 by default; a SaaS or
    # docs deployment may set 50.
    min_labels: int = 200
    min_class_labels: int = 1
    # The logistic model caps standardised inputs at +-clip_z (0: no cap), see learner.ClipZ.
    # 3 chosen on the simulator: it removed the alert flood of young models and raised the
    # published AUC and log loss of every segment (docs/alerts.md).
    clip_z: float = 3.0
    # The logistic model's weight updates (learner.SegmentModel), chosen on seed 7 and reported
    # on seed 11 (docs/model.md "Daily AUC against the oracle"). regime_cuts (one pipeline per
    # recency regime of days_since_event) stay off: within 0.001 on seed 7, and two pipelines
    # need more labels, so small histories score worse (course 0.58 against 0.64).
    optimizer: str = "adagrad"
    learning_rate: float = 0.05
    l2: float = 0.0
    regime_cuts: tuple[float, ...] = ()
    rules: Mapping[str, RulesParams] = field(default_factory=lambda: dict(DEFAULT_RULES))
    quality_window: int = 20_000
    drift_warmup: int = 1_000
    drift_delta: float = 0.002
    drift_action: Literal["none", "reset"] = "none"
    seed: int = 42

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.estimator != "logistic" and not self.trust_pickled_snapshots:
            raise ValueError(
                f"estimator {self.estimator!r} has pickled snapshots: needs trust_pickled_snapshots"
            )
        if self.drift_action not in ("none", "reset"):
            raise ValueError(f"drift_action must be 'none' or 'reset', got {self.drift_action!r}")
        for seg in SEGMENTS:
            rate = self.base_rates.get(seg)
            if rate is None or not 0.0 < rate < 1.0:
                raise ValueError(f"base rate for {seg!r} must be in (0, 1), got {rate!r}")
            horizon = self.horizons_days.get(seg)
            if horizon is None or horizon <= 0:
                raise ValueError(f"horizon for {seg!r} must be > 0 days, got {horizon!r}")
            mode = self.label_modes.get(seg)
            if mode not in LABEL_MODES:
                raise ValueError(f"label mode for {seg!r} must be one of {LABEL_MODES}: {mode!r}")
            if mode == "quiet" and not (
                isinstance(self.quiet_days, int)
                and self.quiet_days >= 1
                and horizon + self.quiet_days + 1 <= MAX_QUIET_SPAN_DAYS
            ):
                raise ValueError(
                    f"quiet_days must be a whole number >= 1 with horizon + quiet_days + 1 <= "
                    f"{MAX_QUIET_SPAN_DAYS} days ({seg!r} horizon {horizon}): {self.quiet_days!r}"
                )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not self.learning_rate > 0 or self.l2 < 0:
            raise ValueError("learning_rate must be > 0 and l2 >= 0")
        cuts = self.regime_cuts
        if any(b <= a for a, b in itertools.pairwise(cuts)):
            raise ValueError(f"regime_cuts must increase, got {cuts!r}")
        if self.clip_z < 0:
            raise ValueError(f"clip_z must be >= 0 (0: no clipping), got {self.clip_z!r}")
        if self.min_labels < 0 or self.quality_window < 2 or self.drift_warmup < 0:
            raise ValueError("min_labels, drift_warmup must be >= 0 and quality_window >= 2")
        if self.min_class_labels < 1:
            raise ValueError(f"min_class_labels must be >= 1, got {self.min_class_labels!r}")

    def ready(self, model: SegmentModel) -> bool:
        """True once `model` has learned enough to replace its segment's rules score."""
        return model.ready(self.min_labels, self.min_class_labels)

    def horizon_s(self, segment: str) -> float:
        """Label horizon of `segment` in seconds."""
        return float(self.horizons_days[segment]) * DAY_S

    def label_mode(self, segment: str) -> LabelMode:
        """Label mode of `segment`; an unknown segment churns by cancelling."""
        return self.label_modes.get(segment, "cancel")

    def quiet_days_of(self, segment: str) -> int:
        """Quiet days of `segment`'s label (0 unless its mode is `quiet`)."""
        return self.quiet_days if self.label_mode(segment) == "quiet" else 0

    def label_delay_s(self, segment: str) -> float:
        """How long after its row a label is released: the horizon, plus the quiet days of a
        `quiet` label (the due time the trainer and `Scorer.covers` count with)."""
        return self.horizon_s(segment) + self.quiet_days_of(segment) * DAY_S

    def rules_for(self, segment: str) -> RulesScore:
        """The segment's rule score; an unknown segment gets a bias-only rule."""
        params = self.rules.get(segment, RulesParams(weights={}))
        base = self.base_rates.get(segment, 0.05)
        bias = logit(base) if params.bias is None else params.bias
        return RulesScore(
            params.weights,
            bias,
            centers=params.centers,
            segment=segment,
            horizon_days=self.horizons_days.get(segment, 14.0),
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelConfig:
        """Build from plain settings (e.g. parsed TOML/env); unknown keys are rejected."""
        kwargs = dict(raw)
        if "rules" in kwargs:
            merged = dict(DEFAULT_RULES)
            for seg, spec in kwargs["rules"].items():
                merged[seg] = spec if isinstance(spec, RulesParams) else RulesParams(**spec)
            kwargs["rules"] = merged
        for key, defaults in (
            ("base_rates", DEFAULT_BASE_RATES),
            ("horizons_days", DEFAULT_HORIZON_DAYS),
            ("label_modes", DEFAULT_LABEL_MODES),
        ):
            if key in kwargs:
                kwargs[key] = {**defaults, **kwargs[key]}
        return cls(**kwargs)
