"""Learning improves: on a simulated history, via model.replay (the live code path).

For each segment, over the labelled examples in the order the trainer learns them:
- on the second half, the prequential AUC (scored by the current model just before it learns
  the example) beats a frozen copy of the model as it was after YOUNG examples (the same
  examples, so the comparison is not confounded by which users churn early), and
- beats the rules score on the same second-half examples.
The simulator's oracle AUC (its hidden hazard vs the same labels) is reported alongside; the
full-size numbers (5,000 users x 120 days) come from bench/model_quality.py.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.labels import Example
from churnstream.model.learner import SegmentModel
from churnstream.model.quality import exact_roc_auc
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.model.trainer import Learned, Trainer
from churnstream.stream.devtools.simulator import (
    GroundTruth,
    SimConfig,
    generate,
    ground_truth,
    write_jsonl,
)
from churnstream.stream.settings import Settings

SIM = SimConfig(users=250, days=60, seed=1)
YOUNG = 250  # examples a segment's model has learned when its frozen copy is taken
DAY_S = 86400.0


class RecordingTrainer(Trainer):
    """A `Trainer` that keeps each example with its prequential and rules scores."""

    def __init__(self, replay: Replay) -> None:
        base = replay.trainer
        super().__init__(base.config, base.feature_names, base.snapshot_every)
        self._scorer = replay.scorer
        self.seen: dict[str, list[tuple[Example, float, float, float]]] = defaultdict(list)
        self.young: dict[str, SegmentModel] = {}

    def learn(self, example: Example) -> Learned:
        seg = example.segment
        model = self.models[seg]
        x = dict(zip(self.feature_names, example.features, strict=False))
        rules = self._scorer.rules(seg).predict(x)
        if seg not in self.young and len(self.seen[seg]) >= YOUNG:
            self.young[seg] = SegmentModel.from_snapshot(model.snapshot())
        young = self.young[seg].predict(x) if seg in self.young else float("nan")
        self.seen[seg].append((example, model.predict(x), rules, young))
        return super().learn(example)


def auc(rows: list[tuple[Example, float, float, float]], which: int) -> float:
    """AUC of column `which` (1 prequential, 2 rules, 3 young frozen model) against labels."""
    value = exact_roc_auc([r[which] for r in rows], [r[0].label for r in rows])
    assert value is not None, "one class only: the simulated history is too small"
    return value


def oracle_auc(truth: GroundTruth, rows: list[tuple[Example, float, float, float]]) -> float:
    scores, labels = [], []
    for ex, *_ in rows:
        hazard = truth.users[ex.user_id].hazard
        day = int((ex.made_at - truth.start) // DAY_S)
        if 0 <= day < len(hazard) and hazard[day] is not None:
            scores.append(hazard[day])
            labels.append(ex.label)
    value = exact_roc_auc(scores, labels)
    assert value is not None
    return value


@pytest.fixture(scope="module")
def learned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    path = tmp_path_factory.mktemp("quality") / "sim.jsonl"
    write_jsonl(generate(SIM), path)
    settings = Settings.from_env({})  # production defaults: min_labels 200, snapshot 500
    replay = Replay(
        engine_config(settings), alert_policy(settings), snapshot_every=settings.snapshot_every
    )
    trainer = replay.trainer = RecordingTrainer(replay)
    replay.run(read_records(path))
    truth = ground_truth(SIM)
    table: dict[str, dict[str, Any]] = {}
    for segment, rows in trainer.seen.items():
        second = rows[len(rows) // 2 :]
        table[segment] = {
            "examples": len(rows),
            "positives": sum(r[0].label for r in rows),
            "young_model_second_half": auc(second, 3),
            "second_half": auc(second, 1),
            "rules_second_half": auc(second, 2),
            "oracle": oracle_auc(truth, rows),
        }
    print(f"\n{SIM.users} users x {SIM.days} days (prequential AUC, rules, simulator oracle)")
    for segment, row in sorted(table.items()):
        print(f"  {segment:7} " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else
                                            f"{k} {v}" for k, v in row.items()))  # fmt: skip
    return table


@pytest.mark.parametrize("segment", ["course", "saas", "docs"])
def test_learning_beats_the_young_model(learned: dict[str, dict[str, Any]], segment: str) -> None:
    row = learned[segment]
    assert row["positives"] >= 30, row
    assert row["second_half"] > row["young_model_second_half"], row


@pytest.mark.parametrize("segment", ["course", "saas", "docs"])
def test_model_beats_rules(learned: dict[str, dict[str, Any]], segment: str) -> None:
    row = learned[segment]
    assert row["second_half"] > row["rules_second_half"], row


@pytest.mark.parametrize("segment", ["course", "saas", "docs"])
def test_oracle_is_reported_and_informative(
    learned: dict[str, dict[str, Any]], segment: str, record_property: Any
) -> None:
    row = learned[segment]
    record_property(f"{segment}_auc", row)
    assert 0.6 < row["oracle"] <= 1.0, row
