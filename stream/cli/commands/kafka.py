"""`churnstream kafka start|stop|status|jars`: the broker used by the demo and local runs.

`start` makes the broker choice of `stream.kafka.broker` (configured, else Docker, else the
local Java broker). `status` and `stop` look in the same places: a configured broker is external
(shown, never stopped); the Docker and local brokers are churnstream's (shown, and stopped).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from churnstream.stream.devtools.kafka_local import LocalKafka, default_home
from churnstream.stream.kafka.broker import (
    COMPOSE_FILE,
    BrokerStatus,
    docker_broker_running,
    find_brokers,
    resolve_bootstrap,
    stop_docker_compose,
)
from churnstream.stream.settings import Settings

EXIT_NOT_RUNNING: Final = 3
"""`status` exit code when no broker is there or the one in use does not answer."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "kafka",
        help="start, stop or show the Kafka broker (external, Docker or local)",
        description="start: use KAFKA_BOOTSTRAP_SERVERS if set, else Docker, else the local "
        "Java broker, and print its address. status: which broker is used and whether it "
        "answers (exit 3 if none does). stop: stop the Docker or local broker; an external "
        "one is left alone. jars: fetch the local broker's jars.",
    )
    p.add_argument("action", choices=("start", "stop", "status", "jars"))
    p.add_argument("--port", type=int, default=None, help="local broker port (default: a free one)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    home = default_home()
    if args.action == "jars":  # fetch the local broker's jars ahead of time (make kafka-jars)
        print(LocalKafka(home).ensure_jars())
        return 0
    if args.action == "start":
        if args.port is not None:
            kafka = LocalKafka(home, port=args.port)
            print(kafka.status() or kafka.start())
            return 0
        env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers}
        choice = resolve_bootstrap(env, home=home)
        print(choice.bootstrap)
        return 0
    brokers = find_brokers(settings.bootstrap_servers, home=home)
    if args.action == "status":
        lines, code = status_report(brokers, home)
    else:
        lines, code = stop(brokers, home)
    for line in lines:
        print(line)
    return code


def status_report(brokers: list[BrokerStatus], home: Path) -> tuple[list[str], int]:
    """Lines saying which broker commands use and whether it answers; the exit code."""
    if not brokers:
        return [
            f"no broker: KAFKA_BOOTSTRAP_SERVERS is not set, no local broker runs in {home}, "
            "no Docker broker runs (`churnstream kafka start` starts one)"
        ], EXIT_NOT_RUNNING
    used, *others = brokers
    lines = [f"in use: {used.describe()}"]
    lines += [f"also running: {other.describe()}" for other in others]
    return lines, 0 if used.answers else EXIT_NOT_RUNNING


def stop(
    brokers: list[BrokerStatus],
    home: Path,
    *,
    stop_local: Callable[[Path], None] = lambda home: LocalKafka(home).stop(),
    stop_docker: Callable[[], bool] = stop_docker_compose,
    docker_running: Callable[[], bool] = docker_broker_running,
) -> tuple[list[str], int]:
    """Stop churnstream's brokers among `brokers`; say why an external one is left running."""
    lines, code = [], 0
    for broker in brokers:
        if broker.kind == "env":
            lines.append(
                f"{broker.bootstrap} is an external broker (KAFKA_BOOTSTRAP_SERVERS): "
                "churnstream did not start it and does not stop it"
            )
        elif broker.kind == "local":
            stop_local(home)
            lines.append(f"stopped the local broker at {broker.bootstrap}")
        elif stop_docker() and not docker_running():
            lines.append(f"stopped the Docker broker (docker compose -f {COMPOSE_FILE} down)")
        else:
            lines.append(
                f"could not stop the Docker broker: run `docker compose -f {COMPOSE_FILE} down`"
            )
            code = 1
    return lines or ["no broker running: nothing to stop"], code
