"""RulesScore and the default per-segment rules from ModelConfig."""

from __future__ import annotations

import math

import pytest

from churnstream.features import FEATURE_NAMES, UserState
from churnstream.model.config import SEGMENTS, ModelConfig, RulesParams
from churnstream.model.rules import RulesScore, logit, sigmoid
from churnstream.stream.contract.events import (
    DocumentJob,
    IntegrationSync,
    Login,
    ValueEvent,
    VideoView,
)


def test_score_is_sigmoid_of_weighted_sum() -> None:
    r = RulesScore({"a": 0.5, "b": -2.0}, bias=-1.0)
    x = {"a": 4.0, "b": 0.25}
    assert r.predict(x) == pytest.approx(1 / (1 + math.exp(-(-1.0 + 0.5 * 4 - 2.0 * 0.25))))


def test_centers_shift_and_missing_features_contribute_nothing() -> None:
    r = RulesScore({"trend": -1.0, "days": 0.2}, bias=0.0, centers={"trend": 1.0})
    assert r.predict({}) == pytest.approx(0.5)
    assert r.contributions({"trend": 0.25}) == [("trend", pytest.approx(0.75)), ("days", 0.0)]


def test_explain_top_positive_contributions_with_raw_values() -> None:
    r = RulesScore({"a": 1.0, "b": 2.0, "c": -1.0, "d": 0.1, "e": 3.0}, bias=0.0)
    x = {"a": 1.0, "b": 1.0, "c": 5.0, "d": 1.0, "e": 0.0}
    drivers = r.explain(x)
    assert [d.feature for d in drivers] == ["b", "a", "d"]  # c lowers risk, e contributes 0
    assert drivers[0].value == 1.0 and drivers[0].contribution == 2.0
    assert r.explain(x, top=1)[0].to_dict() == {"feature": "b", "value": 1.0, "contribution": 2.0}


def test_sigmoid_logit_inverse_and_extremes() -> None:
    for p in (0.04, 0.08, 0.5, 0.99):
        assert sigmoid(logit(p)) == pytest.approx(p)
    assert sigmoid(-1000.0) == 0.0 and sigmoid(1000.0) == 1.0
    assert math.isfinite(logit(0.0)) and math.isfinite(logit(1.0))


@pytest.mark.parametrize("segment", SEGMENTS)
def test_default_rules_are_sane(segment: str) -> None:
    cfg = ModelConfig()
    r = cfg.rules_for(segment)
    healthy = {name: r.centers.get(name, 0.0) for name in r.weights}
    assert r.predict(healthy) == pytest.approx(cfg.base_rates[segment])
    silent = dict(healthy, days_since_event=30.0, trend_active_days=0.0)
    assert r.predict(silent) > 0.5
    assert r.explain(silent)[0].feature == "days_since_event"
    active = dict(healthy, days_since_event=0.0, trend_active_days=2.0)
    assert r.predict(active) < cfg.base_rates[segment]
    assert r.horizon_days == cfg.horizons_days[segment]


def test_config_validation_and_overrides() -> None:
    with pytest.raises(ValueError):
        ModelConfig(estimator="svm")
    with pytest.raises(ValueError):
        ModelConfig(base_rates={"course": 1.5, "saas": 0.04, "docs": 0.04})
    with pytest.raises(ValueError):
        ModelConfig(drift_action="panic")  # type: ignore[arg-type]
    cfg = ModelConfig.from_dict(
        {"base_rates": {"course": 0.2}, "rules": {"saas": {"weights": {"x": 1.0}, "bias": -3.0}}}
    )
    assert cfg.base_rates == {"course": 0.2, "saas": 0.04, "docs": 0.04}
    assert cfg.rules["saas"] == RulesParams(weights={"x": 1.0}, bias=-3.0)
    assert cfg.rules_for("saas").predict({"x": 3.0}) == pytest.approx(0.5)
    assert cfg.horizon_s("course") == 7 * 86_400


def test_weights_are_read_only_so_precomputed_terms_stay_valid() -> None:
    r = RulesScore({"a": 1.0}, bias=0.0, centers={"a": 2.0})
    with pytest.raises(TypeError):
        r.weights["a"] = 5.0  # type: ignore[index]
    with pytest.raises(TypeError):
        r.centers["a"] = 0.0  # type: ignore[index]
    assert r.contributions({"a": 3.0}) == [("a", 1.0)]


def test_top_drivers_same_order_as_heap_selection_with_ties_by_name() -> None:
    import heapq
    import random

    from churnstream.model.explain import top_drivers

    rng = random.Random(4)
    for _ in range(200):
        names = [f"f{i}" for i in range(rng.randint(0, 30))]
        contribs = [(n, rng.choice([0.0, -1.0, 0.5, 1.0, rng.uniform(-2, 2)])) for n in names]
        values = {n: float(i) for i, n in enumerate(names)}
        top = rng.randint(0, 5)
        ref = (
            heapq.nsmallest(
                top, ((c, f) for f, c in contribs if c > 0.0), key=lambda cf: (-cf[0], cf[1])
            )
            if top > 0
            else []
        )
        got = top_drivers(contribs, values, top)
        assert [(d.contribution, d.feature, d.value) for d in got] == [
            (c, f, values[f]) for c, f in ref
        ]


@pytest.mark.parametrize("segment", SEGMENTS)
def test_a_steady_new_user_without_a_price_adds_no_trend_or_roi_risk(segment: str) -> None:
    # Day 3 of a user who does the same every day and whose plan price is unknown: trends are
    # rates per observed day (1.0, not the 4.0 "surge" of a window not yet full) and the
    # unknown ROI is neutral (break-even, not the worst ROI): neither adds risk.
    st = UserState.new("u")
    for day in range(3):
        ts = 20_500 * 86_400.0 + day * 86_400.0 + 43_200.0
        for ev in (
            Login(event_id=f"l{day}", user_id="u", ts=ts, success=True),
            VideoView(
                event_id=f"v{day}",
                user_id="u",
                ts=ts,
                video_id="v",
                watched_s=60.0,
                duration_s=60.0,
                completed=True,
            ),
            IntegrationSync(event_id=f"s{day}", user_id="u", ts=ts, integration="crm", ok=True),
            DocumentJob(
                event_id=f"j{day}", user_id="u", ts=ts, job_id=f"j{day}", ok=True, documents=1
            ),
            ValueEvent(event_id=f"x{day}", user_id="u", ts=ts, value=5.0),
        ):
            st.apply(ev)
    x = dict(zip(FEATURE_NAMES, st.vector_at(20_503 * 86_400.0), strict=True))
    rule = ModelConfig().rules_for(segment)
    terms = dict(rule.contributions(x))
    moved = {n: c for n, c in terms.items() if n.startswith(("trend_", "roi_")) and c != 0.0}
    assert moved == {}
    assert any(n.startswith("trend_") for n in terms)
