"""Finding the broker a CLI command should talk to (without starting one)."""

from __future__ import annotations

from churnstream.stream.devtools.kafka_local import LocalKafka, broker_answers, default_home
from churnstream.stream.errors import ChurnstreamError
from churnstream.stream.kafka.broker import DOCKER_BOOTSTRAP, docker_daemon_available
from churnstream.stream.settings import Settings


class NoBrokerRunning(ChurnstreamError, RuntimeError):
    """No broker is configured or running; the message says how to start or name one."""


def find_bootstrap(settings: Settings) -> str:
    """The configured broker, else the running local one, else the Docker one on :9092."""
    if settings.bootstrap_servers:
        return settings.bootstrap_servers
    running = LocalKafka(default_home()).status()
    if running:
        return running
    if docker_daemon_available() and broker_answers(DOCKER_BOOTSTRAP, timeout=2.0):
        return DOCKER_BOOTSTRAP
    raise NoBrokerRunning(
        "no Kafka broker: run `churnstream kafka start` (or `make kafka-up`), "
        "or set KAFKA_BOOTSTRAP_SERVERS=host:port"
    )
