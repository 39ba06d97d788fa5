"""A worker refuses to start when a keyed topic has another partition count, on the real broker.

The worker writes its table with the key's partition (murmur2 modulo `settings.partitions`), so an
input topic with 3 partitions where the worker expects 4 would split one user into two states.
It must exit non-zero at once, naming the topic and both counts on one line.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from workers import WorkerProcess, make_topics

from churnstream.stream.devtools.processes import start_worker
from churnstream.stream.kafka.admin import TopicSpec, create_topics
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

LOGINS = "behaviour.logins"


def test_an_input_topic_with_another_partition_count_stops_the_worker_with_one_clear_line(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CHURNSTREAM_TOPIC_PREFIX": prefix}
    )
    asyncio.run(create_topics(settings, [TopicSpec(prefix + LOGINS, 3)], bootstrap=kafka_bootstrap))
    make_topics(kafka_bootstrap, prefix, partitions=4)  # the others, with the expected count
    worker = WorkerProcess(kafka_bootstrap, prefix, tmp_path, partitions=4)
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = start_worker(worker.env(), worker.log_path, log_level="info", cwd=tmp_path)
    try:
        code = proc.popen.wait(timeout=60)
    finally:
        proc.stop(10)
    log = worker.log_path.read_text()
    assert code != 0, log
    refusals = [line for line in log.splitlines() if "refusing to start" in line]
    assert refusals == [
        f"churnstream: refusing to start: topic {prefix}{LOGINS} has 3 partitions, expected 4 "
        "(settings.partitions): one user would be split in two states"
    ], log
    assert "Traceback" not in log
