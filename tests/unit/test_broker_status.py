"""Pure parts of `kafka status|stop` and `topics list|create`: which broker is there, what to
stop, which partitions lack a leader, how the broker's topics compare with churnstream's.

Probes and stoppers are injected: nothing here starts Kafka or Docker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from churnstream.stream.cli.commands import kafka as kafka_command
from churnstream.stream.cli.commands.topics import is_related, render
from churnstream.stream.kafka.admin import (
    TopicCheck,
    TopicsNotReady,
    TopicSpec,
    _wait_for_leaders_in_metadata,
    check_topics,
    leaderless,
)
from churnstream.stream.kafka.broker import DOCKER_BOOTSTRAP, BrokerStatus, find_brokers
from churnstream.stream.settings import Settings

HOME = Path("/tmp/kafka-home")
LOCAL = "127.0.0.1:40000"


def brokers(
    configured: str = "", *, local: str | None = None, docker: bool = False, up: bool = True
) -> list[BrokerStatus]:
    return find_brokers(
        configured,
        home=HOME,
        local_running=lambda home: local if home == HOME else None,
        docker_running=lambda: docker,
        answers=lambda address: up,
    )


# --- which broker --------------------------------------------------------------------------


def test_none_found() -> None:
    assert brokers() == []
    lines, code = kafka_command.status_report([], HOME)
    assert code == kafka_command.EXIT_NOT_RUNNING
    assert "no broker" in lines[0] and str(HOME) in lines[0]


def test_external_broker_is_in_use_and_reported_as_such() -> None:
    found = brokers("kafka.example:9092", local=LOCAL)
    assert [(b.bootstrap, b.kind) for b in found] == [
        ("kafka.example:9092", "env"),
        (LOCAL, "local"),
    ]
    lines, code = kafka_command.status_report(found, HOME)
    assert code == 0
    assert lines[0] == (
        "in use: external broker (KAFKA_BOOTSTRAP_SERVERS) at kafka.example:9092: answers"
    )
    assert lines[1].startswith("also running: local Java broker at 127.0.0.1:40000")


def test_configured_address_of_our_own_broker_is_that_broker() -> None:
    assert [b.kind for b in brokers(DOCKER_BOOTSTRAP, local=LOCAL, docker=True)] == [
        "docker",
        "local",
    ]
    assert [b.kind for b in brokers(LOCAL, local=LOCAL)] == ["local"]


def test_local_is_used_before_docker_like_find_bootstrap() -> None:
    assert [b.kind for b in brokers(local=LOCAL, docker=True)] == ["local", "docker"]


def test_a_broker_that_does_not_answer_fails_status() -> None:
    found = brokers(docker=True, up=False)
    lines, code = kafka_command.status_report(found, HOME)
    assert code == kafka_command.EXIT_NOT_RUNNING
    assert "Docker broker" in lines[0] and lines[0].endswith("does not answer")


# --- stop ----------------------------------------------------------------------------------


class Stoppers:
    def __init__(self, docker_ok: bool = True) -> None:
        self.calls: list[str] = []
        self.docker_ok = docker_ok

    def stop(self, found: list[BrokerStatus]) -> tuple[list[str], int]:
        return kafka_command.stop(
            found,
            HOME,
            stop_local=lambda home: self.calls.append(f"local {home}"),
            stop_docker=self._stop_docker,
            docker_running=lambda: not self.docker_ok,
        )

    def _stop_docker(self) -> bool:
        self.calls.append("docker")
        return self.docker_ok


def test_stop_leaves_an_external_broker_alone() -> None:
    stoppers = Stoppers()
    lines, code = stoppers.stop(brokers("kafka.example:9092"))
    assert code == 0 and stoppers.calls == []
    assert lines == [
        "kafka.example:9092 is an external broker (KAFKA_BOOTSTRAP_SERVERS): churnstream did "
        "not start it and does not stop it"
    ]


def test_stop_stops_local_and_docker_brokers() -> None:
    stoppers = Stoppers()
    lines, code = stoppers.stop(brokers("kafka.example:9092", local=LOCAL, docker=True))
    assert code == 0
    assert stoppers.calls == [f"local {HOME}", "docker"]
    assert "external" in lines[0]
    assert lines[1] == f"stopped the local broker at {LOCAL}"
    assert lines[2].startswith("stopped the Docker broker (docker compose -f ")


def test_stop_says_how_when_docker_compose_fails() -> None:
    lines, code = Stoppers(docker_ok=False).stop(brokers(docker=True))
    assert code == 1
    assert "could not stop the Docker broker: run `docker compose -f" in lines[0]


def test_stop_with_nothing_running() -> None:
    assert Stoppers().stop([]) == (["no broker running: nothing to stop"], 0)


# --- leaders -------------------------------------------------------------------------------


def partition(number: int, leader: int) -> dict[str, int]:
    return {"error_code": 0, "partition": number, "leader": leader}


def test_leaderless_names_what_is_not_ready() -> None:
    described = [
        {"topic": "ready", "error_code": 0, "partitions": [partition(0, 1), partition(1, 1)]},
        {"topic": "half", "error_code": 0, "partitions": [partition(0, 1), partition(2, -1)]},
        {"topic": "new", "error_code": 5, "partitions": []},
        {"topic": "empty", "error_code": 0, "partitions": []},
    ]
    assert leaderless(described) == {
        "half": "no leader for partition(s) 2",
        "new": "LeaderNotAvailableError",
        "empty": "no partitions yet",
    }
    assert leaderless(described[:1]) == {}


class ScriptedAdmin:
    """Answers `describe_topics` with one leader per call from `leaders` (-1: none yet)."""

    def __init__(self, leaders: list[int]) -> None:
        self._leaders: Iterator[int] = iter(leaders)

    async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        leader = next(self._leaders)
        return [{"topic": n, "error_code": 0, "partitions": [partition(0, leader)]} for n in names]


def test_waits_until_metadata_names_every_leader() -> None:
    admin = ScriptedAdmin([-1, -1, 1])
    counts = asyncio.run(_wait_for_leaders_in_metadata(admin, ["a", "b"], time.monotonic() + 30))
    assert counts == {"a": 1, "b": 1}


def test_no_leader_by_the_deadline_names_the_partitions() -> None:
    admin = ScriptedAdmin([-1])
    with pytest.raises(TopicsNotReady) as info:
        asyncio.run(_wait_for_leaders_in_metadata(admin, ["a"], time.monotonic()))
    assert str(info.value) == "topics not ready in time (a: no leader for partition(s) 0)"


# --- topics list ---------------------------------------------------------------------------


def test_check_topics_compares_the_broker_with_the_specs() -> None:
    specs = [TopicSpec("p.a", 4), TopicSpec("p.b", 4), TopicSpec("p.c", 1)]
    existing = {"p.a": 4, "p.b": 2, "p.z": 3, "app-users-changelog": 4, "elsewhere": 1}
    related = ["p.a", "p.b", "p.z", "app-users-changelog"]
    checks = check_topics(specs, existing, related)
    assert [(c.name, c.partitions, c.problem) for c in checks] == [
        ("p.a", 4, None),
        ("p.b", 2, "has 2 partitions, expected 4"),
        ("p.c", None, "missing"),
        ("app-users-changelog", 4, None),
        ("p.z", 3, None),
    ]


def test_related_topics_are_the_prefix_and_fausts() -> None:
    settings = Settings(topic_prefix="prod.", app_id="churn")
    assert is_related("prod.churn.alerts", settings)
    assert is_related("churn-users-changelog", settings)
    assert not is_related("staging.churn.alerts", settings)


@pytest.mark.parametrize(
    ("checks", "summary"),
    [
        ([TopicCheck("a", 4, 4)], "1 of 1 churnstream topics ok on b:9"),
        (
            [TopicCheck("a", None, 4), TopicCheck("b", 2, 4), TopicCheck("c", 1, 1)],
            "1 of 3 churnstream topics ok on b:9; 1 missing (`churnstream topics create` makes "
            "them); 1 with another partition count (set CHURNSTREAM_PARTITIONS to match, or "
            "delete and recreate them)",
        ),
    ],
)
def test_render_summary(checks: list[TopicCheck], summary: str) -> None:
    assert render(checks, "b:9", "app")[-1] == summary


def test_render_rows() -> None:
    checks = [
        TopicCheck("p.a", None, 4),
        TopicCheck("app-x-changelog", 4, None),
        TopicCheck("o", 1, None),
    ]
    rows = render(checks, "b:9", "app")
    assert rows[0].split() == ["topic", "partitions", "status"]
    assert rows[1].split() == ["p.a", "-", "missing"]
    assert rows[2].endswith("4  the worker's own (Faust)")
    assert rows[3].split() == ["o", "1", "other"]
