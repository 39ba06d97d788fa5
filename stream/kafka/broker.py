"""Choose the Kafka broker: the one decision used by the CLI, the demo and the tests.

Order: `KAFKA_BOOTSTRAP_SERVERS` if set; else Docker (`docker-compose.kafka.yml`) if a daemon
answers; else a local Java broker (`stream.devtools.kafka_local.LocalKafka`); else a clear error
that says what to install. The starters are parameters so tests can inject them.
`kafka status|stop` ask the same three places which broker is there (`find_brokers`).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from churnstream.stream.devtools.deploy_files import deploy_file
from churnstream.stream.devtools.kafka_local import (
    KafkaPrerequisiteError,
    KafkaStartError,
    LocalKafka,
    broker_answers,
    default_home,
    wait_until_answers,
)
from churnstream.stream.errors import ChurnstreamError

BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
COMPOSE_FILE: Final = deploy_file("docker-compose.kafka.yml")
DOCKER_BOOTSTRAP: Final = "127.0.0.1:9092"
DOCKER_CONTAINER: Final = "churnstream-kafka"

BrokerKind = Literal["env", "docker", "local"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerChoice:
    """Where Kafka is, how it was found, and how to stop it (None: we did not start it)."""

    bootstrap: str
    kind: BrokerKind
    stop: Callable[[], None] | None


@dataclass(frozen=True, slots=True)
class BrokerStatus:
    """A broker that is there (configured, or one churnstream started) and whether it answers."""

    bootstrap: str
    kind: BrokerKind
    answers: bool

    def describe(self) -> str:
        where = {
            "env": "external broker (KAFKA_BOOTSTRAP_SERVERS)",
            "docker": f"Docker broker ({COMPOSE_FILE.name}, container {DOCKER_CONTAINER})",
            "local": "local Java broker",
        }[self.kind]
        return f"{where} at {self.bootstrap}: {'answers' if self.answers else 'does not answer'}"


class NoBrokerError(ChurnstreamError, RuntimeError):
    """No broker configured and none could be started; the message says what to install."""


def docker_daemon_available(timeout: float = 3.0) -> bool:
    """True if `docker info` reaches a daemon within `timeout` seconds (never hangs)."""
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def compose_command(compose_file: Path = COMPOSE_FILE) -> list[str]:
    return ["docker", "compose", "-f", str(compose_file)]


def start_docker_compose(compose_file: Path = COMPOSE_FILE, timeout: float = 120) -> BrokerChoice:
    """`docker compose up -d` the broker and wait until 127.0.0.1:9092 answers."""
    deadline = time.monotonic() + timeout
    result = subprocess.run(
        [*compose_command(compose_file), "up", "-d"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise KafkaStartError(f"`docker compose up -d` failed:\n{result.stdout}{result.stderr}")

    def stop() -> None:
        stop_docker_compose(compose_file)

    try:
        wait_until_answers(DOCKER_BOOTSTRAP, deadline)
    except BaseException:
        stop()
        raise
    return BrokerChoice(DOCKER_BOOTSTRAP, "docker", stop)


def stop_docker_compose(compose_file: Path = COMPOSE_FILE, timeout: float = 120) -> bool:
    """`docker compose down` (the broker and its Prometheus/Grafana); True if it succeeded."""
    try:
        result = subprocess.run(
            [*compose_command(compose_file), "down"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def docker_broker_running(timeout: float = 10.0) -> bool:
    """True if the compose file's Kafka container runs (False without Docker; never hangs)."""
    try:
        result = subprocess.run(
            ["docker", "ps", "--quiet", "--filter", f"name=^{DOCKER_CONTAINER}$"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


def find_brokers(
    bootstrap_servers: str,
    *,
    home: Path,
    local_running: Callable[[Path], str | None] = lambda home: LocalKafka(home).status(),
    docker_running: Callable[[], bool] = docker_broker_running,
    answers: Callable[[str], bool] = broker_answers,
) -> list[BrokerStatus]:
    """The brokers there are, first the one the CLI uses (`connect.find_bootstrap`), each
    asked whether it answers: the configured (external) one if set, the local broker of `home`
    if its process runs, the Docker broker if its container runs. Empty when there is none.
    """
    found: list[tuple[str, BrokerKind]] = []
    local = local_running(home)
    if local is not None:
        found.append((local, "local"))
    if docker_running():
        found.append((DOCKER_BOOTSTRAP, "docker"))
    if bootstrap_servers:
        # A configured address of a broker churnstream runs is that broker, not an external one.
        found.sort(key=lambda broker: broker[0] != bootstrap_servers)
        if not found or found[0][0] != bootstrap_servers:
            found.insert(0, (bootstrap_servers, "env"))
    return [BrokerStatus(address, kind, answers(address)) for address, kind in found]


def start_local_kafka(home: Path) -> BrokerChoice:
    """Use the local broker in `home`: reuse it if already running, else start it."""
    kafka = LocalKafka(home)
    running = kafka.status()
    if running is not None:
        return BrokerChoice(running, "local", None)  # someone else started it; not ours to stop
    return BrokerChoice(kafka.start(), "local", kafka.stop)


def resolve_bootstrap(
    env: Mapping[str, str] | None = None,
    *,
    home: Path | None = None,
    allow_docker: bool = True,
    allow_local: bool = True,
    docker_available: Callable[[], bool] = docker_daemon_available,
    start_docker: Callable[[], BrokerChoice] = start_docker_compose,
    start_local: Callable[[Path], BrokerChoice] = start_local_kafka,
) -> BrokerChoice:
    """Find or start a Kafka broker and say which one (see the module docstring for the order).

    `env` defaults to `os.environ`; `home` is the local broker's directory (default
    `default_home(env)`). Raises `NoBrokerError` when nothing is configured or startable.
    """
    env = os.environ if env is None else env
    configured = env.get(BOOTSTRAP_ENV, "").strip()
    if configured:
        return BrokerChoice(configured, "env", None)

    problems: list[str] = []
    if allow_docker and docker_available():
        try:
            return start_docker()
        except (KafkaStartError, OSError, subprocess.SubprocessError) as exc:
            log.warning("Docker Kafka failed to start, trying the local broker: %s", exc)
            problems.append(f"Docker: {exc}")
    elif allow_docker:
        problems.append("Docker: no daemon answers")

    if allow_local:
        try:
            return start_local(home or default_home(env))
        except KafkaPrerequisiteError as exc:
            problems.append(f"local broker: {exc}")

    problems = problems or ["Docker and local both disabled"]
    # First line: the reasons in short and the fix (what the CLI prints); then the reasons in
    # full if one has more to say (a tool's output).
    reasons = "; ".join(problem.splitlines()[0] for problem in problems)
    details = [f"\n- {problem}" for problem in problems] if any("\n" in p for p in problems) else []
    raise NoBrokerError(
        f"No Kafka broker available ({reasons}). Set KAFKA_BOOTSTRAP_SERVERS=host:port, or "
        "start a Docker daemon (docker-compose.kafka.yml), or install Java 17+ and Maven for "
        "the local broker (`apt-get install openjdk-17-jdk-headless maven`)." + "".join(details)
    )
