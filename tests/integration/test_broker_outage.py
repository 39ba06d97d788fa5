"""A broker that stops answering mid-stream: the worker waits, retries, and loses nothing.

A private broker (the session's is shared) is frozen with SIGSTOP while the worker still has
fetched records to process, longer than the worker's output timeout (its sends fail and are
retried, when it attempts any) and than its fetch and heartbeat timeouts; after SIGCONT the
worker must resume by itself, end with every user's state equal to a clean single pass, and
have published every score it counted.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

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

from churnstream.stream.devtools.kafka_local import KafkaPrerequisiteError, LocalKafka
from churnstream.stream.devtools.simulator import SimConfig, generate

pytestmark = pytest.mark.kafka


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[tuple[LocalKafka, str]]:
    kafka = LocalKafka(tmp_path / "kafka", die_with_parent=True)
    try:
        bootstrap = kafka.start()
    except KafkaPrerequisiteError as exc:
        pytest.skip(str(exc))
    try:
        yield kafka, bootstrap
    finally:
        if kafka.pid is not None:
            os.kill(kafka.pid, signal.SIGCONT)
        kafka.stop()


def test_worker_waits_out_a_frozen_broker_and_loses_nothing(
    private_kafka: tuple[LocalKafka, str], tmp_path: Path
) -> None:
    kafka, bootstrap = private_kafka
    prefix = "outage."
    make_topics(bootstrap, prefix)
    sims = list(generate(SimConfig(users=800, days=6, seed=23)))
    records = sim_to_kafka(prefix, sims)
    # Short waits for lagging sources and models: with the broker frozen no source advances,
    # and a day boundary pending at the freeze would otherwise hold every output (so every
    # send) for the 120 s default, longer than this test waits for a failed send.
    env = {
        "CHURNSTREAM_OUTPUT_TIMEOUT_S": "1",
        "CHURNSTREAM_SOURCE_WAIT_S": "5",
        "CHURNSTREAM_MODEL_WAIT_S": "5",
    }
    worker = WorkerProcess(bootstrap, prefix, tmp_path / "w", env=env)
    try:
        worker.start()
        produce(bootstrap, records)
        consumed = lambda: worker.metric("churnstream_records_consumed_total")  # noqa: E731
        wait_until(lambda: consumed() >= len(records) // 4, 90, "a quarter of the input")
        assert kafka.pid is not None
        os.kill(kafka.pid, signal.SIGSTOP)
        try:
            # Frozen until the worker's output sends failed and were retried, or for 90 s: a
            # worker holding its events (a day boundary waiting for sources, the aligner's
            # 30 s hold, a coordinator marked dead) may attempt no send at all meanwhile, and
            # must come through the outage just the same.
            retries = "churnstream_output_send_retries_total"
            frozen_until = time.monotonic() + 90.0
            while worker.metric(retries) < 2 and time.monotonic() < frozen_until:
                time.sleep(0.5)
        finally:
            os.kill(kafka.pid, signal.SIGCONT)
        wait_caught_up(worker, input_topics(prefix), timeout=180)
        assert_state_matches(worker, sims)
        counted = worker.metric("churnstream_scores_total")
        scores = f"{prefix}churn.risk-scores"
        published = sum(end_offsets(bootstrap, [scores]).values())
        assert counted > len(records) // 2
        assert published >= counted  # at least once: a retried batch may repeat some
        print(
            f"scores counted {counted:.0f}, published {published}; "
            f"retries {worker.metric('churnstream_output_send_retries_total'):.0f}"
        )
    except BaseException:
        print(f"--- worker log tail ---\n{worker.log_tail()}")
        raise
    finally:
        worker.stop()
