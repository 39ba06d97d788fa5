"""model.alert_config and model.experiment: the TOML file over the code's defaults, one-line
errors, per-segment cooldowns, the alert's optional fields and the deterministic holdout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from churnstream.model.alert_config import AlertConfigError, load_alert_config, parse_alert_config
from churnstream.model.alert_policy import (
    DEFAULT_SEGMENT_THRESHOLDS,
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    RiskThresholds,
)
from churnstream.model.experiment import Experiment, bucket
from churnstream.stream.contract.events import DAY_S

T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z
DRIVERS = [{"feature": "days_since_login", "value": 12.0, "contribution": 1.0}]


def test_an_empty_file_keeps_the_defaults() -> None:
    base = AlertConfig(cooldown_s=3 * DAY_S)
    setup = parse_alert_config({}, base)
    assert setup.config == base
    assert setup.experiment is None
    assert setup.config.thresholds_for("saas") == DEFAULT_SEGMENT_THRESHOLDS["saas"]


def test_segments_override_only_what_they_name(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text(
        "cooldown_days = 5\n\n[segments.saas]\nwarning = 0.3\ncritical = 0.6\ncooldown_days = 2\n"
        "daily_budget = 20\n"
        '\n[experiment]\nname = "exp1"\nholdout_share = 0.2\nsegments = { docs = 0.5 }\n'
        "effect_days = 20\n"
    )
    setup = load_alert_config(path, AlertConfig())
    cfg = setup.config
    clear = DEFAULT_SEGMENT_THRESHOLDS["saas"].clear  # not named: the default's
    assert cfg.thresholds_for("saas") == RiskThresholds(warning=0.3, critical=0.6, clear=clear)
    assert cfg.thresholds_for("course") == DEFAULT_SEGMENT_THRESHOLDS["course"]
    assert cfg.cooldown_for("saas") == 2 * DAY_S
    assert cfg.cooldown_for("course") == 5 * DAY_S
    assert cfg.daily_budget == {"saas": 20}
    assert setup.experiment == Experiment("exp1", 0.2, {"docs": 0.5}, effect_days=20.0)


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"segments": {"saas": {"warning": 0.9}}},
            "segments.saas: need clear <= warning <= critical "
            "(got clear 0.12, warning 0.9, critical 0.5)",
        ),
        ({"segments": {"retail": {}}}, "segments.retail: unknown segment"),
        ({"segments": {"saas": {"warn": 0.3}}}, "segments.saas.warn: unknown key"),
        ({"segments": {"saas": {"warning": "0.3"}}}, "segments.saas.warning: must be a number"),
        ({"segments": {"saas": {"critical": 1.5}}}, "segments.saas.critical: must be in [0, 1]"),
        ({"cooldown_days": -1}, "cooldown_days: must be >= 0"),
        (
            {"segments": {"saas": {"daily_budget": 2.5}}},
            "segments.saas.daily_budget: must be an integer >= 0",
        ),
        ({"budget": 3}, "budget: unknown key"),
        ({"experiment": {"holdout_share": 0.1}}, "experiment.name: required"),
        (
            {"experiment": {"name": "e", "learn_from_treated": "no"}},
            "experiment.learn_from_treated: must be true or false",
        ),
        (
            {"experiment": {"name": "e", "holdout_share": 2}},
            "experiment.holdout_share: must be in [0, 1]",
        ),
        (
            {"experiment": {"name": "e", "segments": {"x": 0.1}}},
            "experiment.segments.x: unknown segment",
        ),
    ],
)
def test_bad_files_are_one_line_naming_the_key(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(AlertConfigError) as info:
        parse_alert_config(doc, AlertConfig())
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "alerts.toml"
    path.write_text("cooldown_days = [")
    with pytest.raises(AlertConfigError, match=r"alerts\.toml: not valid TOML"):
        load_alert_config(path, AlertConfig())


def test_per_segment_cooldown_is_applied() -> None:
    cfg = AlertConfig(
        risk_warmup_s=0.0,
        segment_thresholds={"saas": RiskThresholds(0.5, 0.9, 0.3)},
        segment_cooldown_s={"saas": 2 * DAY_S},
    )
    policy = AlertPolicy(cfg)
    memory = AlertMemory()
    raised = []
    # Up, down (episode ends), up again after 3 days: within the global 7-day cooldown,
    # outside the segment's 2 days.
    for day, score in [(0, 0.6), (1, 0.1), (3, 0.6)]:
        alert = policy.on_score("u1", "saas", T0 + day * DAY_S, score, DRIVERS, memory)
        raised += [day] if alert else []
    assert raised == [0, 3]
    memory = AlertMemory()
    raised = []
    for day, score in [(0, 0.6), (1, 0.1), (3, 0.6)]:
        alert = policy.on_score("u1", "course", T0 + day * DAY_S, score, DRIVERS, memory)
        raised += [day] if alert else []
    assert raised == [0]


def test_churn_risk_alert_carries_probability_horizon_and_revenue_at_risk() -> None:
    policy = AlertPolicy(AlertConfig(risk_warmup_s=0.0))
    alert = policy.on_score(
        "u1", "saas", T0, 0.62, DRIVERS, AlertMemory(), horizon_days=14.0, plan_price=49.0
    )
    assert alert is not None
    d = alert.to_dict()
    assert d["probability"] == 0.62 and d["horizon_days"] == 14.0
    assert d["revenue_at_risk"] == round(0.62 * 49.0, 2)
    assert "holdout" not in d
    no_price = policy.on_score("u2", "saas", T0, 0.62, DRIVERS, AlertMemory(), horizon_days=14.0)
    assert no_price is not None and no_price.to_dict()["revenue_at_risk"] is None


def test_holdout_is_deterministic_per_user_and_near_the_share() -> None:
    exp = Experiment("exp1", 0.1, {"saas": 0.5})
    users = [f"user-{i}" for i in range(20_000)]
    course = sum(exp.is_holdout(u, "course") for u in users) / len(users)
    saas = sum(exp.is_holdout(u, "saas") for u in users) / len(users)
    assert 0.09 < course < 0.11
    assert 0.49 < saas < 0.51
    assert [exp.is_holdout(u, "course") for u in users[:50]] == [
        Experiment("exp1", 0.1).is_holdout(u, "course") for u in users[:50]
    ]
    # Another experiment name reshuffles: the overlap of holdouts is about share^2.
    other = Experiment("exp2", 0.1)
    both = sum(exp.is_holdout(u, "course") and other.is_holdout(u, "course") for u in users)
    assert both / len(users) < 0.02
    assert 0.0 <= bucket("exp1", "u") < 1.0


def test_alerts_of_holdout_users_are_flagged() -> None:
    exp = Experiment("exp1", 0.5)
    policy = AlertPolicy(AlertConfig(risk_warmup_s=0.0), experiment=exp)
    flags = {}
    for i in range(40):
        user = f"u{i}"
        alert = policy.on_score(user, "course", T0, 0.9, DRIVERS, AlertMemory())
        assert alert is not None
        d = alert.to_dict()
        assert d["experiment"] == "exp1"
        flags[user] = d["holdout"]
        assert d["holdout"] is exp.is_holdout(user, "course")
    assert 0 < sum(flags.values()) < 40
