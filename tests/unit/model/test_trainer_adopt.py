"""The trainer continues from an operator's snapshot (import, rollback) and from signed ones."""

from __future__ import annotations

import random

from churnstream.model.config import ModelConfig
from churnstream.model.labels import Example
from churnstream.model.snapshot_signing import SnapshotCheck
from churnstream.model.trainer import Trainer

NAMES = ("days_since_event", "trend_active_days")
KEY = b"model-signing-key-0123456789"


def examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        silent, trend = rng.uniform(0, 20), rng.uniform(0, 2)
        churns = silent - 6 * trend + rng.gauss(0, 2) > 8
        out.append(Example(f"u{seed}-{i}", "saas", 1.0e9 + i, [silent, trend], churns, 0.1, 0))
    return out


def make_trainer(check: SnapshotCheck | None = None) -> Trainer:
    return Trainer(ModelConfig(min_labels=20), NAMES, 1000, check=check)


def test_an_adopted_rollback_replaces_the_model_and_learning_continues_from_it() -> None:
    trainer = make_trainer()
    stream = examples(160)
    for ex in stream[:50]:
        trainer.learn(ex)
    old = trainer.snapshot("saas")  # v50, the version an operator goes back to
    for ex in stream[50:150]:
        trainer.learn(ex)
    trainer.close(stream[149])
    until = trainer.models["saas"].labels_until
    # The operator republished v50's content as v151 (above the newest, v150).
    rolled = make_trainer()
    rolled.restore("saas", [old])
    rolled.models["saas"].version = 151
    behind = trainer.adopt("saas", rolled.snapshot("saas"), floor=150)
    model = trainer.models["saas"]
    assert not behind and (model.version, model.n_learned) == (151, 50)
    assert model.labels_until == until  # labels already covered are not waited for again
    trainer.learn(stream[150])
    assert (model.version, model.n_learned) == (152, 51)
    # Examples the rolled-back model learned are still recognised as learned.
    assert trainer.learn(stream[10]).duplicate


def test_an_adopted_snapshot_hidden_by_a_later_one_goes_above_it_and_must_be_published() -> None:
    trainer = make_trainer()
    for ex in examples(30):
        trainer.learn(ex)
    imported = trainer.snapshot("saas")  # v30, while the trainer published v80 after it
    other = make_trainer()
    assert other.adopt("saas", imported, floor=80)
    assert other.models["saas"].version == 81  # above v80, which workers installed already
    other.learn(examples(1, seed=9)[0])
    assert other.models["saas"].version == 82


def test_with_a_key_the_trainer_restores_only_signed_snapshots_and_says_why() -> None:
    check = SnapshotCheck.of(KEY, False, None)
    owner = make_trainer(check)
    for ex in examples(40):
        owner.learn(ex)
    unsigned = owner.snapshot("saas")
    signed = check.sign(unsigned)
    forged = SnapshotCheck.of(b"not-the-key-0123456789", False, None).sign(unsigned)
    newcomer = make_trainer(check)
    restored = newcomer.restore("saas", [unsigned, forged, signed], floor=40)
    assert restored.reasons == ("unsigned", "bad_signature") and restored.skipped == 2
    assert restored.model.n_learned == 40
