"""Choose the Kafka broker: the one decision used by the CLI, the demo and the tests.

Order: `KAFKA_BOOTSTRAP_SERVERS` if set; else Docker (`docker-compose.kafka.yml`) if a daemon
answers; else a local Java broker (`stream.devtools.kafka_local.LocalKafka`); else a clear error
that
says what to install. The starters are parameters so tests can inject them.
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
    default_home,
    wait_until_answers,
)

BOOTSTRAP_ENV: Final = "KAFKA_BOOTSTRAP_SERVERS"
COMPOSE_FILE: Final = deploy_file("docker-compose.kafka.yml")
DOCKER_BOOTSTRAP: Final = "127.0.0.1:9092"

BrokerKind = Literal["env", "docker", "local"]
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerChoice:
    """Where Kafka is, how it was found, and how to stop it (None: we did not start it)."""

    bootstrap: str
    kind: BrokerKind
    stop: Callable[[], None] | None


class NoBrokerError(RuntimeError):
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


def start_docker_compose(compose_file: Path = COMPOSE_FILE, timeout: float = 120) -> BrokerChoice:
    """`docker compose up -d` the broker and wait until 127.0.0.1:9092 answers."""
    deadline = time.monotonic() + timeout
    base = ["docker", "compose", "-f", str(compose_file)]
    result = subprocess.run(
        [*base, "up", "-d"], capture_output=True, text=True, timeout=timeout, check=False
    )
    if result.returncode != 0:
        raise KafkaStartError(f"`docker compose up -d` failed:\n{result.stdout}{result.stderr}")

    def stop() -> None:
        subprocess.run([*base, "down"], capture_output=True, timeout=120, check=False)

    try:
        wait_until_answers(DOCKER_BOOTSTRAP, deadline)
    except BaseException:
        stop()
        raise
    return BrokerChoice(DOCKER_BOOTSTRAP, "docker", stop)


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

    raise NoBrokerError(
        "No Kafka broker available. Set KAFKA_BOOTSTRAP_SERVERS=host:port, or start a Docker "
        "daemon (docker-compose.kafka.yml), or install Java 17+ and Maven for the local "
        "broker (`apt-get install openjdk-17-jdk-headless maven`).\n"
        + "\n".join(f"- {problem}" for problem in problems or ["Docker and local both disabled"])
    )
