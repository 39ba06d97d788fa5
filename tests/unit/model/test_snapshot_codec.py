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


def trained(estimator: str = "logistic", n: int = 500, clip_z: float = 3.0) -> SegmentModel:
    m = SegmentModel(
        "saas", estimator=estimator, base_rate=0.04, feature_names=NAMES, clip_z=clip_z
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


@pytest.mark.parametrize("clip_z", [0.0, 3.0])
def test_round_trip_keeps_predictions_drivers_metadata_and_learning(clip_z: float) -> None:
    m = trained(clip_z=clip_z)
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
    for attr in ("version", "n_pos", "n_neg", "n_resets"):
        assert getattr(clone, attr) == getattr(m, attr)
    assert SegmentModel.from_snapshot(m.snapshot()).snapshot() == m.snapshot()


def test_snapshot_is_a_readable_json_document_of_the_parameters() -> None:
    m = trained()
    doc = json.loads(m.snapshot())
    assert (doc["kind"], doc["format"], doc["segment"]) == ("churnstream.segment-model", 2, "saas")
    assert doc["feature_names"] == list(NAMES)
    state = doc["logistic"]
    assert set(state["weights"]) == set(NAMES)
    assert state["scaler"]["counts"] == dict.fromkeys(NAMES, 500)
    assert state["clip_limit"] == 3.0
    assert doc["labels_until"] == 1_700_000_000.5
    assert SegmentModel.from_snapshot(m.snapshot()).learned_ids == (1, 2**64 - 1, 12345)


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
    doc = json.loads(trained(n=20).snapshot())
    for path, value in changes.items():
        target = doc
        *parents, last = path.split("__")
        for key in parents:
            target = target[key]
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
        (_edited(format=3), "format 3 not supported"),
        (_edited(version=-1), "expected a count"),
        (_edited(n_pos=True), "expected a count"),
        (_edited(base_rate="0.1"), "expected a finite number"),
        (_edited(logistic__intercept=None), "expected a finite number"),
        (_edited(logistic__weights__noise=[1]), "expected a finite number"),
        (_edited(feature_names=["a", 1]), "feature_names must be a list of strings"),
        (_edited(logistic__clip_limit=None), "clip_limit does not match clip_z"),
        (_edited(learned_ids="AAA="), "8-byte ids"),
        (_edited(logistic=_DELETE), "malformed snapshot: KeyError"),
        (_edited(estimator="svm"), "unknown estimator"),
    ],
)
def test_malformed_documents_are_refused_with_one_line(data: bytes, message: str) -> None:
    with pytest.raises(SnapshotError, match=message) as caught:
        snapshot_codec.decode(data)
    assert "\n" not in str(caught.value)
