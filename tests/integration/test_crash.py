"""Crash safety on the real broker: kill -9 and restarts never lose or double-count an event.

The reference is one clean in-process pass of the same records (`workers.clean_pass`): after
all input is committed, every user's features served by the read API must equal it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from workers import (
    WorkerProcess,
    assert_state_matches,
    end_offsets,
    input_topics,
    make_topics,
    produce,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.stream.devtools.simulator import SimConfig, SimRecord, generate

pytestmark = pytest.mark.kafka

# A dead member keeps its partitions until its session times out; 6 s is the broker's minimum
# (group.min.session.timeout.ms), against Faust's default of 60 s.
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}


def _history(seed: int) -> list[SimRecord]:
    """A few thousand records of a few hundred users, with re-keys and duplicates mixed in."""
    return list(generate(SimConfig(users=250, days=3, seed=seed, bad_fraction=0.02)))


def _chunks(items: list[Any], n: int) -> list[list[Any]]:
    size = -(-len(items) // n)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _consumed(worker: WorkerProcess, result: str | None = None) -> float:
    labels = {} if result is None else {"result": result}
    return worker.metric("churnstream_records_consumed_total", **labels)


def _caught_up(worker: WorkerProcess, prefix: str) -> None:
    """Wait until the group committed every input record (so every effect is visible)."""
    wait_caught_up(worker, input_topics(prefix), timeout=120)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_kill_9_and_restart_never_double_counts(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path, store: str
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    sims = _history(seed=21)
    chunks = _chunks(sim_to_kafka(prefix, sims), 4)
    # Runs 1, 2 and 4 share a data directory; run 3 starts empty, so its state can only come
    # from the changelog topic.
    dirs = [tmp_path / "a", tmp_path / "a", tmp_path / "fresh", tmp_path / "a"]
    redelivered = 0.0
    for run, (chunk, data_dir) in enumerate(zip(chunks, dirs, strict=True)):
        env = {**FAST_FAILOVER, "CHURNSTREAM_STORE": store}
        worker = WorkerProcess(kafka_bootstrap, prefix, data_dir, env=env)
        try:
            worker.start()
            produce(kafka_bootstrap, chunk)
            if run < len(chunks) - 1:
                # Mid-stream: part of this chunk is applied, the rest is not yet consumed.
                half = len(chunk) // 2
                wait_until(lambda w=worker, n=half: _consumed(w) >= n, 90, "half the chunk")
                redelivered += _consumed(worker, "redelivered")
                worker.kill()  # SIGKILL: no flush, no commit, no goodbye to the group
                continue
            _caught_up(worker, prefix)
            redelivered += _consumed(worker, "redelivered")
            assert_state_matches(worker, sims)
            worker.stop()
            if store == "rocksdb://":
                _assert_store_holds_whole_changelog(worker, data_dir)
        except BaseException:
            print(f"--- run {run} worker log tail ---\n{worker.log_tail()}")
            raise
        finally:
            worker.stop()
    print(f"records skipped as redelivered after kills: {redelivered:.0f}")


def _assert_store_holds_whole_changelog(worker: WorkerProcess, data_dir: Path) -> None:
    """Each RocksDB partition records the offset of its changelog's last record, so a restart
    reads nothing again (without it, Faust re-reads the whole changelog at every start)."""
    from faust.stores.rocksdb import Store
    from rocksdict import AccessType, Rdict

    changelog = f"{worker.app_id}-users-changelog"
    ends = end_offsets(worker.bootstrap, [changelog])
    persisted = {}
    for partition in range(4):
        (path,) = data_dir.rglob(f"users-{partition}.db")
        db = Rdict(str(path), access_type=AccessType.read_only())
        try:
            raw = db.get(Store.offset_key)
        finally:
            db.close()
        persisted[partition] = None if raw is None else int(raw)
    assert persisted == {p: ends[(changelog, p)] - 1 for p in range(4)}


def test_survivor_takes_over_partitions_of_killed_worker(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    sims = _history(seed=22)
    first, second = _chunks(sim_to_kafka(prefix, sims), 2)
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=FAST_FAILOVER)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=FAST_FAILOVER)
    try:
        a.start()
        b.start()
        produce(kafka_bootstrap, first)
        # Both members own input partitions and are processing when one of them dies.
        wait_until(lambda: _consumed(a) > 0 and _consumed(b) > 0, 90, "both workers consuming")
        wait_until(lambda: _consumed(a) + _consumed(b) >= len(first) // 2, 90, "half the input")
        a.kill()
        produce(kafka_bootstrap, second)
        wait_until(lambda: b.metric("churnstream_rebalances_total") >= 2, 90, "the takeover")
        _caught_up(b, prefix)
        assert_state_matches(b, sims)
    except BaseException:
        print(f"--- worker a log tail ---\n{a.log_tail()}\n--- worker b ---\n{b.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()
