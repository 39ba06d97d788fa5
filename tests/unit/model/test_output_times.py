"""Output records of one instant carry one `ts` string, whatever topic they go to."""

from __future__ import annotations

from churnstream.features import FEATURE_NAMES, FeatureConfig
from churnstream.model.alerts import AlertConfig, AlertPolicy, RiskThresholds
from churnstream.model.engine import Detector, EngineConfig
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import DAY_S, Login

T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z: a whole second, where formatters used to differ


def test_alert_and_score_of_one_instant_carry_the_same_ts() -> None:
    # No lateness: the second login moves the watermark past the first day boundary.
    config = EngineConfig(features=FeatureConfig(lateness_s=0.0))
    # Any score alerts at once: no warm-up, no hold, a warning level every score reaches.
    policy = AlertPolicy(
        AlertConfig(
            thresholds=RiskThresholds(0.0, 1.0, 0.0),
            segment_thresholds={},
            risk_warmup_s=0.0,
            risk_hold_s=0.0,
        )
    )
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), policy, MemoryRepository())
    detector.handle(Login(event_id="e1", user_id="u1", ts=T0, success=True))
    detector.handle(Login(event_id="e2", user_id="u1", ts=T0 + DAY_S, success=True))
    detector.sweep()
    out = detector.out.drain()
    daily = [s for s in out.scores if s["trigger"] == "daily"]
    assert len(daily) == 1 and len(out.alerts) == 1  # churn_risk is decided on daily rows
    assert out.alerts[0]["ts"] == daily[0]["ts"] == "2026-03-02T00:00:00.000Z"
