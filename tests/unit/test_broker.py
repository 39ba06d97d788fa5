"""Broker choice (`stream.kafka.broker`) and the pure helpers of the local broker
(`stream.devtools.kafka_local`).

The starters are injected, so these tests never start Kafka or Docker.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from churnstream.stream.devtools.kafka_local import (
    HOME_ENV,
    KafkaPrerequisiteError,
    KafkaStartError,
    LocalKafka,
    default_home,
    find_java,
    log_tail,
    new_cluster_id,
    parse_java_major,
    render_server_properties,
    wait_until_answers,
)
from churnstream.stream.kafka.broker import (
    BrokerChoice,
    NoBrokerError,
    docker_daemon_available,
    resolve_bootstrap,
)


class Recorder:
    """Injected starters and probes that record how they were called."""

    def __init__(self, *, daemon: bool = False) -> None:
        self.daemon = daemon
        self.calls: list[tuple[str, object]] = []

    def docker_available(self) -> bool:
        self.calls.append(("probe", None))
        return self.daemon

    def start_docker(self) -> BrokerChoice:
        self.calls.append(("docker", None))
        return BrokerChoice("127.0.0.1:9092", "docker", lambda: None)

    def start_local(self, home: Path) -> BrokerChoice:
        self.calls.append(("local", home))
        return BrokerChoice("127.0.0.1:40000", "local", lambda: None)


def resolve(rec: Recorder, env: dict[str, str], **kwargs: object) -> BrokerChoice:
    return resolve_bootstrap(
        env,
        docker_available=rec.docker_available,
        start_docker=rec.start_docker,
        start_local=rec.start_local,
        **kwargs,  # type: ignore[arg-type]
    )


def failing(exc: Exception) -> Callable[..., BrokerChoice]:
    def start(*_: object) -> BrokerChoice:
        raise exc

    return start


def test_env_var_wins_without_probing_anything() -> None:
    rec = Recorder(daemon=True)
    choice = resolve(rec, {"KAFKA_BOOTSTRAP_SERVERS": " kafka-1:9092,kafka-2:9092 "})
    assert choice == BrokerChoice("kafka-1:9092,kafka-2:9092", "env", None)
    assert rec.calls == []


def test_blank_env_var_is_ignored() -> None:
    rec = Recorder(daemon=True)
    assert resolve(rec, {"KAFKA_BOOTSTRAP_SERVERS": "  "}).kind == "docker"


def test_daemon_answers_docker_is_used() -> None:
    rec = Recorder(daemon=True)
    assert resolve(rec, {}).kind == "docker"
    assert [name for name, _ in rec.calls] == ["probe", "docker"]


def test_no_daemon_falls_back_to_local_in_the_given_home(tmp_path: Path) -> None:
    rec = Recorder(daemon=False)
    choice = resolve(rec, {}, home=tmp_path)
    assert choice.kind == "local"
    assert rec.calls == [("probe", None), ("local", tmp_path)]


def test_local_home_defaults_from_env(tmp_path: Path) -> None:
    rec = Recorder(daemon=False)
    resolve(rec, {HOME_ENV: str(tmp_path / "k")})
    assert rec.calls[-1] == ("local", tmp_path / "k")


def test_docker_disallowed_is_not_probed() -> None:
    rec = Recorder(daemon=True)
    assert resolve(rec, {}, allow_docker=False).kind == "local"
    assert [name for name, _ in rec.calls] == ["local"]


def test_failing_docker_start_falls_back_to_local() -> None:
    rec = Recorder(daemon=True)
    choice = resolve_bootstrap(
        {},
        docker_available=rec.docker_available,
        start_docker=failing(KafkaStartError("image pull failed")),
        start_local=rec.start_local,
    )
    assert choice.kind == "local"


def test_neither_docker_nor_java_gives_an_install_hint() -> None:
    rec = Recorder(daemon=False)
    with pytest.raises(NoBrokerError) as info:
        resolve_bootstrap(
            {},
            docker_available=rec.docker_available,
            start_docker=rec.start_docker,
            start_local=failing(KafkaPrerequisiteError("Java not found: install a JDK")),
        )
    message = str(info.value)
    for hint in ("KAFKA_BOOTSTRAP_SERVERS", "Docker", "Java 17", "Maven", "Java not found"):
        assert hint in message
    assert ("docker", None) not in rec.calls


def test_everything_disallowed_is_an_error() -> None:
    with pytest.raises(NoBrokerError):
        resolve(Recorder(daemon=True), {}, allow_docker=False, allow_local=False)


def test_broker_start_failure_is_not_hidden_as_missing_tools() -> None:
    with pytest.raises(KafkaStartError, match="log tail"):
        resolve_bootstrap(
            {},
            docker_available=lambda: False,
            start_local=failing(KafkaStartError("broker exited; log tail")),
        )


def test_docker_probe_without_docker_binary_is_false(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert docker_daemon_available(timeout=1.0) is False


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "11.0.2-ea"', 11),
        ("no version here", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert parse_java_major(output) == major


def test_server_properties_bind_loopback_and_single_node_settings(tmp_path: Path) -> None:
    props = dict(
        line.split("=", 1)
        for line in render_server_properties(19092, 19093, tmp_path / "data").splitlines()
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:19093"
    assert "controller.quorum.voters" not in props  # incompatible with `format --standalone`
    assert props["log.dirs"] == str(tmp_path / "data")
    expected = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "auto.create.topics.enable": "false",
        "num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
    }
    assert {key: props[key] for key in expected} == expected
    assert not any("0.0.0.0" in value for value in props.values())


def test_cluster_ids_look_like_kafka_uuids() -> None:
    ids = {new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_-]{21}", i) for i in ids)


def test_default_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_home({HOME_ENV: str(tmp_path)}) == tmp_path
    monkeypatch.chdir(tmp_path)
    assert default_home({}) == tmp_path / ".churnstream" / "kafka"


def test_log_tail_keeps_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert "no log" in log_tail(tmp_path / "missing.log")


def test_status_and_stop_of_a_home_without_broker(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path)
    assert kafka.status() is None
    kafka.stop()  # idempotent no-op
    assert kafka.status() is None


def test_state_file_pointing_at_another_process_is_not_trusted(tmp_path: Path) -> None:
    # A stale pid that now belongs to an unrelated process (here: pytest itself).
    (tmp_path / "broker.json").write_text(
        f'{{"pid": {os.getpid()}, "port": 1, "controller_port": 2, "bootstrap": "127.0.0.1:1"}}'
    )
    kafka = LocalKafka(tmp_path)
    assert kafka.status() is None
    kafka.stop()  # must not signal pytest's process group
    assert kafka.pid is None


def test_missing_jars_without_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("needs a Java 17+ to get past the Java check")
    bin_dir = tmp_path / "bin"  # a PATH with java but without mvn
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(Path(java).resolve())
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("CHURNSTREAM_CACHE_DIR", str(tmp_path / "cache"))  # no jars there
    kafka = LocalKafka(tmp_path / "home")
    with pytest.raises(KafkaPrerequisiteError, match="install Maven"):
        kafka.ensure_jars()


def test_old_java_is_rejected_with_an_install_hint(tmp_path: Path) -> None:
    fake_java = tmp_path / "bin" / "java"
    fake_java.parent.mkdir()
    fake_java.write_text("#!/bin/sh\necho 'java version \"1.8.0_392\"' >&2\n")
    fake_java.chmod(0o755)
    with pytest.raises(KafkaPrerequisiteError, match=r"Java 8.*install openjdk-17"):
        find_java({"JAVA_HOME": str(tmp_path)})


def test_missing_java_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KafkaPrerequisiteError, match="Java not found"):
        find_java({})


def test_wait_until_answers_reports_a_dead_broker_with_the_description() -> None:
    with pytest.raises(KafkaStartError, match=r"^LOG: broker process exited"):
        wait_until_answers(
            "127.0.0.1:1",  # nothing listens on port 1
            deadline=float("inf"),
            wait_or_died=lambda _seconds: True,
            describe_failure=lambda reason: f"LOG: {reason}",
        )


def test_wait_until_answers_gives_up_at_the_deadline() -> None:
    with pytest.raises(KafkaStartError, match="did not answer in time"):
        wait_until_answers("127.0.0.1:1", deadline=0.0)
