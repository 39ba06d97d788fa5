"""The upgrade procedure of docs/production.md: a rolling restart of two RocksDB workers while
input flows loses and doubles nothing.

Two workers share the partitions; a history is produced in four parts; after the first, worker
a is stopped (SIGTERM), the second part is produced while it is down, and it is started again on
its data directory; then the same for worker b with the third part; both take the fourth. Then:
every user's features equal one clean pass over the records (nothing lost or applied twice),
and each user has as many event scores as in an offline replay of the same records, one per
valid event (no output published twice or lost). Their times are not compared: while a worker
catches up on what arrived during a restart, a user's late event may be applied after a later
one (event-time order during catch-up is best effort, README "Known limitations"), and its
score then carries the later time (seen: 2 of about 4,500 scores).
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import orjson
import pytest
from workers import (
    WorkerProcess,
    assert_state_matches,
    consume,
    input_topics,
    make_topics,
    produce,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl

pytestmark = pytest.mark.kafka

FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}
ENV = {**FAST_FAILOVER, "CHURNSTREAM_STORE": "rocksdb://"}
SIM = SimConfig(users=250, days=3, seed=25, bad_fraction=0.02)


def _consumed(worker: WorkerProcess) -> float:
    return worker.metric("churnstream_records_consumed_total")


def _event_scores(values: list[bytes]) -> Counter[str]:
    """Event scores per user (their times can differ from a replay's: see the module doc)."""
    scores = [orjson.loads(v) for v in values]
    return Counter(s["user_id"] for s in scores if s["trigger"] == "event")


def test_rolling_restart_of_two_workers_loses_and_doubles_nothing(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    sims = list(generate(SIM))
    records = sim_to_kafka(prefix, sims)
    quarter = -(-len(records) // 4)
    parts = [records[i : i + quarter] for i in range(0, len(records), quarter)]
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=ENV)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=ENV)
    try:
        a.start()
        b.start()
        produce(kafka_bootstrap, parts[0])
        wait_until(lambda: _consumed(a) > 0 and _consumed(b) > 0, 90, "both workers consuming")
        for worker, part in ((a, parts[1]), (b, parts[2])):
            worker.stop()  # SIGTERM, as systemd or a deploy tool stops it
            produce(kafka_bootstrap, part)  # input keeps flowing while it is down
            worker.start()
            up = lambda w=worker: w.metric("churnstream_worker_up") == 1  # noqa: E731
            wait_until(up, 120, "the restarted worker assigned")
        # Both restarted workers take their share of what comes next (metrics restart at 0).
        produce(kafka_bootstrap, parts[3])
        wait_until(lambda: _consumed(a) > 0 and _consumed(b) > 0, 120, "both consuming again")
        wait_caught_up(a, input_topics(prefix), timeout=180)
        assert_state_matches(a, sims)
    except BaseException:
        print(f"--- worker a log tail ---\n{a.log_tail()}\n--- worker b ---\n{b.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()

    # The same records offline: one event score per valid event, in any order.
    offline = io.BytesIO()
    replay = Replay(
        engine_config(settings),
        alert_policy(settings),
        snapshot_every=settings.snapshot_every,
        scores_out=offline,
    )
    history = tmp_path / "history.jsonl"
    write_jsonl(sims, history)
    replay.run(read_records(history))
    expected = _event_scores(offline.getvalue().splitlines())
    n = sum(expected.values())
    published = consume(
        kafka_bootstrap,
        settings.topic("churn.risk-scores"),
        until=lambda rs: len(rs) >= n,
        timeout=120,
        partitions=settings.partitions,
    )
    live = _event_scores([r.value for r in published])
    assert live == expected, (
        f"doubled: {sum((live - expected).values())}, missing: {sum((expected - live).values())}"
    )
