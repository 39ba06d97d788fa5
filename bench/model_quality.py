"""Model quality on a simulated history: AUC per segment against the simulator's oracle.

Run: .venv/bin/python bench/model_quality.py [--users 5000 --days 120 --seed 0]

Generates the history to a JSONL file (kept under --workdir, reused when it exists), replays
it with `model.replay` (the live code path, no Kafka) and prints per segment:
- prequential AUC: each labelled example scored by the trainer's current model just before it
  learns it (all examples, not just the quality window);
- published AUC: the score that was actually published when the snapshot was made (an older
  model, installed every `snapshot_every` examples, as live workers see it);
- rules AUC: the transparent rules score on the same examples;
- oracle AUC: the simulator's honest oracle for that user and day (`UserTruth.oracle`: the
  probability of churn within the horizon given only the hidden state at the start of the day)
  against the same labels, roughly the ceiling for a model that only sees events. The oracle
  counts churn per the simulator's default label mode (course: cancel or silent dropout), so
  where the product labels cancels only, silent dropouts lower it;
plus replay events/s (file read, validation, features, labels, learning, scoring, alerts).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.labels import Example
from churnstream.model.quality import exact_roc_auc
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.model.trainer import Learned, Trainer
from churnstream.stream.contract.events import DAY_S
from churnstream.stream.devtools.simulator import (
    GroundTruth,
    SimConfig,
    generate,
    ground_truth,
    write_jsonl,
)
from churnstream.stream.settings import Settings

TARGET_AUC = 0.80


class RecordingTrainer(Trainer):
    """A `Trainer` that keeps every example with its prequential and rules scores."""

    def __init__(self, replay: Replay) -> None:
        base = replay.trainer
        super().__init__(base.config, base.feature_names, base.snapshot_every)
        self._scorer = replay.scorer
        self.seen: dict[str, list[tuple[Example, float, float]]] = defaultdict(list)

    def learn(self, example: Example) -> Learned:
        model = self.models[example.segment]
        x = dict(zip(self.feature_names, example.features, strict=False))
        rules = self._scorer.rules(example.segment).predict(x)
        self.seen[example.segment].append((example, model.predict(x), rules))
        return super().learn(example)


def oracle_scores(
    truth: GroundTruth, examples: list[tuple[Example, float, float]]
) -> tuple[list[float], list[bool], int]:
    """Ground-truth oracle of each example's user and local day; also how many had none."""
    scores: list[float] = []
    labels: list[bool] = []
    missing = 0
    for ex, _, _ in examples:
        user = truth.users.get(ex.user_id)
        if user is None:
            missing += 1
            continue
        day = int((ex.made_at - truth.start + user.utc_offset_h * 3600.0) // DAY_S)
        o = user.oracle[day] if 0 <= day < len(user.oracle) else None
        if o is None:
            missing += 1
            continue
        scores.append(o)
        labels.append(ex.label)
    return scores, labels, missing


def segment_rows(trainer: RecordingTrainer, truth: GroundTruth) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for seg, seen in sorted(trainer.seen.items()):
        labels = [ex.label for ex, _, _ in seen]
        half = len(seen) // 2
        by_model = [e for e in seen if e[0].model_version > 0]  # published by a model
        o_scores, o_labels, missing = oracle_scores(truth, seen)
        rows[seg] = {
            "examples": len(seen),
            "positives": sum(labels),
            "prequential_auc": exact_roc_auc([p for _, p, _ in seen], labels),
            "prequential_auc_2nd_half": exact_roc_auc(
                [p for _, p, _ in seen[half:]], labels[half:]
            ),
            "published_auc": exact_roc_auc([ex.score for ex, _, _ in seen], labels),
            "published_model_auc": exact_roc_auc(
                [ex.score for ex, _, _ in by_model], [ex.label for ex, _, _ in by_model]
            ),
            "rules_auc": exact_roc_auc([r for _, _, r in seen], labels),
            "oracle_auc": exact_roc_auc(o_scores, o_labels),
            "oracle_missing": missing,
        }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp"))
    args = parser.parse_args()

    sim = SimConfig(users=args.users, days=args.days, seed=args.seed)
    path = args.workdir / f"churnstream-sim-{args.users}u-{args.days}d-s{args.seed}.jsonl"
    if not path.exists():
        began = time.perf_counter()
        n = write_jsonl(generate(sim), path)
        print(f"generated {n:,} records in {time.perf_counter() - began:.0f} s -> {path}")
    truth = ground_truth(sim)

    settings = Settings.from_env({})
    replay = Replay(
        engine_config(settings), alert_policy(settings), snapshot_every=settings.snapshot_every
    )
    trainer = replay.trainer = RecordingTrainer(replay)
    began = time.perf_counter()
    report = replay.run(read_records(path))
    elapsed = time.perf_counter() - began

    print(
        f"\n{args.users:,} users x {args.days} days, seed {args.seed}: {report['events']:,} "
        f"events replayed in {elapsed:.0f} s = {report['events'] / elapsed:,.0f} events/s "
        f"(one process)"
    )

    def f(v: float | None) -> str:
        return "   -" if v is None else f"{v:.3f}"

    print(
        f"\n{'segment':8} {'examples':>9} {'pos':>6} {'preq':>6} {'preq2':>6} {'publ':>6} "
        f"{'publM':>6} {'rules':>6} {'oracle':>6} {'>=0.80':>6}"
    )
    for seg, r in segment_rows(trainer, truth).items():
        ok = r["prequential_auc"] is not None and r["prequential_auc"] >= TARGET_AUC
        print(
            f"{seg:8} {r['examples']:>9,} {r['positives']:>6,} {f(r['prequential_auc']):>6} "
            f"{f(r['prequential_auc_2nd_half']):>6} {f(r['published_auc']):>6} "
            f"{f(r['published_model_auc']):>6} {f(r['rules_auc']):>6} "
            f"{f(r['oracle_auc']):>6} {'yes' if ok else 'NO':>6}"
        )
    print(
        "\npreq = prequential AUC over all examples, preq2 = its second half, publ = AUC of the "
        "published scores (publM: only those a model made, not the rules), oracle = simulator "
        "oracle (hidden state at the start of the day) vs the same labels."
    )


if __name__ == "__main__":
    main()
