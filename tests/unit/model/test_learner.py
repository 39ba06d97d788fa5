"""SegmentModel: cold start, learning, readiness, snapshots, explanations."""

from __future__ import annotations

import pickle
import random
import sys
import types

import pytest

from churnstream.model.config import ModelConfig
from churnstream.model.learner import SegmentModel
from churnstream.model.quality import exact_roc_auc

NAMES = ("days_since_event", "watch_minutes_7d", "noise")


def sample(rng: random.Random) -> tuple[dict[str, float], bool]:
    """Churn driven by days_since_event only; the other features are distractors."""
    x = {
        "days_since_event": rng.uniform(0, 30),
        "watch_minutes_7d": rng.uniform(0, 300),
        "noise": rng.gauss(0, 1),
    }
    return x, x["days_since_event"] > 20


def trained(
    estimator: str = "logistic", n: int = 3000, seed: int = 1, clip_z: float = 0.0
) -> SegmentModel:
    m = SegmentModel(
        "course", estimator=estimator, base_rate=0.08, feature_names=NAMES, clip_z=clip_z
    )
    rng = random.Random(seed)
    for _ in range(n):
        m.learn(*sample(rng))
    return m


def holdout_auc(m: SegmentModel, seed: int = 99, n: int = 1000) -> float:
    rng = random.Random(seed)
    pairs = [sample(rng) for _ in range(n)]
    auc = exact_roc_auc([m.predict(x) for x, _ in pairs], [y for _, y in pairs])
    assert auc is not None
    return auc


@pytest.mark.parametrize("base_rate", [0.04, 0.08, 0.3])
def test_cold_start_predicts_base_rate(base_rate: float) -> None:
    m = SegmentModel("saas", base_rate=base_rate, feature_names=NAMES)
    rng = random.Random(0)
    for _ in range(5):
        assert m.predict(sample(rng)[0]) == pytest.approx(base_rate, rel=1e-6)


@pytest.mark.parametrize("estimator", ["hoeffding", "arf"])
def test_tree_cold_start_predicts_base_rate(estimator: str) -> None:
    m = SegmentModel("docs", estimator=estimator, base_rate=0.04, feature_names=NAMES)
    assert m.predict({"days_since_event": 3.0}) == 0.04


def test_learns_separable_problem() -> None:
    m = trained()
    assert m.n_learned == 3000
    assert m.n_pos + m.n_neg == m.n_learned
    assert holdout_auc(m) > 0.9


def test_hoeffding_learns_too() -> None:
    assert holdout_auc(trained("hoeffding", n=2000)) > 0.9


def test_version_bumps_on_learn_and_survives_reset() -> None:
    m = SegmentModel("course", base_rate=0.08, feature_names=NAMES)
    assert m.version == 0
    m.learn({"noise": 1.0}, True)
    m.learn({"noise": 0.0}, False)
    assert m.version == 2
    m.reset()
    assert m.n_learned == 0
    assert m.version == 3
    assert m.predict({"noise": 1.0}) == pytest.approx(0.08)


def test_ready_needs_count_and_both_classes() -> None:
    m = SegmentModel("course", base_rate=0.08, feature_names=NAMES)
    for _ in range(10):
        m.learn({"noise": 0.0}, False)
    assert not m.ready(5)  # one class only
    m.learn({"noise": 1.0}, True)
    assert m.ready(11)
    assert not m.ready(12)
    # Each class counted: one churn row is not enough when two are asked for.
    assert not m.ready(11, min_each_class=2)
    m.learn({"noise": 1.0}, True)
    assert m.ready(12, min_each_class=2) and not m.ready(12, min_each_class=3)
    assert ModelConfig(min_labels=12, min_class_labels=2).ready(m)
    assert ModelConfig(min_labels=12).ready(m)  # the default: both classes present


def test_snapshot_round_trip_gives_identical_predictions() -> None:
    m = trained(n=500)
    clone = SegmentModel.from_snapshot(m.snapshot())
    rng = random.Random(5)
    for _ in range(50):
        x, _ = sample(rng)
        assert clone.predict(x) == m.predict(x)
        assert clone.explain(x) == m.explain(x)
    assert (clone.version, clone.n_pos, clone.n_neg) == (m.version, m.n_pos, m.n_neg)
    assert clone.feature_names == m.feature_names
    # and they keep learning identically
    x, y = sample(rng)
    m.learn(x, y)
    clone.learn(x, y)
    assert clone.predict(x) == m.predict(x)


def format1_pickle(m: SegmentModel, **drop: bool) -> bytes:
    """A snapshot as written before format 2 (a pickle of the whole pipeline)."""
    state = {
        "format": 1,
        "segment": m.segment,
        "estimator": m.estimator,
        "base_rate": m.base_rate,
        "feature_names": m.feature_names,
        "seed": m.seed,
        "clip_z": m.clip_z,
        "version": m.version,
        "n_pos": m.n_pos,
        "n_neg": m.n_neg,
        "n_resets": m.n_resets,
        "labels_until": m.labels_until,
        "model": m.pipelines[0],
    }
    for key in drop:
        del state[key]
    return pickle.dumps(state)


def test_format1_pickle_loads_only_with_the_opt_in() -> None:
    m = trained(n=300, clip_z=3.0)
    old = format1_pickle(m)
    with pytest.raises(ValueError, match="pickled snapshot refused"):
        SegmentModel.from_snapshot(old)
    clone = SegmentModel.from_snapshot(old, allow_pickle=True)
    x, _ = sample(random.Random(3))
    assert clone.predict(x) == m.predict(x)


def test_snapshot_written_under_the_old_module_names_still_loads_with_the_opt_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Before 0.2 the code was installed as top-level `model`: its snapshots name
    `model.learner.ClipZ`. A deployment that opts in to pickles keeps such models."""
    import churnstream.model.learner as learner

    m = trained(n=300, clip_z=3.0)
    monkeypatch.setitem(sys.modules, "model", types.ModuleType("model"))
    monkeypatch.setitem(sys.modules, "model.learner", learner)
    monkeypatch.setattr(learner.ClipZ, "__module__", "model.learner")
    old = format1_pickle(m)
    monkeypatch.undo()
    # and the old top-level name is not importable (as in a user's environment)
    monkeypatch.setitem(sys.modules, "model", None)
    assert b"model.learner" in old and b"churnstream.model.learner" not in old
    clone = SegmentModel.from_snapshot(old, allow_pickle=True)
    x, _ = sample(random.Random(3))
    assert clone.predict(x) == m.predict(x)


def test_from_snapshot_rejects_foreign_payload() -> None:
    import pickle

    with pytest.raises(ValueError):
        SegmentModel.from_snapshot(pickle.dumps({"format": 999}), allow_pickle=True)


def test_explain_picks_the_driving_feature() -> None:
    m = trained()
    drivers = m.explain({"days_since_event": 29.0, "watch_minutes_7d": 150.0, "noise": 0.0})
    assert drivers, "a high-risk user must have a driver"
    assert drivers[0].feature == "days_since_event"
    assert drivers[0].value == 29.0  # raw, not standardised
    assert all(d.contribution > 0 for d in drivers)
    assert [d.contribution for d in drivers] == sorted(
        (d.contribution for d in drivers), reverse=True
    )


def test_explain_omits_risk_lowering_features() -> None:
    m = trained()
    drivers = m.explain({"days_since_event": 0.0, "watch_minutes_7d": 150.0, "noise": 0.0})
    assert "days_since_event" not in {d.feature for d in drivers}


def test_explain_empty_for_trees_and_untrained() -> None:
    assert trained("hoeffding", n=300).explain({"days_since_event": 29.0}) == []
    fresh = SegmentModel("course", base_rate=0.08, feature_names=NAMES)
    assert fresh.explain({"days_since_event": 29.0}) == []


def test_inputs_restricted_to_feature_names() -> None:
    m = trained(n=300)
    x = {"days_since_event": 25.0, "watch_minutes_7d": 10.0, "noise": 0.1}
    assert m.predict({**x, "unknown_feature": 1e9}) == m.predict(x)
    assert m.from_vector([*m.vector(x), 7.0]) == x  # an appended feature is ignored


def test_unknown_estimator_rejected() -> None:
    with pytest.raises(ValueError):
        SegmentModel("course", estimator="svm", base_rate=0.1, feature_names=NAMES)


def river_proba(m: SegmentModel, x: dict[str, float]) -> float:
    """The reference: River's own pipeline predict, bypassing the flat parameter view."""
    return float(m.pipelines[0].predict_proba_one(m._select(x))[True])


def reference_contributions(m: SegmentModel, x: dict[str, float]) -> list[tuple[str, float]]:
    """explain's decomposition read straight from River's scaler and weights."""
    scaler = m.pipelines[0]["StandardScaler"]
    weights = m.pipelines[0]["LogisticRegression"].weights
    out = []
    for name in m.feature_names:
        w, v = weights.get(name, 0.0), scaler.vars.get(name, 0.0)
        if w != 0.0 and v > 0.0:
            out.append((name, w * ((x.get(name, 0.0) - scaler.means.get(name, 0.0)) / v**0.5)))
    return out


def test_fast_predict_matches_river_and_follows_learning() -> None:
    m = trained(n=400)
    rng = random.Random(11)
    for _ in range(30):
        x, y = sample(rng)
        x["noise"] *= 50.0  # also far from the means
        first, second = m.predict(x), m.predict(x)  # River, then the flat view
        assert m._linear[0] is not None and m._linear[0].version == m.version
        assert first == river_proba(m, x)
        assert second == pytest.approx(first, rel=0, abs=1e-12)
        m.learn(x, y)  # the view is stale now: next predicts must see the new weights
        assert m.predict(x) == pytest.approx(river_proba(m, x), rel=0, abs=1e-12)


def test_fast_predict_saturates_like_river() -> None:
    m = trained(n=400)
    far = {"days_since_event": 1e6, "watch_minutes_7d": 0.0, "noise": 0.0}
    assert m.predict(far) == m.predict(far) == river_proba(m, far) == 1.0


def test_explain_contributions_match_river_parameters() -> None:
    m = trained(n=400)
    rng = random.Random(12)
    for _ in range(20):
        x, _ = sample(rng)
        ref = sorted(((c, f) for f, c in reference_contributions(m, x) if c > 0), reverse=True)
        drivers = m.explain(x)
        assert [d.feature for d in drivers] == [f for _, f in ref[:3]]
        assert [d.contribution for d in drivers] == pytest.approx(
            [c for c, _ in ref[:3]], rel=1e-12
        )


def test_cold_logistic_fast_path_predicts_base_rate() -> None:
    m = SegmentModel("saas", base_rate=0.2, feature_names=NAMES)
    x = {"days_since_event": 3.0}
    assert m.predict(x) == m.predict(x) == pytest.approx(0.2, rel=1e-9)


def test_clipped_model_caps_far_values_in_predict_and_explain() -> None:
    m = trained(n=400, clip_z=3.0)
    assert list(m.pipelines[0].steps) == ["StandardScaler", "ClipZ", "LogisticRegression"]
    scaler = m.pipelines[0]["StandardScaler"]
    mean, std = scaler.means["days_since_event"], scaler.vars["days_since_event"] ** 0.5
    at_cap = {"days_since_event": mean + 3.0 * std, "watch_minutes_7d": 100.0, "noise": 0.0}
    far = {**at_cap, "days_since_event": 1e6}
    for x in (at_cap, far):  # River's pipeline first, then the flat view
        assert m.predict(x) == pytest.approx(river_proba(m, x), rel=0, abs=1e-12)
    assert m.predict(far) == pytest.approx(m.predict(at_cap), rel=0, abs=1e-12)
    assert m.predict(far) < 1.0  # unclipped, 1e6 days saturate the sigmoid (test above)
    (top,) = [d for d in m.explain(far) if d.feature == "days_since_event"]
    weight = m.pipelines[0]["LogisticRegression"].weights["days_since_event"]
    assert top.value == 1e6  # the raw value is reported, the contribution is capped
    assert top.contribution == pytest.approx(3.0 * weight, rel=1e-12)


def test_clipping_survives_snapshot_and_reset() -> None:
    m = trained(n=300, clip_z=2.0)
    copy = SegmentModel.from_snapshot(m.snapshot())
    far = {"days_since_event": 1e6, "watch_minutes_7d": -1e6, "noise": 5.0}
    assert copy.clip_z == 2.0
    assert copy.predict(far) == m.predict(far)
    copy.reset()
    assert list(copy.pipelines[0].steps) == ["StandardScaler", "ClipZ", "LogisticRegression"]


def test_snapshot_from_before_clipping_loads_unclipped() -> None:
    old = SegmentModel.from_snapshot(format1_pickle(trained(n=50), clip_z=True), allow_pickle=True)
    assert old.clip_z == 0.0
    old.reset()
    assert list(old.pipelines[0].steps) == ["StandardScaler", "LogisticRegression"]


def test_unclipped_model_has_no_clip_step() -> None:
    assert list(trained(n=10).pipelines[0].steps) == ["StandardScaler", "LogisticRegression"]


def test_regimes_pick_a_pipeline_by_days_since_event() -> None:
    m = SegmentModel(
        "course", base_rate=0.08, feature_names=NAMES, regime_cuts=(1.0, 3.0), clip_z=3.0
    )
    assert len(m.pipelines) == 3
    assert [m.regime({"days_since_event": d}) for d in (0.0, 0.99, 1.0, 2.5, 3.0, 40.0)] == [
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    assert m.regime({}) == 0  # a missing recency counts as 0, as in the inputs
    rng = random.Random(3)
    for _ in range(300):
        m.learn({"days_since_event": 0.0, "watch_minutes_7d": rng.uniform(0, 300)}, False)
    # only the first regime learned: the others still predict the prior
    scaler_counts = [p["StandardScaler"].counts["watch_minutes_7d"] for p in m.pipelines]
    assert scaler_counts == [300, 0, 0]
    assert m.predict({"days_since_event": 5.0}) == pytest.approx(0.08, rel=1e-6)
    assert m.predict({"days_since_event": 0.0}) < 0.08
    assert m.explain({"days_since_event": 5.0}) == []  # a regime that learned nothing
    m.reset()
    assert [p["StandardScaler"].counts["watch_minutes_7d"] for p in m.pipelines] == [0, 0, 0]


def test_regime_models_separate_what_one_linear_model_cannot() -> None:
    """Churn rises with watching when recent and falls with it when silent: one linear model
    has no single sign for the weight; a model per regime has."""

    def rows(seed: int, n: int) -> list[tuple[dict[str, float], bool]]:
        rng = random.Random(seed)
        out = []
        for _ in range(n):
            d = rng.choice((0.0, 5.0))
            w = rng.uniform(0, 300)
            out.append(
                (
                    {"days_since_event": d, "watch_minutes_7d": w, "noise": 0.0},
                    (w > 150) == (d == 0.0),
                )
            )
        return out

    def auc(m: SegmentModel) -> float:
        test = rows(2, 1000)
        value = exact_roc_auc([m.predict(x) for x, _ in test], [y for _, y in test])
        assert value is not None
        return value

    one = SegmentModel(
        "course", base_rate=0.5, feature_names=NAMES, optimizer="adagrad", learning_rate=0.05
    )
    split = SegmentModel(
        "course",
        base_rate=0.5,
        feature_names=NAMES,
        optimizer="adagrad",
        learning_rate=0.05,
        regime_cuts=(1.0,),
    )
    for x, y in rows(1, 3000):
        one.learn(x, y)
        split.learn(x, y)
    assert auc(split) > 0.95 > 0.7 > auc(one)


def test_tree_estimators_ignore_regimes_and_bad_cuts_are_refused() -> None:
    tree = SegmentModel(
        "docs", estimator="hoeffding", base_rate=0.04, feature_names=NAMES, regime_cuts=(1.0,)
    )
    assert tree.regime_cuts == () and len(tree.pipelines) == 1
    with pytest.raises(ValueError, match="regime_cuts must increase"):
        SegmentModel("docs", base_rate=0.04, feature_names=NAMES, regime_cuts=(3.0, 1.0))
    with pytest.raises(ValueError, match="unknown optimizer"):
        SegmentModel("docs", base_rate=0.04, feature_names=NAMES, optimizer="adam")


@pytest.mark.parametrize(
    ("estimator", "clip_z"), [("logistic", 0.0), ("logistic", 3.0), ("hoeffding", 0.0)]
)
def test_predict_then_learn_is_predict_then_learn(estimator: str, clip_z: float) -> None:
    """The trainer's one-selection shortcut gives the same scores and leaves the same model
    as `predict` followed by `learn` (a missing feature and an extra one included)."""
    a = trained(estimator, n=200, clip_z=clip_z)
    b = SegmentModel.from_snapshot(a.snapshot(), allow_pickle=True)
    rng = random.Random(7)
    for i in range(300):
        x, y = sample(rng)
        if i % 7 == 0:
            del x["noise"]
        x["extra"] = 1.0
        assert b.predict_then_learn(x, y) == a.predict(x)
        a.learn(x, y)
        assert (b.version, b.n_pos, b.n_neg) == (a.version, a.n_pos, a.n_neg)
    for _ in range(50):
        x, _ = sample(rng)
        assert b.predict(x) == a.predict(x)
