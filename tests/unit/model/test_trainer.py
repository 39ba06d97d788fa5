"""The single trainer: snapshot round trip, resume from a snapshot, versions, ready switch."""

from __future__ import annotations

import random

import pytest

from churnstream.features import FEATURE_NAMES
from churnstream.model.config import ModelConfig
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.scoring import Scorer
from churnstream.model.trainer import Trainer

NAMES = ("days_since_event", "trend_active_days", "noise")


def examples(n: int, segment: str = "saas", seed: int = 0) -> list[Example]:
    """Churn driven by silence and a falling trend; `noise` is a distractor."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        silent = rng.uniform(0, 20)
        trend = rng.uniform(0, 2)
        churns = silent - 6 * trend + rng.gauss(0, 2) > 8
        out.append(
            Example(f"u{i}", segment, 1.0e9 + i, [silent, trend, rng.gauss(0, 1)], churns, 0.1, 0)
        )
    return out


def probe_points(n: int = 50) -> list[dict[str, float]]:
    rng = random.Random(123)
    return [
        {
            "days_since_event": rng.uniform(0, 20),
            "trend_active_days": rng.uniform(0, 2),
            "noise": rng.gauss(0, 1),
        }
        for _ in range(n)
    ]


def make_trainer(
    min_labels: int = 50, snapshot_every: int = 100, min_class_labels: int = 1
) -> Trainer:
    config = ModelConfig(min_labels=min_labels, min_class_labels=min_class_labels)
    return Trainer(config, NAMES, snapshot_every)


def test_snapshot_round_trip_gives_identical_predictions_and_drivers() -> None:
    trainer = make_trainer()
    for ex in examples(400):
        trainer.learn(ex)
    original = trainer.models["saas"]
    copy = SegmentModel.from_snapshot(trainer.snapshot("saas"))
    assert (copy.segment, copy.version, copy.n_pos, copy.n_neg) == (
        "saas",
        original.version,
        original.n_pos,
        original.n_neg,
    )
    for x in probe_points():
        assert copy.predict(x) == original.predict(x)  # bit-identical, not approximately
        assert copy.explain(x) == original.explain(x)
    # The copy is independent: learning on it leaves the trainer's model alone.
    before = [original.predict(x) for x in probe_points()]
    for ex in examples(50, seed=9):
        copy.learn(dict(zip(FEATURE_NAMES, ex.features, strict=False)), ex.label)
    assert [original.predict(x) for x in probe_points()] == before


def test_restore_then_skipping_covered_examples_equals_an_uninterrupted_trainer() -> None:
    """The live resume protocol: restore the snapshot covering offsets <= k, learn the rest."""
    stream = examples(600)
    uninterrupted = make_trainer()
    for ex in stream:
        uninterrupted.learn(ex)

    first = make_trainer()
    covered = 349
    for ex in stream[: covered + 1]:
        first.learn(ex)
    snapshot = first.snapshot("saas")

    resumed = make_trainer()
    restored = resumed.restore("saas", [snapshot]).model
    assert restored.version == covered + 1
    assert resumed.models["saas"].version == covered + 1
    for offset, ex in enumerate(stream):
        if offset <= covered:
            continue  # inside the snapshot, as agents/trainer.py skips them
        resumed.learn(ex)
    model, reference = resumed.models["saas"], uninterrupted.models["saas"]
    assert model.version == reference.version == len(stream)
    assert (model.n_pos, model.n_neg) == (reference.n_pos, reference.n_neg)
    for x in probe_points():
        assert model.predict(x) == reference.predict(x)


def test_restore_takes_the_published_model_and_versions_continue_above_every_published_one() -> (
    None
):
    """A takeover: the new owner learned something of its own (or had an old model loaded at
    its start); the published snapshot replaces it and its next versions exceed the floor."""
    owner = make_trainer()
    stream = examples(300)
    for ex in stream[:100]:
        owner.learn(ex)
    published = owner.snapshot("saas")
    newcomer = make_trainer()
    for ex in examples(250, seed=7):  # what it loaded or learned before the rebalance
        newcomer.learn(ex)
    restored = newcomer.restore("saas", [published], floor=100)
    assert newcomer.models["saas"] is restored.model
    assert (restored.model.version, restored.model.n_learned) == (100, 100)
    # The newest snapshot (version 180) could not be read: versions still go above it.
    newcomer.restore("saas", [b"garbage", published], floor=180)
    newcomer.learn(stream[100])
    assert newcomer.models["saas"].version == 181


def test_unreadable_snapshots_are_skipped_and_counted() -> None:
    owner = make_trainer()
    for ex in examples(50):
        owner.learn(ex)
    good = owner.snapshot("saas")
    trainer = make_trainer()
    other_segment = make_trainer().snapshot("course")
    result = trainer.restore("saas", [b"not a pickle", other_segment, good], floor=50)
    assert result.skipped == 2 and result.model.n_learned == 50
    # Nothing readable: a fresh model, its versions above what was published.
    result = trainer.restore("saas", [b"\x80\x05junk"], floor=77)
    assert result.skipped == 1 and result.model.n_learned == 0
    assert trainer.learn(examples(1)[0]).segment == "saas"
    assert trainer.models["saas"].version == 78


def test_a_redelivered_example_is_not_learned_twice_also_after_a_takeover() -> None:
    stream = examples(200)
    owner = make_trainer()
    for ex in stream[:120]:
        owner.learn(ex)
    copy = Example(**{f: getattr(stream[5], f) for f in Example.__slots__})
    step = owner.learn(copy)  # the same example sent again with a new offset
    assert step.duplicate and owner.models["saas"].version == 120
    newcomer = make_trainer()
    newcomer.restore("saas", [owner.snapshot("saas")], floor=120)
    # A worker that crashed before committing sends examples 100..199 again.
    learned = [ex for ex in stream[100:] if not newcomer.learn(ex).duplicate]
    assert learned == stream[120:]
    assert newcomer.models["saas"].version == 200
    # Remembering is bounded: the oldest ids are forgotten first.
    small = Trainer(ModelConfig(), NAMES, remember=10)
    for ex in stream[:20]:
        small.learn(ex)
    assert small.learn(stream[15]).duplicate and not small.learn(stream[5]).duplicate


def test_close_reports_whether_labels_until_moved() -> None:
    trainer = make_trainer()
    first, later = examples(2)
    assert trainer.close(later) and not trainer.close(first) and not trainer.close(later)


def test_version_increases_with_every_example_and_reset() -> None:
    trainer = make_trainer()
    versions = []
    for ex in examples(120):
        trainer.learn(ex)
        versions.append(trainer.models["saas"].version)
    assert versions == list(range(1, 121))
    model = trainer.models["saas"]
    model.reset()
    assert model.version == 121 and model.n_learned == 0
    # Other segments are untouched.
    assert trainer.models["course"].version == 0 and trainer.models["docs"].version == 0


def test_snapshot_due_every_n_examples_per_segment() -> None:
    trainer = make_trainer(min_labels=10_000, snapshot_every=100)  # never ready
    due = [i for i, ex in enumerate(examples(350), 1) if trainer.learn(ex).snapshot_due]
    assert due == [100, 200, 300]
    # Counting is per segment: a course example does not advance saas.
    assert not trainer.learn(examples(1, segment="course")[0]).snapshot_due


def test_ready_switch_publishes_at_once_and_scorer_moves_from_rules_to_model() -> None:
    min_labels, min_class = 50, 20
    trainer = make_trainer(min_labels, snapshot_every=10_000, min_class_labels=min_class)
    scorer = Scorer(ModelConfig(min_labels=min_labels, min_class_labels=min_class), NAMES)
    x = probe_points(1)[0]
    assert scorer.score("saas", x).source == "rules"
    stream = examples(200)
    # Ready at the first example by which both the count and each class's count are reached.
    counts, ready_at = [0, 0], None
    for i, ex in enumerate(stream, 1):
        counts[ex.label] += 1
        if ready_at is None and i >= min_labels and min(counts) >= min_class:
            ready_at = i
    assert ready_at is not None and ready_at > min_labels  # the class count decides here

    became_ready = None
    for i, ex in enumerate(stream, 1):
        step = trainer.learn(ex)
        if step.snapshot_due:
            scorer.install_snapshot(trainer.snapshot("saas"))
            became_ready = i
            break
    model = trainer.models["saas"]
    assert became_ready is not None, "no snapshot published when the model became ready"
    assert became_ready == ready_at == model.n_learned
    assert model.ready(min_labels, min_class) and not model.ready(min_labels, min_class + 1)

    score = scorer.score("saas", x)
    assert (score.source, score.model_version) == ("model", ready_at)
    assert score.score == model.predict(x)
    assert score.drivers  # the linear default explains itself
    # Ready is announced once, not on every following example.
    assert not any(trainer.learn(ex).snapshot_due for ex in examples(100, seed=3))


def test_one_class_only_never_gets_ready() -> None:
    trainer = make_trainer(min_labels=20, snapshot_every=1000)
    negatives = [ex for ex in examples(400) if not ex.label][:100]
    assert len(negatives) == 100
    assert not any(trainer.learn(ex).snapshot_due for ex in negatives)
    assert not trainer.models["saas"].ready(20)


@pytest.mark.parametrize("older_first", [True, False])
def test_scorer_keeps_the_newest_of_two_snapshots(older_first: bool) -> None:
    trainer = make_trainer()
    stream = examples(200)
    for ex in stream[:100]:
        trainer.learn(ex)
    old = trainer.snapshot("saas")
    for ex in stream[100:]:
        trainer.learn(ex)
    new = trainer.snapshot("saas")
    scorer = Scorer(ModelConfig(min_labels=50), NAMES)
    for snap in (old, new) if older_first else (new, old):
        scorer.install_snapshot(snap)
    assert scorer.models["saas"].version == 200


def test_models_clip_inputs_as_configured() -> None:
    assert ModelConfig().clip_z == 3.0
    trainer = Trainer(ModelConfig(clip_z=2.5), NAMES)
    assert {m.clip_z for m in trainer.models.values()} == {2.5}
    assert all("ClipZ" in m.pipelines[0].steps for m in trainer.models.values())
    assert "ClipZ" not in Trainer(ModelConfig(clip_z=0.0), NAMES).models["saas"].pipelines[0].steps
    with pytest.raises(ValueError, match="clip_z"):
        ModelConfig(clip_z=-1.0)


def test_models_learn_with_the_configured_optimizer_and_regimes() -> None:
    config = ModelConfig(optimizer="adagrad", learning_rate=0.1, l2=0.001, regime_cuts=(2.0,))
    for m in Trainer(config, NAMES).models.values():
        assert (m.optimizer, m.learning_rate, m.l2, m.regime_cuts) == (
            "adagrad",
            0.1,
            0.001,
            (2.0,),
        )
        regression = m.pipelines[1]["LogisticRegression"]
        assert type(regression.optimizer).__name__ == "AdaGrad" and regression.l2 == 0.001
    with pytest.raises(ValueError, match="optimizer"):
        ModelConfig(optimizer="adam")
    with pytest.raises(ValueError, match="regime_cuts"):
        ModelConfig(regime_cuts=(3.0, 3.0))


def test_a_score_from_a_regime_that_learned_nothing_names_the_rules_drivers() -> None:
    config = ModelConfig(min_labels=20, min_class_labels=1, regime_cuts=(1.0, 3.0))
    trainer = Trainer(config, FEATURE_NAMES)
    rng = random.Random(4)
    for i in range(40):  # only rows of users active the day before: regime 0
        x = dict.fromkeys(FEATURE_NAMES, 0.0) | {"days_since_event": 0.0}
        x["watch_minutes_7d"] = rng.uniform(0, 300)
        trainer.learn(
            Example(
                f"u{i}", "course", 86400.0 * i, [x[n] for n in FEATURE_NAMES], i % 2 == 0, 0.5, 0
            )
        )
    scorer = Scorer(config, FEATURE_NAMES)
    scorer.install_snapshot(trainer.snapshot("course"))
    silent = dict.fromkeys(FEATURE_NAMES, 0.0) | {"days_since_event": 9.0}
    s = scorer.score("course", silent)
    assert s.source == "model" and s.score == pytest.approx(config.base_rates["course"], rel=1e-6)
    assert s.drivers and s.drivers == scorer.rules("course").explain(silent)


def test_a_snapshot_taken_mid_release_is_not_the_model_as_of_a_boundary_it_learned_past() -> None:
    # Live, a boundary's rows are spread over sweeps while labels due on its day go out; the
    # trainer may publish (every `snapshot_every` examples) before that release's close, so
    # the snapshot's `labels_until` is still the last close's. Rows of the boundary made after
    # it arrives must keep the model a replay uses: the one that learned nothing due after it.
    trainer = make_trainer(min_labels=50, snapshot_every=100)
    delay = ModelConfig().label_delay_s("saas")
    stream = examples(150)  # made_at 1e9 + i: due 1e9 + i + delay
    for ex in stream[:100]:
        trainer.learn(ex)
    trainer.close(stream[99])
    closed = trainer.snapshot("saas")
    boundary = stream[100].made_at + delay  # the next labels fall due on its day
    for ex in stream[100:]:
        trainer.learn(ex)  # no close yet
    mid_release = trainer.snapshot("saas")
    assert trainer.models["saas"].labels_until < boundary  # the close did not move it yet
    scorer = Scorer(ModelConfig(min_labels=50), NAMES)
    for snap in (closed, mid_release):
        scorer.install_snapshot(snap)
    assert scorer.models["saas"].version == 150  # event scores: the newest
    picked = scorer.as_of("saas", boundary)
    assert picked is not None and picked.version == 100
    assert scorer.as_of("saas", stream[-1].made_at + delay + 1).version == 150
