"""The detector: one code path from a validated event to features, score, labels and alerts.

Used unchanged by the live Faust worker (agents/) and by `churnstream replay`, so the same events
in the same order give the same scores. It knows nothing of Kafka: the caller owns storage
through a `UserRepository` and ships `Outputs` wherever they go.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from churnstream.features import FEATURE_NAMES, Applied, FeatureConfig
from churnstream.model.alerts import AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.labels import DueIndex, Example, PendingLabels
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.model.watermark import Watermark
from churnstream.stream.contract.events import DAY_S, Event, Lifecycle
from churnstream.stream.contract.timefmt import rfc3339

# Where an event came from: (topic, partition, offset); None in replays without offsets.
Source = tuple[str, int, int]


class UserRepository(Protocol):
    def get(self, user_id: str) -> UserRecord | None: ...
    def put(self, record: UserRecord) -> None: ...


@dataclass(frozen=True, slots=True)
class EngineConfig:
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    default_segment: str = "course"
    score_min_interval_s: float = 0.0
    watermark_idle_s: float = 86400.0
    # False: keep features only (no scores, labels or alerts).
    scoring: bool = True


@dataclass(slots=True)
class Outputs:
    """What processing produced since the caller last drained it."""

    scores: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    results: Counter[str] = field(default_factory=Counter)

    def drain(self) -> Outputs:
        out = Outputs(self.scores, self.alerts, self.examples, self.results)
        self.scores, self.alerts, self.examples, self.results = [], [], [], Counter()
        return out


_RESULT = {
    Applied.APPLIED: "ok",
    Applied.DUPLICATE: "duplicate",
    Applied.LATE_APPLIED: "late",
    Applied.TOO_LATE: "too_late",
}


class Detector:
    def __init__(
        self,
        config: EngineConfig,
        scorer: Scorer,
        alerts: AlertPolicy,
        repo: UserRepository,
        *,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.scorer = scorer
        self.alerts = alerts
        self.repo = repo
        self.due = DueIndex()
        self.watermark = Watermark(config.features.lateness_s, config.watermark_idle_s)
        self.out = Outputs()
        # Only `scored_at` reads it: the contract marks that field as wall-clock, for latency.
        self._wall_clock = wall_clock
        self._last_wall: tuple[float, str] = (-1.0, "")
        if tuple(scorer.feature_names) != FEATURE_NAMES:
            raise ValueError("the scorer must use features.FEATURE_NAMES in that order")

    # -- events -------------------------------------------------------------------------------

    def handle(self, event: Event, source: Source | None = None) -> str:
        """Apply one valid event of its user, then score, label and alert as needed.

        Returns the result for metrics: ok, late, too_late, duplicate or redelivered.
        """
        rec = self.repo.get(event.user_id)
        if rec is None:
            rec = UserRecord.new(event.user_id, self.config.features)
        state = rec.state
        if source is not None:
            topic, partition, offset = source
            if state.seen_offset(topic, partition, offset):
                self.out.results["redelivered"] += 1
                return "redelivered"
            state.mark_offset(topic, partition, offset)
            self.watermark.observe((topic, partition), event.ts)
        else:
            self.watermark.observe(type(event).kind, event.ts)
        old_segment = state.segment
        applied = state.apply(event)
        result = _RESULT[applied]
        self.out.results[result] += 1
        if applied is Applied.DUPLICATE:
            self.repo.put(rec)
            return result
        if rec.pending is not None and state.segment != old_segment:
            rec.pending = None  # snapshots and horizon belonged to the old segment
        if isinstance(event, Lifecycle):
            self._lifecycle(rec, event)
        if self.config.scoring and applied is not Applied.TOO_LATE and not state.churned:
            self._score(rec)
        self.repo.put(rec)
        return result

    def _lifecycle(self, rec: UserRecord, event: Lifecycle) -> None:
        if event.event == "cancel" and rec.state.churned:
            if rec.pending is not None:
                # Labelled now, released at their horizon by `sweep` (see PendingLabels).
                rec.pending.on_cancel(event.ts)
                if len(rec.pending) == 0:
                    rec.pending = None
                    self.due.discard(rec.user_id)
            self.alerts.on_cancel(rec.alerts)
        elif event.event in ("signup", "reactivate"):
            self.alerts.on_reactivate(rec.alerts)

    def _score(self, rec: UserRecord) -> None:
        state = rec.state
        now = state.clock
        if now - rec.last_scored_ts < self.config.score_min_interval_s:
            return
        segment = state.segment or self.config.default_segment
        vector = state.vector(now)
        x = dict(zip(FEATURE_NAMES, vector, strict=True))
        s = self.scorer.score(segment, x)
        drivers = [d.to_dict() for d in s.drivers]
        horizon_s = self.config.model.horizon_s(segment)
        ts = rfc3339(now)
        self.out.scores.append(
            {
                "user_id": rec.user_id,
                "segment": segment,
                "ts": ts,
                "score": s.score,
                "source": s.source,
                "model_version": s.model_version,
                "horizon_days": horizon_s / DAY_S,
                "drivers": drivers,
                "scored_at": self._scored_at(),
            }
        )
        rec.last = {
            "ts": now,
            "score": s.score,
            "source": s.source,
            "model_version": s.model_version,
            "drivers": drivers,
        }
        if rec.pending is None:
            rec.pending = PendingLabels(rec.user_id, segment)
        rec.pending.add(now, vector, s.score, s.model_version, horizon_s)
        self.due.schedule(rec.user_id, rec.pending.next_due())
        for alert in (
            self.alerts.on_score(rec.user_id, segment, now, s.score, s.drivers, rec.alerts),
            self.alerts.on_roi(rec.user_id, segment, now, x, rec.alerts),
        ):
            if alert is not None:
                self.out.alerts.append(alert.to_dict())

    def _scored_at(self) -> str:
        # Formatting a timestamp costs more than scoring; one string per wall-clock ms.
        now = round(self._wall_clock(), 3)
        if now != self._last_wall[0]:
            self._last_wall = (now, rfc3339(now))
        return self._last_wall[1]

    # -- labels of silent users ---------------------------------------------------------------

    def sweep(self) -> int:
        """Turn snapshots whose horizon passed under the watermark into negatives."""
        wm = self.watermark.value
        if wm == -math.inf:
            return 0
        n = 0
        for user_id in self.due.pop_due(wm):
            rec = self.repo.get(user_id)
            if rec is None or rec.pending is None:
                continue
            examples = rec.pending.due(wm)
            n += len(examples)
            self.out.examples.extend(examples)
            if len(rec.pending) == 0:
                rec.pending = None
            else:
                self.due.schedule(user_id, rec.pending.next_due())
            self.repo.put(rec)
        return n

    def reschedule(self, records: Iterable[UserRecord]) -> None:
        """Rebuild the due index from stored users (after recovery or a rebalance)."""
        self.due = DueIndex()
        for rec in records:
            if rec.pending is not None:
                self.due.schedule(rec.user_id, rec.pending.next_due())
