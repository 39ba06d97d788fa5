"""Alert policy: when a score or ROI reading becomes a `churn.alerts` record (pure).

Edge-triggered with hysteresis: an alert is raised when a condition starts, not on every event
while it holds. The same user and kind are not alerted again within the cooldown (event time)
unless the severity rises. Cancel stops a user's alerts; reactivate/signup resumes them.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal

import orjson

from churnstream.model.experiment import Experiment
from churnstream.model.labels import stored_score
from churnstream.model.messages import compose_message
from churnstream.model.playbook import Action, Driver, Playbook
from churnstream.model.roi import (
    PageHinkleyDown,
    RoiBreach,
    read_roi,
    rule_breach,
    rule_cleared,
)
from churnstream.stream.contract.alerts import (
    CHURN_RISK,
    CRITICAL,
    ROI_DROP,
    WARNING,
)
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.contract.timefmt import rfc3339

MAX_DRIVERS: Final = 3
_RANK: Final = {WARNING: 1, CRITICAL: 2}


@dataclass(frozen=True, slots=True)
class RiskThresholds:
    """Risk score levels: raise at `warning`/`critical`, clear (hysteresis) below `clear`."""

    warning: float = 0.5
    critical: float = 0.75
    clear: float = 0.35

    def __post_init__(self) -> None:
        if not 0.0 <= self.clear <= self.warning <= self.critical <= 1.0:
            raise ValueError(f"need 0 <= clear <= warning <= critical <= 1, got {self}")


# Per-segment defaults chosen with bench/model_grid.py on the simulator (docs/alerts.md has the
# sweep), on one seed (2000 users x 120 days, seed 7) with the default model and reported on
# seed 11. Scores are churn probabilities within the segment's horizon, decided on daily rows.
# `warning`: the level with the highest recall among all churners (silent dropouts included)
# whose alerts are followed by churn within the horizon at least 43% of the time (the replay's
# precision before daily rows); equal recall goes to the lower level. `critical`: kept from the
# issue-14 sweep of the model before (the lowest level whose critical alerts alone reached 60%
# precision). `clear` at 0.6 x warning stops flapping. Docs: 0.35 since its model learns
# processing_per_doc_3d_vs_before (the highest recall whose precision is at least the 0.46 of
# the model before at 0.25; docs/alerts.md), so that adding recall costs no precision.
DEFAULT_SEGMENT_THRESHOLDS: Final[dict[str, RiskThresholds]] = {
    "course": RiskThresholds(warning=0.3, critical=0.7, clear=0.18),
    "saas": RiskThresholds(warning=0.2, critical=0.5, clear=0.12),
    "docs": RiskThresholds(warning=0.35, critical=0.7, clear=0.21),
}


@dataclass(frozen=True, slots=True)
class AlertConfig:
    """Alert thresholds; all durations are event time."""

    thresholds: RiskThresholds = field(default_factory=RiskThresholds)  # unknown segments
    segment_thresholds: Mapping[str, RiskThresholds] = field(
        default_factory=lambda: dict(DEFAULT_SEGMENT_THRESHOLDS)
    )
    cooldown_s: float = 7 * DAY_S
    # Per-segment cooldowns (event-time seconds); segments not listed use `cooldown_s`.
    segment_cooldown_s: Mapping[str, float] = field(default_factory=dict)
    # At most this many churn_risk alerts per segment and daily boundary, highest expected
    # loss first (`AlertPolicy.settle`); segments not listed have no budget.
    daily_budget: Mapping[str, int] = field(default_factory=dict)
    # No churn_risk alert in the first day of a relationship: a user with (almost) no events
    # scores high on silence alone, which flooded a replay with alerts at signup.
    risk_warmup_s: float = 1 * DAY_S
    # A risk episode is raised only once a later score, at least this much event time after
    # the first, still holds >= warning (and none between fell below). It was 600 s when risk
    # was scored at every event, to skip lone spikes such as the score at a login after days
    # away. Risk is now decided on daily rows made from complete days, where no such spike
    # exists, and holding one would delay every alert by a whole day: off by default.
    risk_hold_s: float = 0.0
    roi_threshold: float = 1.0
    # 0.5 / 1.25 chosen on the simulator: at 0.4 / 1.1 weekly value noise alone alerted twice
    # as many quiet SaaS accounts; planted drops (60-90%) are caught as well and as fast.
    roi_drop: float = 0.5
    roi_clear_factor: float = 1.25  # ROI must recover 25% above the limits to clear
    roi_min_history_days: float = 14.0
    roi_min_value_events: int = 5
    roi_detector: Literal["rule", "page_hinkley"] = "rule"
    ph_threshold: float = 1.0  # Page-Hinkley lambda, in ROI units (daily ROI_7d samples)
    ph_delta: float = 0.005
    ph_min_days: int = 7

    def __post_init__(self) -> None:
        if self.roi_detector not in ("rule", "page_hinkley"):
            raise ValueError(f"roi_detector must be 'rule' or 'page_hinkley': {self.roi_detector}")
        if not 0.0 < self.roi_drop < 1.0:
            raise ValueError(f"roi_drop must be in (0, 1): {self.roi_drop}")
        if self.cooldown_s < 0 or self.roi_threshold <= 0 or self.roi_clear_factor < 1.0:
            raise ValueError("need cooldown_s >= 0, roi_threshold > 0, roi_clear_factor >= 1")
        if self.risk_warmup_s < 0 or self.risk_hold_s < 0:
            raise ValueError("risk_warmup_s and risk_hold_s must be >= 0")
        if any(c < 0 for c in self.segment_cooldown_s.values()):
            raise ValueError("segment cooldowns must be >= 0")
        if any(k < 0 for k in self.daily_budget.values()):
            raise ValueError("daily budgets must be >= 0")

    def thresholds_for(self, segment: str | None) -> RiskThresholds:
        """Thresholds of `segment`, falling back to the global ones."""
        if segment is None:
            return self.thresholds
        return self.segment_thresholds.get(segment, self.thresholds)

    def cooldown_for(self, segment: str | None) -> float:
        """Cooldown of `segment` in event-time seconds, falling back to the global one."""
        if segment is None:
            return self.cooldown_s
        return self.segment_cooldown_s.get(segment, self.cooldown_s)


@dataclass(slots=True)
class KindMemory:
    """Alert state of one kind: the current episode and the last alert raised."""

    active: bool = False
    level: str | None = None  # highest severity seen in the active episode
    last_ts: float | None = None
    last_severity: str | None = None
    holding: float | None = None  # since when the not yet raised condition holds (risk_hold_s)


@dataclass(slots=True)
class AlertMemory:
    """Per-user alert state (small; `to_bytes`/`from_bytes` for the state table)."""

    kinds: dict[str, KindMemory] = field(default_factory=dict)
    stopped: bool = False  # after cancel, until reactivate/signup
    since: float | None = None  # first score of the current relationship (for the warm-up)
    roi_day: int | None = None  # last UTC day fed to the Page-Hinkley detector
    roi_ph: dict[str, Any] | None = None
    # A churn_risk alert waiting for its boundary's budget decision: {"boundary", "alert"
    # (the record), "before" (the churn_risk KindMemory before it was raised, or None)}.
    candidate: dict[str, Any] | None = None
    # Cancels and reactivations (event time, "cancel" | "reactivate") that no decision has
    # reached yet. A daily row can be made after later events of its user were applied (live,
    # while a boundary waits for a lagging source); the row's decision must still see the
    # relationship as it was at the boundary, as when the row is made at once (replay).
    lifecycle: list[tuple[float, str]] = field(default_factory=list)

    def kind(self, kind: str) -> KindMemory:
        """State of one kind (created on first use)."""
        # Not setdefault: its default would build a KindMemory at every call (each ROI
        # reading), to be thrown away but the first time.
        memory = self.kinds.get(kind)
        if memory is None:
            memory = self.kinds[kind] = KindMemory()
        return memory

    def reach(self, ts: float) -> None:
        """Apply the cancels and reactivations at or before `ts`, in their order."""
        while self.lifecycle and self.lifecycle[0][0] <= ts:
            _, change = self.lifecycle.pop(0)
            if change == "cancel":
                self.stopped = True
            else:  # a fresh relationship: no episode, no cooldown, a new warm-up
                self.stopped = False
                self.kinds.clear()
                self.roi_day, self.roi_ph, self.since = None, None, None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return (
            {
                "kinds": {
                    k: {
                        "active": m.active,
                        "level": m.level,
                        "last_ts": m.last_ts,
                        "last_severity": m.last_severity,
                        "holding": m.holding,
                    }
                    for k, m in self.kinds.items()
                },
                "stopped": self.stopped,
                "roi_day": self.roi_day,
                "roi_ph": self.roi_ph,
                "since": self.since,
            }
            | ({} if self.candidate is None else {"candidate": self.candidate})
            | ({"lifecycle": self.lifecycle} if self.lifecycle else {})
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertMemory:
        """Inverse of `to_dict`."""
        return cls(
            kinds={k: KindMemory(**v) for k, v in data.get("kinds", {}).items()},
            stopped=bool(data.get("stopped", False)),
            roi_day=data.get("roi_day"),
            roi_ph=data.get("roi_ph"),
            # Memories written before the warm-up existed belong to established users.
            since=data.get("since", 0.0),
            candidate=data.get("candidate"),
            lifecycle=[(float(t), str(c)) for t, c in data.get("lifecycle", ())],
        )

    def to_bytes(self) -> bytes:
        """Compact JSON bytes."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_bytes(cls, raw: bytes) -> AlertMemory:
        """Inverse of `to_bytes`."""
        return cls.from_dict(orjson.loads(raw))


@dataclass(frozen=True, slots=True)
class Alert:
    """One `churn.alerts` record. The optional contract fields are written only when known:
    `probability` (and `horizon_days`, `revenue_at_risk`) for `churn_risk`, `holdout` and
    `experiment` when an experiment is configured. `percentile` among the day's scores is
    added to the record when its boundary is decided (`AlertPolicy.settle`)."""

    alert_id: str
    kind: str
    user_id: str
    segment: str | None
    ts: float
    severity: str
    value: float
    threshold: float
    drivers: tuple[Driver, ...]
    action: Action
    message: str
    probability: float | None = None
    horizon_days: float | None = None
    revenue_at_risk: float | None = None
    holdout: bool | None = None
    experiment: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Contract dict, fields in contract order, `ts` as RFC 3339 UTC."""
        doc = {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "user_id": self.user_id,
            "segment": self.segment,
            "ts": rfc3339(self.ts),
            "severity": self.severity,
            "value": self.value,
            "threshold": self.threshold,
            "drivers": [d.to_dict() for d in self.drivers],
            "action": self.action.to_dict(),
            "message": self.message,
        }
        if self.probability is not None:
            doc["probability"] = self.probability
            doc["horizon_days"] = self.horizon_days
            doc["revenue_at_risk"] = self.revenue_at_risk
        if self.experiment is not None:
            doc["holdout"] = self.holdout
            doc["experiment"] = self.experiment
        return doc


def alert_id(user_id: str, kind: str, ts: float, severity: str) -> str:
    """Deterministic id so a replay of the same events yields the same alert ids."""
    key = f"{user_id}\x1f{kind}\x1f{ts!r}\x1f{severity}".encode()
    return hashlib.sha256(key).hexdigest()[:32]


def top_drivers(drivers: Sequence[Any]) -> tuple[Driver, ...]:
    """Up to 3 drivers that push risk up, largest contribution first (ties by feature name).

    Items may be `Driver`, `{feature, value, contribution}` mappings or `model.explain.Driver`.
    """
    parsed = [Driver.coerce(d) for d in drivers]
    risky = sorted(
        (d for d in parsed if d.contribution > 0), key=lambda d: (-d.contribution, d.feature)
    )
    return tuple(risky[:MAX_DRIVERS])


class AlertPolicy:
    """Turns scores and ROI readings into alerts; all state lives in the caller's AlertMemory."""

    def __init__(
        self,
        config: AlertConfig | None = None,
        playbook: Playbook | None = None,
        experiment: Experiment | None = None,
    ) -> None:
        self.config = config or AlertConfig()
        self.playbook = playbook or Playbook.load()
        self.experiment = experiment

    def on_score(
        self,
        user_id: str,
        segment: str | None,
        ts: float,
        score: float,
        drivers: Sequence[Any],
        memory: AlertMemory,
        *,
        horizon_days: float | None = None,
        plan_price: float | None = None,
    ) -> Alert | None:
        """`churn_risk` alert when the score starts to hold >= warning, or escalates.

        The score is the calibrated probability of churning within the segment's horizon
        (`horizon_days`, when given, goes on the alert with it); with a `plan_price` the alert
        carries the revenue at risk, probability x price per 30 days."""
        memory.reach(ts)
        if memory.stopped:
            return None
        cfg = self.config
        levels = cfg.thresholds_for(segment)
        state = memory.kind(CHURN_RISK)
        if memory.since is None:
            memory.since = ts
        if score < levels.clear:
            _clear(state)
            return None
        if ts - memory.since < cfg.risk_warmup_s:
            return None  # too new to judge; the episode starts once the warm-up is over
        if score >= levels.critical:
            severity, threshold = CRITICAL, levels.critical
        elif score >= levels.warning:
            severity, threshold = WARNING, levels.warning
        else:
            state.holding = None  # a holding condition must hold on every score
            return None  # between clear and warning: hysteresis keeps the episode as it is
        if cfg.risk_hold_s and not state.active:
            if state.holding is None:
                state.holding = ts
            if ts - state.holding < cfg.risk_hold_s:
                return None  # not held long enough yet
        if not self._should_raise(state, ts, severity, segment):
            return None
        alert = self._alert(
            CHURN_RISK, user_id, segment, ts, severity, score, threshold, top_drivers(drivers)
        )
        revenue = None if plan_price is None else round(score * plan_price, 2)
        return replace(alert, probability=score, horizon_days=horizon_days, revenue_at_risk=revenue)

    def on_roi(
        self,
        user_id: str,
        segment: str | None,
        ts: float,
        features: Mapping[str, float],
        memory: AlertMemory,
    ) -> Alert | None:
        """`roi_drop` alert when ROI_7d starts to be low (rule) or a drop is detected (PH)."""
        memory.reach(ts)
        if memory.stopped:
            return None
        cfg = self.config
        reading = read_roi(features, cfg.roi_min_history_days, cfg.roi_min_value_events)
        if reading is None:
            return None  # undefined or untrustworthy ROI: neither raise nor clear
        state = memory.kind(ROI_DROP)
        if cfg.roi_detector == "page_hinkley":
            breach = self._page_hinkley(ts, reading.roi_7d, reading.baseline, memory)
        else:
            breach = rule_breach(reading, cfg.roi_threshold, cfg.roi_drop)
        if breach is None:
            if rule_cleared(reading, cfg.roi_threshold, cfg.roi_drop, cfg.roi_clear_factor):
                _clear(state)
            return None
        if not self._should_raise(state, ts, breach.severity, segment):
            return None
        drivers = _roi_drivers(features, reading.roi_7d, breach.threshold)
        return self._alert(
            ROI_DROP, user_id, segment, ts, breach.severity, breach.value, breach.threshold, drivers
        )

    def on_roi_refused(self, memory: AlertMemory, ts: float) -> None:
        """What `on_roi` does with features `read_roi` refuses (undefined or untrustworthy
        ROI): only the memory's lifecycle changes up to `ts`, no alert. For a caller that saw
        the refusal before deriving the rest of the features (`UserState.roi_features_if`
        with `roi_minimums`)."""
        memory.reach(ts)

    @property
    def roi_minimums(self) -> tuple[float, int]:
        """(tenure days, value events in 28 days) below which `read_roi` refuses a reading."""
        return self.config.roi_min_history_days, self.config.roi_min_value_events

    def treated(
        self,
        user_id: str,
        segment: str | None,
        memory: AlertMemory,
        made_at: float,
        horizon_s: float,
    ) -> bool:
        """True when the label of a prediction made at `made_at` may show an intervention's
        effect: an experiment that does not learn from treated customers, the customer in its
        treatment arm, and its last alert of any kind within `effect_days` before `made_at` or
        before the horizon ended. (Only the last alert per kind is remembered: an earlier one
        followed by a later one after the horizon is missed; labels are released when the
        horizon ends, so such a later alert is rare.)"""
        experiment = self.experiment
        if experiment is None or experiment.learn_from_treated:
            return False
        if experiment.is_holdout(user_id, segment):
            return False
        earliest = made_at - experiment.effect_days * DAY_S
        return any(
            state.last_ts is not None and earliest <= state.last_ts <= made_at + horizon_s
            for state in memory.kinds.values()
        )

    # -- the daily budget ------------------------------------------------------------------------

    def budgeted(self, segment: str | None) -> bool:
        """True when `segment` has a daily budget: its candidates may be dropped at the
        boundary's decision (every churn_risk alert of a daily row waits for it)."""
        return segment is not None and segment in self.config.daily_budget

    @staticmethod
    def risk_memory(memory: AlertMemory) -> dict[str, Any] | None:
        """The churn_risk episode state as it is now (to restore if the alert is dropped)."""
        state = memory.kinds.get(CHURN_RISK)
        return None if state is None else asdict(state)

    @staticmethod
    def hold(
        memory: AlertMemory, alert: Alert, boundary: float, before: dict[str, Any] | None
    ) -> None:
        """Keep `alert` as the user's candidate of `boundary` (stored with the user, so a
        restart decides it too)."""
        memory.candidate = {"boundary": boundary, "alert": alert.to_dict(), "before": before}

    def settle(
        self,
        memories: Sequence[AlertMemory],
        day_scores: Mapping[str, Sequence[float]] | None = None,
    ) -> list[dict[str, Any]]:
        """Decide one boundary's candidates: per segment the `daily_budget` ones with the
        highest expected loss (`budget_rank`) are returned as records to publish (all of them
        in a segment without a budget); the others are dropped and their episode is put back
        as it was before, so the customer competes again at the next boundary while the risk
        holds. Every candidate is cleared. `day_scores`: per segment, the sorted scores of
        the boundary's daily rows; a kept alert of a segment listed gets its `percentile`."""
        by_segment: dict[str, list[AlertMemory]] = {}
        for memory in memories:
            if memory.candidate is not None:
                segment = str(memory.candidate["alert"]["segment"])
                by_segment.setdefault(segment, []).append(memory)
        kept: list[dict[str, Any]] = []
        for segment in sorted(by_segment):
            ranked = sorted(by_segment[segment], key=lambda m: budget_rank(m.candidate or {}))
            limit = self.config.daily_budget.get(segment, len(ranked))
            for i, memory in enumerate(ranked):
                candidate = memory.candidate or {}
                memory.candidate = None
                if i < limit:
                    alert = candidate["alert"]
                    scores = (day_scores or {}).get(segment)
                    if scores:
                        alert["percentile"] = percentile(scores, float(alert["value"]))
                    kept.append(alert)
                # A reactivation since cleared the episodes: nothing to put back.
                elif CHURN_RISK in memory.kinds:
                    before = candidate.get("before")
                    if before is None:
                        del memory.kinds[CHURN_RISK]
                    else:
                        memory.kinds[CHURN_RISK] = KindMemory(**before)
        return kept

    def on_cancel(self, memory: AlertMemory, ts: float) -> None:
        """Stop alerting a churned user from `ts` (event time) on."""
        bisect.insort(memory.lifecycle, (ts, "cancel"))

    def on_reactivate(self, memory: AlertMemory, ts: float) -> None:
        """Resume alerting from `ts` on after reactivate/signup, as a fresh relationship (no
        cooldown, a new warm-up)."""
        bisect.insort(memory.lifecycle, (ts, "reactivate"))

    def _should_raise(
        self, state: KindMemory, ts: float, severity: str, segment: str | None
    ) -> bool:
        """Edge trigger + escalation + cooldown; updates the episode state."""
        rank = _RANK[severity]
        starts = not state.active
        escalates = state.active and rank > _RANK.get(state.level or "", 0)
        state.active = True
        if starts or escalates:
            state.level = severity
        if not (starts or escalates):
            return False
        if state.last_ts is not None and state.last_severity is not None:
            in_cooldown = ts - state.last_ts < self.config.cooldown_for(segment)
            if in_cooldown and rank <= _RANK[state.last_severity]:
                return False
        state.last_ts, state.last_severity = ts, severity
        return True

    def _page_hinkley(
        self,
        ts: float,
        roi_7d: float,
        baseline: float,
        memory: AlertMemory,
    ) -> RoiBreach | None:
        """Absolute ROI threshold, plus a Page-Hinkley drop test fed once per UTC day."""
        cfg = self.config
        absolute = rule_breach_absolute(roi_7d, cfg.roi_threshold)
        day = int(ts // DAY_S)
        if memory.roi_day is not None and day <= memory.roi_day:
            return absolute
        detector = (
            PageHinkleyDown.from_dict(memory.roi_ph)
            if memory.roi_ph
            else PageHinkleyDown(
                min_instances=cfg.ph_min_days, delta=cfg.ph_delta, threshold=cfg.ph_threshold
            )
        )
        level_before = detector.mean
        detected = detector.update(roi_7d)
        memory.roi_day, memory.roi_ph = day, detector.to_dict()
        if absolute is not None or not detected:
            return absolute
        drop = 1.0 - roi_7d / level_before if level_before > 0 else 0.0
        severity = CRITICAL if drop > 2.0 * cfg.roi_drop else WARNING
        return RoiBreach(severity, roi_7d, level_before)

    def _alert(
        self,
        kind: str,
        user_id: str,
        segment: str | None,
        ts: float,
        severity: str,
        value: float,
        threshold: float,
        drivers: tuple[Driver, ...],
    ) -> Alert:
        action = self.playbook.choose(segment, drivers, kind)
        experiment = self.experiment
        return Alert(
            alert_id=alert_id(user_id, kind, ts, severity),
            kind=kind,
            user_id=user_id,
            segment=segment,
            ts=ts,
            severity=severity,
            value=value,
            threshold=threshold,
            drivers=drivers,
            action=action,
            message=compose_message(kind, severity, value, threshold, drivers, action),
            holdout=None if experiment is None else experiment.is_holdout(user_id, segment),
            experiment=None if experiment is None else experiment.name,
        )


def percentile(scores: Sequence[float], score: float) -> float:
    """Share of `scores` (sorted ascending, not empty) at or below `score`, in percent, to
    one decimal. Compared at the precision pending labels keep (`stored_score`), from which
    a restart rebuilds the scores of a boundary."""
    return round(100.0 * bisect.bisect_right(scores, stored_score(score)) / len(scores), 1)


def budget_rank(candidate: Mapping[str, Any]) -> tuple[float, float, str]:
    """Sort key of a budget candidate, best first: the highest revenue at risk (unknown price:
    0), then the highest probability, then the user id (a deterministic tie-break)."""
    alert = candidate["alert"]
    revenue = alert.get("revenue_at_risk")
    return (-(revenue or 0.0), -float(alert["value"]), str(alert["user_id"]))


def rule_breach_absolute(roi_7d: float, roi_threshold: float) -> RoiBreach | None:
    """Only the absolute part of the ROI rule (ROI_7d < roi_threshold)."""
    if roi_7d >= roi_threshold:
        return None
    severity = CRITICAL if roi_7d < 0.5 * roi_threshold else WARNING
    return RoiBreach(severity, roi_7d, roi_threshold)


def _clear(state: KindMemory) -> None:
    state.active, state.level, state.holding = False, None, None


def _roi_drivers(
    features: Mapping[str, float],
    roi_7d: float,
    threshold: float,
) -> tuple[Driver, ...]:
    """ROI alerts explain themselves with the ROI shortfall, then the value trend.

    The ROI leads on purpose so the playbook picks the ROI intervention.
    """
    drivers = [Driver("roi_7d", roi_7d, max(0.0, (threshold - roi_7d) / threshold))]
    trend = features.get("trend_value")
    if trend is not None and trend < 1.0:
        drivers.append(Driver("trend_value", trend, 1.0 - trend))
    return tuple(drivers)


__all__ = [
    "DEFAULT_SEGMENT_THRESHOLDS",
    "Alert",
    "AlertConfig",
    "AlertMemory",
    "AlertPolicy",
    "KindMemory",
    "RiskThresholds",
    "alert_id",
    "percentile",
    "top_drivers",
]
