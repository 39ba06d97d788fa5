"""Workers of one group must share the pseudonym key: a worker whose key (or lack of one)
differs from the running group's refuses to start with one line, and the key never shows in
a log (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest
from workers import WorkerProcess, make_topics, running_worker

from churnstream.stream.contract.pseudonym import fingerprint
from churnstream.stream.devtools.processes import start_worker

pytestmark = pytest.mark.kafka

KEY = "first-key-under-test-" + "7" * 20
OTHER = "other-key-under-test-" + "8" * 20


def refusal(bootstrap: str, prefix: str, data_dir: Path, env: dict[str, str]) -> list[str]:
    """Start a worker expected to refuse; returns its `refusing to start` lines."""
    worker = WorkerProcess(bootstrap, prefix, data_dir, env=env)
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_worker(worker.env(), worker.log_path, log_level="info", cwd=data_dir)
    try:
        code = proc.popen.wait(timeout=60)
    finally:
        proc.stop(10)
    log = worker.log_path.read_text()
    assert code != 0, log
    assert "Traceback" not in log and KEY not in log and OTHER not in log
    return [line for line in log.splitlines() if "refusing to start" in line]


def test_a_worker_with_another_pseudonym_key_refuses_to_start(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    with running_worker(
        kafka_bootstrap, prefix, tmp_path / "a", env={"CHURNSTREAM_PSEUDONYM_KEY": KEY}
    ) as first:
        mine, theirs = fingerprint(OTHER.encode()), fingerprint(KEY.encode())
        topic = f"{first.app_id}-pseudonym-key"
        lines = refusal(
            kafka_bootstrap, prefix, tmp_path / "b", {"CHURNSTREAM_PSEUDONYM_KEY": OTHER}
        )
        assert lines == [
            f"churnstream: refusing to start: this worker's pseudonym key fingerprint is {mine}, "
            f"the group's workers use {theirs} (topic {topic}): set the same "
            "CHURNSTREAM_PSEUDONYM_KEY (or none) on every worker: one user would be split in "
            "two states"
        ]
        # Without a key (e.g. a misspelled variable): refused as well.
        lines = refusal(kafka_bootstrap, prefix, tmp_path / "c", {})
        assert len(lines) == 1 and "fingerprint is off" in lines[0]
        # The same key joins.
        with running_worker(
            kafka_bootstrap, prefix, tmp_path / "d", env={"CHURNSTREAM_PSEUDONYM_KEY": KEY}
        ) as second:
            assert second.scrape() is not None
    log = first.log_path.read_text()
    assert f"pseudonym key fingerprint {theirs}" in log and KEY not in log
