"""Model snapshots as data: round trip, and nothing on `churn.models` runs code when loaded."""

from __future__ import annotations

import base64
import json
import math
import os
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from churnstream.model import snapshot_codec
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_codec import SnapshotError

NAMES = ("days_since_event", "watch_minutes_7d", "noise")


def trained(
    estimator: str = "logistic", n: int = 500, clip_z: float = 3.0, **settings: Any
) -> SegmentModel:
    m = SegmentModel(
        "saas", estimator=estimator, base_rate=0.04, feature_names=NAMES, clip_z=clip_z, **settings
    )
    rng = random.Random(7)
    for _ in range(n):
        x = {"days_since_event": rng.uniform(0, 30), "watch_minutes_7d": rng.uniform(0, 300)}
        x["noise"] = rng.gauss(0, 1)
        m.learn(x, x["days_since_event"] > 20)
    m.labels_until = 1_700_000_000.5
    m.learned_ids = (1, 2**64 - 1, 12345)
    return m


class _RunsCommand:
    """Unpickling this runs a shell command that creates `marker` (the attack)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


# The default of ModelConfig (AdaGrad, three recency regimes) and the pipeline of before.
REGIMES = {"optimizer": "adagrad", "learning_rate": 0.05, "regime_cuts": (1.0, 3.0)}
SETTINGS = [{}, REGIMES, {**REGIMES, "l2": 0.01}, {"optimizer": "sgd", "regime_cuts": (5.0,)}]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("clip_z", [0.0, 3.0])
def test_round_trip_keeps_predictions_drivers_metadata_and_learning(
    clip_z: float, settings: dict[str, Any]
) -> None:
    m = trained(clip_z=clip_z, **settings)
    clone = SegmentModel.from_snapshot(m.snapshot())
    rng = random.Random(11)
    for _ in range(100):
        x = {"days_since_event": rng.uniform(-50, 80), "watch_minutes_7d": rng.uniform(0, 900)}
        x["noise"] = rng.gauss(0, 3)
        assert clone.predict(x) == m.predict(x)
        assert clone.explain(x) == m.explain(x)
        # the trainer's path learns on both; they must stay equal (optimizer state kept)
        m.learn(x, x["noise"] > 1)
        clone.learn(x, x["noise"] > 1)
    for attr in ("segment", "estimator", "base_rate", "feature_names", "seed", "clip_z"):
        assert getattr(clone, attr) == getattr(m, attr)
    for attr in ("optimizer", "learning_rate", "l2", "regime_cuts"):
        assert getattr(clone, attr) == getattr(m, attr)
    for attr in ("version", "n_pos", "n_neg", "n_resets"):
        assert getattr(clone, attr) == getattr(m, attr)
    assert SegmentModel.from_snapshot(m.snapshot()).snapshot() == m.snapshot()


def test_snapshot_is_a_readable_json_document_of_the_parameters() -> None:
    m = trained()
    doc = json.loads(m.snapshot())
    assert (doc["kind"], doc["format"], doc["segment"]) == ("churnstream.segment-model", 3, "saas")
    assert doc["feature_names"] == list(NAMES)
    assert (doc["optimizer"], doc["learning_rate"], doc["regime_cuts"]) == ("sgd", 0.01, [])
    (state,) = doc["logistic"]
    assert set(state["weights"]) == set(NAMES)
    assert state["scaler"]["counts"] == dict.fromkeys(NAMES, 500)
    assert state["clip_limit"] == 3.0
    assert doc["labels_until"] == 1_700_000_000.5
    assert SegmentModel.from_snapshot(m.snapshot()).learned_ids == (1, 2**64 - 1, 12345)


def test_each_regime_has_its_own_pipeline_in_the_document() -> None:
    m = trained(**REGIMES)
    doc = json.loads(m.snapshot())
    assert (doc["optimizer"], doc["regime_cuts"]) == ("adagrad", [1.0, 3.0])
    states = doc["logistic"]
    assert len(states) == 3 and all(set(s["g2"]) == set(NAMES) for s in states)
    # days_since_event uniform in [0, 30): regimes of 1, 2 and 27 days' width
    counts = [s["scaler"]["counts"]["noise"] for s in states]
    assert sum(counts) == 500 and counts[0] < counts[1] < counts[2]
    # the regimes learned different things: the same row scores differently in each
    x = {"watch_minutes_7d": 100.0, "noise": 0.0}
    by_regime = [m.predict({**x, "days_since_event": d}) for d in (0.5, 2.0, 10.0)]
    assert len(set(by_regime)) == 3


def _as_format_2(m: SegmentModel) -> bytes:
    """`m` (one SGD pipeline) as format 2 wrote it: no optimizer, L2 or regime fields, the
    pipeline's state an object with the SGD rate and step count."""
    doc = json.loads(m.snapshot())
    doc["format"] = 2
    for key in ("optimizer", "learning_rate", "l2", "regime_cuts"):
        del doc[key]
    (state,) = doc["logistic"]
    state["sgd"] = {"lr": m.learning_rate, "n_iterations": state.pop("n_iterations")}
    doc["logistic"] = state
    return json.dumps(doc).encode()


def test_a_format_2_snapshot_still_loads_and_keeps_learning_the_same() -> None:
    m = trained(learning_rate=0.02)
    old = _as_format_2(m)
    assert b'"sgd"' in old and b'"format": 2' in old
    clone = SegmentModel.from_snapshot(old)
    assert (clone.optimizer, clone.learning_rate, clone.l2, clone.regime_cuts) == (
        "sgd",
        0.02,
        0.0,
        (),
    )
    rng = random.Random(5)
    for _ in range(50):
        x = {"days_since_event": rng.uniform(0, 40), "watch_minutes_7d": rng.uniform(0, 400)}
        x["noise"] = rng.gauss(0, 2)
        assert clone.predict(x) == m.predict(x)
        assert clone.explain(x) == m.explain(x)
        m.learn(x, x["noise"] > 0)
        clone.learn(x, x["noise"] > 0)
    # written again, it is a format-3 document of the same model
    assert clone.snapshot() == m.snapshot()


def test_a_model_that_covers_no_label_yet_round_trips() -> None:
    m = SegmentModel("docs", base_rate=0.04, feature_names=NAMES, clip_z=3.0)
    clone = SegmentModel.from_snapshot(m.snapshot())
    assert clone.labels_until == -math.inf and clone.learned_ids == ()
    assert clone.predict({}) == m.predict({})


def test_a_crafted_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    attack = pickle.dumps(_RunsCommand(marker))
    with pytest.raises(SnapshotError, match="pickled snapshot refused"):
        SegmentModel.from_snapshot(attack)
    assert not marker.exists()
    # the test can fail: the same bytes do run the command when unpickled
    pickle.loads(attack)
    assert marker.exists()


def test_a_pickle_inside_the_document_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    doc = json.loads(trained("hoeffding", n=50).snapshot())
    doc["pickle"] = base64.b64encode(pickle.dumps(_RunsCommand(marker))).decode()
    with pytest.raises(SnapshotError, match="holds a pickle, refused"):
        SegmentModel.from_snapshot(json.dumps(doc).encode())
    assert not marker.exists()
    # a logistic document naming a pickle is rebuilt from its parameters, the pickle ignored
    doc = json.loads(trained(n=50).snapshot())
    doc["pickle"] = base64.b64encode(pickle.dumps(_RunsCommand(marker))).decode()
    SegmentModel.from_snapshot(json.dumps(doc).encode(), allow_pickle=True)
    assert not marker.exists()


def test_tree_models_load_only_with_the_opt_in() -> None:
    m = trained("hoeffding", n=300)
    with pytest.raises(SnapshotError, match="CHURNSTREAM_TRUST_PICKLED_SNAPSHOTS"):
        SegmentModel.from_snapshot(m.snapshot())
    clone = SegmentModel.from_snapshot(m.snapshot(), allow_pickle=True)
    x = {"days_since_event": 25.0, "watch_minutes_7d": 10.0, "noise": 0.0}
    assert clone.predict(x) == m.predict(x)


def _edited(**changes: Any) -> bytes:
    doc = json.loads(trained(n=20, **REGIMES).snapshot())
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for key in parents:
            target = target[int(key) if key.isdigit() else key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value
    return json.dumps(doc).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "pickled snapshot refused"),
        (b"{not json", "not valid JSON"),
        (b'{"kind": "other"}', "not a churnstream model snapshot"),
        (_edited(format=4), "format 4 not supported"),
        (_edited(format=2), "expected an object"),  # a format-3 body under format 2
        (_edited(version=-1), "expected a count"),
        (_edited(n_pos=True), "expected a count"),
        (_edited(base_rate="0.1"), "expected a finite number"),
        (_edited(logistic__1__intercept=None), "expected a finite number"),
        (_edited(logistic__2__weights__noise=[1]), "expected a finite number"),
        (_edited(logistic__0__g2__noise="x"), "expected a finite number"),
        (_edited(regime_cuts=[3.0, 1.0]), "regime_cuts must increase"),
        (_edited(regime_cuts=[1.0]), "one pipeline per regime"),
        (_edited(optimizer="adam"), "unknown optimizer"),
        (_edited(feature_names=["a", 1]), "feature_names must be a list of strings"),
        (_edited(logistic__0__clip_limit=None), "clip_limit does not match clip_z"),
        (_edited(learned_ids="AAA="), "8-byte ids"),
        (_edited(logistic=_DELETE), "malformed snapshot: KeyError"),
        (_edited(estimator="svm"), "unknown estimator"),
    ],
)
def test_malformed_documents_are_refused_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotError, match=message) as caught:
        snapshot_codec.decode(data)
    assert "\n" not in str(caught.value)
