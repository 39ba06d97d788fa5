"""Shared fixtures: a real Kafka broker for tests marked `kafka`, and per-test topic prefixes.

The broker comes from `stream.kafka.broker.resolve_bootstrap` (the same decision the CLI makes):
`KAFKA_BOOTSTRAP_SERVERS` if set, else a testcontainers Kafka if a Docker daemon answers, else
a local Java broker in a temporary directory. Whatever the fixture starts it also stops: in the
fixture's `finally`, via `atexit` as a last resort, and through the kernel (the local broker
gets SIGTERM if pytest dies). At session finish a check fails the run if a broker is left.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from churnstream.stream.devtools.kafka_local import LocalKafka, free_port
from churnstream.stream.kafka.broker import BrokerChoice, NoBrokerError, resolve_bootstrap

# The same Apache Kafka 4.x image as docker-compose.kafka.yml, single node in KRaft mode.
TC_IMAGE_ENV = "CHURNSTREAM_TEST_KAFKA_IMAGE"
TC_DEFAULT_IMAGE = "apache/kafka:4.1.2"

# Property tests are judged on their results; a wall-clock deadline per example only measures
# how busy the (2-core, shared) machine was and made them flaky.
hypothesis_settings.register_profile("churnstream", deadline=None)
hypothesis_settings.load_profile("churnstream")

_local_homes: list[Path] = []
_startup_report: list[str] = []


def _once(stop: Callable[[], None]) -> Callable[[], None]:
    """Wrap `stop` so the fixture's finally and atexit can both call it safely."""
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        stop()

    return run


def _start_testcontainer() -> BrokerChoice:
    """apache/kafka in a container, configured like docker-compose.kafka.yml.

    testcontainers' KafkaContainer only scripts Confluent's images (Kafka 3.x for the 7.x
    line); the official image is configured by environment variables instead. The host port
    is chosen first so that the broker can advertise it.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    port = free_port()
    container = DockerContainer(os.environ.get(TC_IMAGE_ENV, TC_DEFAULT_IMAGE))
    # docker-py's (host ip, port) form: the broker is published on loopback only.
    container.ports["9092/tcp"] = ("127.0.0.1", port)  # type: ignore[assignment]
    container = container.with_envs(
        KAFKA_NODE_ID="1",
        KAFKA_PROCESS_ROLES="broker,controller",
        KAFKA_LISTENERS="PLAINTEXT://0.0.0.0:9092,CONTROLLER://localhost:9093",
        KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{port}",
        KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
        KAFKA_INTER_BROKER_LISTENER_NAME="PLAINTEXT",
        KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
        KAFKA_AUTO_CREATE_TOPICS_ENABLE="false",
        KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="1",
        KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
        KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
        KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
    )
    container.start()
    try:
        wait_for_logs(container, "Kafka Server started", timeout=120)
    except BaseException:
        container.stop()
        raise
    return BrokerChoice(f"127.0.0.1:{port}", "docker", container.stop)


def _start_local(home: Path) -> BrokerChoice:
    _local_homes.append(home)
    kafka = LocalKafka(home, die_with_parent=True)
    return BrokerChoice(kafka.start(), "local", kafka.stop)


def _leftover_brokers(homes: list[Path]) -> list[int]:
    """Pids of live `kafka.Kafka` processes whose config lives in one of `homes`."""
    needles = [str(home.resolve()).encode() for home in homes]
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and b"kafka.Kafka" in cmdline and any(n in cmdline for n in needles):
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real Kafka broker, shared by the whole session."""
    began = time.monotonic()
    try:
        choice = resolve_bootstrap(
            home=tmp_path_factory.mktemp("kafka"),
            start_docker=_start_testcontainer,
            start_local=_start_local,
        )
    except NoBrokerError as exc:
        # A missing broker must not turn CI green by skipping: fail unless told otherwise.
        if os.environ.get("CHURNSTREAM_TESTS_ALLOW_NO_KAFKA") == "1":
            pytest.skip(str(exc))
        pytest.fail(str(exc), pytrace=False)
    _startup_report.append(
        f"kafka broker ({choice.kind}, {choice.bootstrap}) ready in "
        f"{time.monotonic() - began:.1f} s"
    )
    stop = _once(choice.stop) if choice.stop is not None else None
    if stop is not None:
        atexit.register(stop)
    try:
        yield choice.bootstrap
    finally:
        if stop is not None:
            stop()


@pytest.fixture(autouse=True)
def _kafka_for_marked_tests(request: pytest.FixtureRequest) -> None:
    # Tests marked `kafka` get the broker without naming the fixture.
    if request.node.get_closest_marker("kafka") is not None:
        request.getfixturevalue("kafka_bootstrap")


@pytest.fixture
def fresh_topic_prefix() -> str:
    """A topic-name prefix unique to this test (e.g. `t3f9c0a1b2c4d.`)."""
    return f"t{uuid.uuid4().hex[:12]}."


@pytest.hookimpl(trylast=True)  # after the runner has torn down session fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leftovers = _leftover_brokers(_local_homes)
    if not leftovers:
        return
    for home in _local_homes:
        LocalKafka(home).stop(timeout=10)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = f"kafka fixture left broker process(es) running: {leftovers} (now stopped)"
    if reporter is not None:
        reporter.write_sep("=", message, red=True)
    else:
        raise AssertionError(message)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _startup_report:
        terminalreporter.write_line(line)
