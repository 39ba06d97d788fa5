"""SASL/SCRAM against the real local broker: the CLI's clients with right and wrong passwords.

A private `LocalKafka` with the SCRAM listener is started in a temp dir (credentials are made
when its storage is formatted); the session broker is not used.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from workers import WorkerProcess, running_worker, wait_until

from churnstream.stream.cli.commands.forget import publish, request_for
from churnstream.stream.contract import topics as t
from churnstream.stream.contract.erasure import ErasureRequest
from churnstream.stream.devtools.kafka_local import KafkaPrerequisiteError, LocalKafka
from churnstream.stream.kafka.admin import topic_specs
from churnstream.stream.kafka.client import client_options
from churnstream.stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
USER = "churn-svc"
PASSWORD = "Scram-pw-7f3a91c2-do-not-log"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scram_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    kafka = LocalKafka(
        tmp_path_factory.mktemp("scram-kafka"),
        die_with_parent=True,
        scram_users={USER: PASSWORD},
    )
    try:
        kafka.start()
    except KafkaPrerequisiteError as exc:
        pytest.skip(str(exc))
    try:
        assert kafka.sasl_bootstrap is not None
        yield kafka.sasl_bootstrap
    finally:
        kafka.stop()


def cli_env(bootstrap: str, prefix: str, password: str, mechanism: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        CHURNSTREAM_TOPIC_PREFIX=prefix,
        CHURNSTREAM_PARTITIONS="2",
        CHURNSTREAM_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        CHURNSTREAM_SASL_MECHANISM=mechanism,
        CHURNSTREAM_SASL_USERNAME=USER,
        CHURNSTREAM_SASL_PASSWORD=password,
    )
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "churnstream.stream.cli", "-v", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_cli_clients_work_with_the_right_credentials(
    scram_bootstrap: str,
    fresh_topic_prefix: str,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = cli_env(scram_bootstrap, fresh_topic_prefix, PASSWORD, mechanism)
    created = cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    # Every topic of the contract under the prefix, and the worker's changelog (named after the
    # app id, shared by both parametrisations: created by whichever runs first).
    made = re.search(r"(\d+) created, (\d+) already existed", created.stdout)
    assert made is not None, created.stdout
    settings = Settings.from_env(env)
    assert int(made[1]) + int(made[2]) == len(topic_specs(settings)) + 1
    assert int(made[1]) >= len(topic_specs(settings))
    assert f"Authenticated as {USER} via {mechanism}" in created.stderr  # debug log is on

    assert PASSWORD not in created.stdout + created.stderr

    # `forget` in-process (its CLI registration is stream/cli/main.py's), with every log captured.
    caplog.set_level(logging.DEBUG)
    settings = Settings.from_env(env)
    asyncio.run(publish(request_for("user-42", settings, "req-1"), scram_bootstrap, settings))
    assert f"Authenticated as {USER} via {mechanism}" in caplog.text
    assert PASSWORD not in caplog.text

    # Read the request back through an authenticated consumer built from the same settings.
    records = asyncio.run(read_all(scram_bootstrap, settings.topic(t.ERASURE), settings))
    assert [(r.key, ErasureRequest.from_bytes(r.value).event_id) for r in records] == [
        (b"user-42", "req-1")
    ]


def test_wrong_password_fails_fast_with_a_clear_error(
    scram_bootstrap: str, fresh_topic_prefix: str
) -> None:
    env = cli_env(scram_bootstrap, fresh_topic_prefix, "not-the-password-x1", "SCRAM-SHA-256")
    began = time.monotonic()
    result = cli(env, "topics", "create")
    elapsed = time.monotonic() - began
    assert result.returncode == 1
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "invalid credentials with SASL mechanism SCRAM-SHA-256" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("churnstream: ")
    assert "not-the-password-x1" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_plaintext_client_is_refused_on_the_scram_listener(scram_bootstrap: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
    env.update(KAFKA_BOOTSTRAP_SERVERS=scram_bootstrap, CHURNSTREAM_TOPIC_PREFIX="plain.")
    began = time.monotonic()
    result = cli(env, "topics", "create")
    assert result.returncode != 0
    assert time.monotonic() - began < 60


def test_worker_runs_over_scram(
    scram_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    """The Faust worker (broker_credentials) and its side clients authenticate too."""
    env = cli_env(scram_bootstrap, fresh_topic_prefix, PASSWORD, "SCRAM-SHA-512")
    assert cli(env, "topics", "create").returncode == 0
    settings = Settings.from_env(env)
    extra = {
        k: v
        for k, v in env.items()
        if k.startswith("CHURNSTREAM_SASL") or k == "CHURNSTREAM_SECURITY_PROTOCOL"
    }
    with running_worker(
        scram_bootstrap, fresh_topic_prefix, tmp_path, env=extra, partitions=2
    ) as worker:
        body = b'{"event_id":"e1","user_id":"sasl-user","ts":1767571200}'
        asyncio.run(send(scram_bootstrap, settings.topic("behaviour.logins"), body, settings))
        wait_until(
            lambda: worker.metric("churnstream_records_consumed_total", result="ok") >= 1,
            60,
            "the login applied by the worker over SCRAM",
        )
        log = worker.log_tail(10_000)
    assert "Authenticated as" in log and PASSWORD not in log


def test_worker_with_a_wrong_password_fails_fast(
    scram_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    worker = WorkerProcess(
        scram_bootstrap,
        fresh_topic_prefix,
        tmp_path,
        partitions=2,
        env={
            "CHURNSTREAM_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "CHURNSTREAM_SASL_MECHANISM": "SCRAM-SHA-256",
            "CHURNSTREAM_SASL_USERNAME": USER,
            "CHURNSTREAM_SASL_PASSWORD": "wrong-worker-pw-9",
        },
    )
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="worker exited"):
        worker.start(timeout=60)
    worker.stop()
    log = worker.log_tail(10_000)
    assert time.monotonic() - began < 60
    assert "invalid credentials" in log
    assert "wrong-worker-pw-9" not in log


async def send(bootstrap: str, topic: str, value: bytes, settings: Settings) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", **client_options(settings))
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"sasl-user")
    finally:
        await producer.stop()


async def read_all(bootstrap: str, topic: str, settings: Settings) -> list[object]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        **client_options(settings),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[object] = []
        deadline = time.monotonic() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "timed out reading the erasure topic"
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(batch)
        return out
    finally:
        await consumer.stop()
