"""`churnstream worker` exits non-zero, with the reason on one line, when the worker stopped
itself because the broker refuses its outputs for good (agents/process.py `stop_worker`) or
refused to start because a keyed topic has another partition count (agents/context.py) or
the group's workers use another pseudonym key (stream/kafka/key_check.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import faust
import pytest

import churnstream.agents.app as app_module
from churnstream.stream.cli.commands import worker as worker_command
from churnstream.stream.cli.main import main


class StoppedWorker:
    """Stands in for faust.Worker: runs, then exits the way mode does after a SIGTERM."""

    fatal: str | None = None
    problems: list[str] = []  # what the start-up check of partition counts finds
    key_problem: str | None = None  # what the check of the group's pseudonym key finds
    started = False

    def __init__(self, app: Any, loglevel: str) -> None:
        self.app = app
        StoppedWorker.started = True

    def execute_from_commandline(self) -> None:
        self.app.churnstream.fatal = StoppedWorker.fatal
        raise SystemExit(0)


async def partition_problems() -> list[str]:
    return StoppedWorker.problems


async def key_problem(settings: Any, fingerprint: str, *, bootstrap: str) -> str | None:
    return StoppedWorker.key_problem


@pytest.fixture
def fake_worker(monkeypatch: pytest.MonkeyPatch) -> type[StoppedWorker]:
    monkeypatch.setattr(
        app_module,
        "create_app",
        lambda settings, bootstrap: SimpleNamespace(
            churnstream=SimpleNamespace(fatal=None, partition_problems=partition_problems)
        ),
    )
    StoppedWorker.problems, StoppedWorker.started = [], False
    StoppedWorker.key_problem = None
    monkeypatch.setattr(worker_command, "key_problem", key_problem)
    monkeypatch.setattr(worker_command, "find_bootstrap", lambda settings: "127.0.0.1:9")
    monkeypatch.setattr(faust, "Worker", StoppedWorker)
    return StoppedWorker


def test_a_worker_stopped_by_refused_outputs_exits_non_zero_with_one_line(
    fake_worker: type[StoppedWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_worker.fatal = "topic churn.alerts does not exist"
    assert main(["worker"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["churnstream: the worker stopped: topic churn.alerts does not exist"]


def test_a_worker_stopped_by_a_signal_exits_zero(
    fake_worker: type[StoppedWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_worker.fatal = None
    assert main(["worker"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_a_topic_with_another_partition_count_refuses_to_start_with_one_line(
    fake_worker: type[StoppedWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_worker.problems = ["topic app.logins has 3 partitions, expected 4 (settings.partitions)"]
    assert main(["worker"]) == 1
    assert not fake_worker.started
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "churnstream: refusing to start: topic app.logins has 3 partitions, expected 4 "
        "(settings.partitions): one user would be split in two states"
    ]


def test_another_pseudonym_key_than_the_group_s_refuses_to_start_with_one_line(
    fake_worker: type[StoppedWorker], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_worker.key_problem = "this worker's pseudonym key fingerprint is off, the group's ..."
    assert main(["worker"]) == 1
    assert not fake_worker.started
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "churnstream: refusing to start: this worker's pseudonym key fingerprint is off, the "
        "group's ...: one user would be split in two states"
    ]
