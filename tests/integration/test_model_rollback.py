"""`churnstream model rollback` on the real broker, with signed snapshots and two workers.

The workers learn a history (the trainer signs every snapshot). A forged, unsigned snapshot is
refused by both. Then `model rollback` republishes an older course version above the newest:
both running workers must install it within seconds and score with it (the `model_version` of
the scores published after it), and the trainer's next course snapshot must continue from the
rolled-back model, not from the model it had in memory.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import (
    ROOT,
    WorkerProcess,
    consume,
    end_offsets,
    input_topics,
    make_topics,
    produce,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.features import FEATURE_NAMES
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck, SnapshotRefused
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.devtools.simulator import SimConfig, generate

pytestmark = pytest.mark.kafka

KEY = "rollback-test-signing-key-0123456789"
CHECK = SnapshotCheck.of(KEY.encode(), False, FEATURE_NAMES)
MIN_LABELS = 20
ENV = {
    "CHURNSTREAM_MIN_LABELS": str(MIN_LABELS),
    "CHURNSTREAM_SNAPSHOT_EVERY": "20",
    "CHURNSTREAM_MODEL_SIGNING_KEY": KEY,
}
FIRST = SimConfig(users=40, days=24, seed=11)
DAY = 86400.0
SEGMENT = "course"
SWITCH_S = 15.0  # "within seconds": a worker reads churn.models with a 1 s poll
TIMEOUT = 120.0


def course_snapshots(bootstrap: str, topic: str) -> list[tuple[int, dict[str, bytes], Any]]:
    """Every course record of `topic` to its end: (offset, headers, model or refusal)."""
    end = end_offsets(bootstrap, [topic])[(topic, 0)]
    records = consume(bootstrap, topic, until=lambda rs: len(rs) >= end, timeout=TIMEOUT,
                      partitions=1)  # fmt: skip
    out = []
    for r in records:
        if r.key == SEGMENT.encode() and r.value:
            try:
                loaded: Any = CHECK.load(r.value, SEGMENT)
            except SnapshotRefused as e:
                loaded = e
            out.append((r.offset, dict(r.headers), loaded))
    return out


def models_of(snapshots: list[tuple[int, dict[str, bytes], Any]]) -> list[SegmentModel]:
    return [m for _, _, m in snapshots if isinstance(m, SegmentModel)]


def run_cli(bootstrap: str, prefix: str, *args: str) -> str:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")},
        **ENV,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "CHURNSTREAM_TOPIC_PREFIX": prefix,
    }
    churnstream = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "churnstream")
    done = subprocess.run(
        [churnstream, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_rollback_reaches_every_running_worker_and_the_trainer_continues_from_it(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    models, scores = settings.topic("churn.models"), settings.topic("churn.risk-scores")
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=ENV)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=ENV)
    workers = (a, b)
    try:
        with ThreadPoolExecutor(2) as pool:  # both start at once (about 10 s each)
            list(pool.map(WorkerProcess.start, workers))
        history = list(generate(FIRST))
        produce(kafka_bootstrap, sim_to_kafka(prefix, history))

        def two_ready() -> bool:
            ready = {m.version for m in models_of(course_snapshots(kafka_bootstrap, models))
                     if m.ready(MIN_LABELS)}  # fmt: skip
            return len(ready) >= 2

        wait_until(two_ready, TIMEOUT, "two ready course versions (signed: CHECK loads them)")
        wait_caught_up(a, input_topics(prefix), timeout=TIMEOUT)
        wait_caught_up(a, [settings.topic("churn.examples")], timeout=TIMEOUT)
        before = course_snapshots(kafka_bootstrap, models)
        published = models_of(before)
        assert len(published) == len(before), "the trainer signs every snapshot"
        newest = max(published, key=lambda m: m.version)
        target = min((m for m in published if m.ready(MIN_LABELS)), key=lambda m: m.version)
        assert target.version < newest.version and target.n_learned < newest.n_learned

        # A forged snapshot (unsigned, far newer) is refused by both workers and installs nothing.
        forged = newest.snapshot().replace(b'"version":', b'"version":1000000', 1)
        produce(kafka_bootstrap, [(models, SEGMENT.encode(), forged)])
        for w in workers:
            wait_until(
                lambda w=w: w.metric("churnstream_model_snapshots_unreadable_total",
                                     reason="unsigned") >= 1,
                30, "the forged snapshot to be refused",
            )  # fmt: skip

        began = time.monotonic()
        out = run_cli(
            kafka_bootstrap, prefix, "model", "rollback", "--segment", SEGMENT,
            "--to-version", str(target.version),
        )  # fmt: skip
        found = re.search(rf"rolled back to v{target.version}: published as v(\d+)", out)
        assert found, out
        rolled_version = int(found.group(1))
        assert rolled_version == newest.version + 1
        for w in workers:
            wait_until(
                lambda w=w: w.metric("churnstream_model_version", segment=SEGMENT)
                == rolled_version,
                SWITCH_S, f"every worker to install v{rolled_version}",
            )  # fmt: skip
        switched_s = time.monotonic() - began
        print(f"rollback command to both workers installing it: {switched_s:.1f} s")

        # Every worker scores with it: a login of each course user after the history's end.
        at = FIRST.start + FIRST.days * DAY + 60.0
        users = sorted({r.key for r in history
                        if r.value and r.value.get("segment") == SEGMENT and r.key})  # fmt: skip
        logins = [
            (f"{prefix}behaviour.logins", u.encode(),
             orjson.dumps({"event_id": f"after-rollback-{u}", "user_id": u, "ts": at}))
            for u in users
        ]  # fmt: skip
        produce(kafka_bootstrap, logins)
        wait_caught_up(a, input_topics(prefix), timeout=TIMEOUT)  # their scores are published
        ends = end_offsets(kafka_bootstrap, [scores])
        stamp = rfc3339(at)
        seen = consume(kafka_bootstrap, scores, timeout=TIMEOUT, partitions=settings.partitions,
                       until=lambda rs: len(rs) >= sum(ends.values()))  # fmt: skip
        after = [(r.partition, orjson.loads(r.value)) for r in seen]
        after = [(p, s) for p, s in after if s["ts"] == stamp and s["segment"] == SEGMENT]
        assert len({p for p, _ in after}) >= 2, after  # users of both workers' partitions
        assert {s["source"] for _, s in after} == {"model"}
        # The rolled-back model (a later version only if the trainer published one since).
        versions = {s["model_version"] for _, s in after}
        assert rolled_version in versions and min(versions) == rolled_version, versions
        for w in workers:  # each worker scored some of them (it owns some partitions)
            assert w.metric("churnstream_scores_total", segment=SEGMENT, source="model") > 0

        # The trainer continues from the rolled-back model: labels of a later history.
        later = SimConfig(users=40, days=10, seed=12, start=FIRST.start + FIRST.days * DAY)
        produce(kafka_bootstrap, sim_to_kafka(prefix, generate(later)))

        def next_snapshot() -> SegmentModel | None:
            newer = [m for m in models_of(course_snapshots(kafka_bootstrap, models))
                     if m.version > rolled_version]  # fmt: skip
            return min(newer, key=lambda m: m.version) if newer else None

        following = wait_until(next_snapshot, TIMEOUT, "the trainer's next course snapshot")
    except BaseException:
        print(f"--- worker a log tail ---\n{a.log_tail()}\n--- worker b ---\n{b.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()
    # Its learned examples start with the rolled-back model's; none learned only by the
    # versions rolled back from came back.
    assert following.learned_ids[: len(target.learned_ids)] == target.learned_ids
    dropped = set(newest.learned_ids) - set(target.learned_ids)
    assert dropped and not dropped & set(following.learned_ids)
    if following.n_resets == target.n_resets:  # no drift reset: the counts add up too
        learned_since = len(following.learned_ids) - len(target.learned_ids)
        assert following.n_learned == target.n_learned + learned_since
