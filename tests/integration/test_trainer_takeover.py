"""The trainer's partition moves to another worker, on the real broker: nothing is forgotten.

Two workers; the one that owns `churn.examples` (the trainer) is killed with SIGKILL once it has
published snapshots. The survivor takes the partition over: it must continue from the published
models (restored on assignment, not from what it loaded at its own start, which was nothing),
so every snapshot it publishes carries a higher version than any published before and has
learned at least as many labels.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from workers import (
    WorkerProcess,
    consume,
    end_offsets,
    make_topics,
    produce,
    sim_to_kafka,
    wait_until,
)

from churnstream.model.learner import SegmentModel
from churnstream.stream.devtools.simulator import SimConfig, generate

pytestmark = pytest.mark.kafka

# A dead member keeps its partitions until its session times out; 6 s is the broker's minimum.
ENV = {
    "BROKER_SESSION_TIMEOUT": "6",
    "BROKER_HEARTBEAT_INTERVAL": "1",
    "CHURNSTREAM_MIN_LABELS": "50",
    "CHURNSTREAM_SNAPSHOT_EVERY": "50",
}
FIRST = SimConfig(users=60, days=40, seed=11)
DAY = 86400.0
TIMEOUT = 120.0


def _learned(worker: WorkerProcess) -> float:
    return worker.metric("churnstream_labels_learned_total")


def _snapshots(bootstrap: str, topic: str, at_least: int) -> list[SegmentModel]:
    records = consume(
        bootstrap, topic, until=lambda rs: len(rs) >= at_least, timeout=TIMEOUT, partitions=1
    )
    return [SegmentModel.from_snapshot(r.value) for r in records if r.value]


def test_the_survivor_continues_the_published_models_when_the_trainer_moves(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    models = settings.topic("churn.models")
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=ENV)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=ENV)
    try:
        a.start()
        b.start()
        produce(kafka_bootstrap, sim_to_kafka(prefix, generate(FIRST)))
        wait_until(lambda: end_offsets(kafka_bootstrap, [models])[(models, 0)] >= 6, TIMEOUT,
                   "snapshots from the first trainer")  # fmt: skip
        owner, survivor = (a, b) if _learned(a) > 0 else (b, a)
        assert _learned(survivor) == 0  # one partition: one trainer
        owner.kill()
        published = end_offsets(kafka_bootstrap, [models])[(models, 0)]
        before = _snapshots(kafka_bootstrap, models, published)
        top = {m.segment: (m.version, m.n_learned) for m in before}
        for m in before:
            top[m.segment] = max(top[m.segment], (m.version, m.n_learned))
        # Labels keep coming: a later history of the same users.
        later = SimConfig(users=60, days=20, seed=12, start=FIRST.start + FIRST.days * DAY)
        produce(kafka_bootstrap, sim_to_kafka(prefix, generate(later)))
        wait_until(lambda: _learned(survivor) > 0, TIMEOUT, "the survivor to train")
        after = _snapshots(kafka_bootstrap, models, published + 3)[len(before) :]
    except BaseException:
        print(f"--- worker a log tail ---\n{a.log_tail()}\n--- worker b ---\n{b.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()
    assert {m.segment for m in after} & set(top), "the survivor published a model it took over"
    for m in after:
        version, learned = top.get(m.segment, (0, 0))
        assert m.version > version, (m.segment, m.version, version)
        assert m.n_learned >= learned, (m.segment, m.n_learned, learned)
