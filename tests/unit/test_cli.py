"""Command-line conventions (stream/cli): version, one log level, help, one-line errors.

Every error case runs `main([...])` as a person would and checks stderr: one line starting with
`churnstream: `, no traceback, a non-zero exit. Nothing here needs Kafka or Docker.
"""

from __future__ import annotations

import argparse
import os
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from churnstream.stream.cli import main as cli_main
from churnstream.stream.cli.commands import kafka as kafka_command
from churnstream.stream.cli.commands import pseudonym as pseudonym_command
from churnstream.stream.cli.commands import worker as worker_command
from churnstream.stream.cli.common import CommandError, check_output
from churnstream.stream.cli.main import build_parser, main
from churnstream.stream.devtools.kafka_local import KafkaStartError, free_port
from churnstream.stream.kafka import broker, connect
from churnstream.stream.settings import Settings, SettingsError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The developer's own settings and brokers must not leak into these tests.
    for name in list(os.environ):
        if name.startswith("CHURNSTREAM_") or name == "KAFKA_BOOTSTRAP_SERVERS":
            monkeypatch.delenv(name)
    monkeypatch.setenv("CHURNSTREAM_KAFKA_HOME", str(tmp_path / "kafka"))
    monkeypatch.setattr(connect, "docker_daemon_available", lambda: False)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, f"expected one line, got {err!r}"
    assert err.startswith("churnstream: ")
    for needle in needles:
        assert needle in err


# --- version and log level -----------------------------------------------------------------


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"churnstream {version('churnstream')}"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["pseudonym", "u"], None),
        (["-v", "pseudonym", "u"], "debug"),
        (["pseudonym", "u", "-v"], "debug"),
        (["pseudonym", "-v", "u"], "debug"),
        (["--log-level", "warning", "pseudonym", "u"], "warning"),
        (["pseudonym", "u", "--log-level", "ERROR"], "error"),
        # The one given last wins, wherever it is.
        (["--log-level", "error", "pseudonym", "u", "--verbose"], "debug"),
        (["-v", "pseudonym", "u", "--log-level", "info"], "info"),
    ],
)
def test_log_level_options_before_or_after_the_command(
    argv: list[str], expected: str | None
) -> None:
    assert build_parser().parse_args(argv).log_level == expected


def test_bad_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["worker", "--log-level", "loud"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'loud'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({}, ["pseudonym", "u"], "info"),
        ({"CHURNSTREAM_LOG_LEVEL": "warning"}, ["pseudonym", "u"], "warning"),
        ({"CHURNSTREAM_LOG_LEVEL": "warning"}, ["pseudonym", "u", "-v"], "debug"),
        ({"CHURNSTREAM_LOG_LEVEL": "debug"}, ["--log-level", "error", "pseudonym", "u"], "error"),
    ],
)
def test_command_line_level_overrides_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], argv: list[str], expected: str
) -> None:
    seen: list[str] = []

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        seen.append(settings.log_level)
        return 0

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(pseudonym_command, "run", handler)
    assert main(argv) == 0
    assert seen == [expected]


def test_worker_runs_faust_at_the_commands_level(monkeypatch: pytest.MonkeyPatch) -> None:
    import faust

    from churnstream.agents import app as app_module

    levels: list[str] = []

    class FakeWorker:
        def __init__(self, app: object, *, loglevel: str) -> None:
            levels.append(loglevel)

        def execute_from_commandline(self) -> None:
            pass

    monkeypatch.setattr(faust, "Worker", FakeWorker)

    async def no_problems() -> list[str]:
        return []

    app = SimpleNamespace(churnstream=SimpleNamespace(fatal=None, partition_problems=no_problems))
    monkeypatch.setattr(app_module, "create_app", lambda settings, bootstrap: app)
    monkeypatch.setattr(worker_command, "find_bootstrap", lambda settings: "127.0.0.1:1")

    async def same_key(settings: Settings, fingerprint: str, *, bootstrap: str) -> None:
        return None

    monkeypatch.setattr(worker_command, "key_problem", same_key)
    monkeypatch.setenv("CHURNSTREAM_LOG_LEVEL", "error")
    assert main(["worker"]) == 0
    assert main(["worker", "-v"]) == 0
    assert main(["worker", "--log-level", "warning"]) == 0
    assert levels == ["error", "debug", "warning"]


def test_log_level_setting_is_validated() -> None:
    assert Settings.from_env({"CHURNSTREAM_LOG_LEVEL": "WARNING"}).log_level == "WARNING"
    with pytest.raises(SettingsError, match="CHURNSTREAM_LOG_LEVEL"):
        Settings.from_env({"CHURNSTREAM_LOG_LEVEL": "loud"})


# --- help ----------------------------------------------------------------------------------


def command_help(name: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return " ".join(sub.choices[name].format_help().split())  # unwrap argparse's lines


def test_help_names_the_variable_of_options_backed_by_a_setting() -> None:
    text = command_help("topics")
    assert "(default: $CHURNSTREAM_PARTITIONS, else 4)" in text
    assert "(default: $CHURNSTREAM_REPLICATION, else 1)" in text
    assert "(default: $CHURNSTREAM_LOG_LEVEL, else info)" in text
    assert "$CHURNSTREAM_WEB_PORT" in command_help("state")


def test_help_shows_plain_defaults_including_zero() -> None:
    text = command_help("simulate")
    assert "simulated customers (default: 1000)" in text
    assert "random seed (default: 0)" in text
    assert "(default: 0.0)" in text  # --bad-fraction: 0 is a default worth showing


@pytest.mark.parametrize("name", ["kafka", "topics", "simulate", "tail", "replay", "demo"])
def test_help_shows_no_empty_defaults(name: str) -> None:
    text = command_help(name)
    assert "(default: None)" not in text and "(default: False)" not in text


# --- one-line errors -----------------------------------------------------------------------


def test_bad_security_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHURNSTREAM_SECURITY_PROTOCOL", "BOGUS")
    code, _, err = run(["pseudonym", "alice"], capsys)
    assert code == 1
    assert_one_line_error(err, "bad setting", "CHURNSTREAM_SECURITY_PROTOCOL")


def test_bad_setting_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CHURNSTREAM_PARTITIONS", "zero")
    code, _, err = run(["topics", "list"], capsys)
    assert code == 2
    assert_one_line_error(err, "CHURNSTREAM_PARTITIONS")


def test_bad_playbook_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    playbook = tmp_path / "playbook.json"
    playbook.write_text("{not json")
    history = tmp_path / "history.jsonl"
    history.write_text("")
    monkeypatch.setenv("CHURNSTREAM_PLAYBOOK_PATH", str(playbook))
    code, _, err = run(["replay", str(history)], capsys)
    assert code == 1
    assert_one_line_error(err, "playbook", str(playbook), "not valid JSON")


def test_missing_playbook_file_is_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("CHURNSTREAM_PLAYBOOK_PATH", str(tmp_path / "absent.json"))
    code, _, err = run(["replay", str(tmp_path / "history.jsonl")], capsys)
    assert code == 2
    assert_one_line_error(err, "CHURNSTREAM_PLAYBOOK_PATH", "no such file")


def test_simulate_into_a_missing_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", "--out", "/nonexistent/dir/x.jsonl"], capsys)
    assert code == 1
    assert_one_line_error(err, "--out /nonexistent/dir/x.jsonl", "/nonexistent/dir")


def test_replay_report_into_a_missing_directory_fails_before_replaying(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl"
    history.write_text("")
    code, out, err = run(["replay", str(history), "--report", "/nonexistent/x.json"], capsys)
    assert code == 1 and out == ""
    assert_one_line_error(err, "--report /nonexistent/x.json")


def test_replay_of_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(["replay", str(tmp_path / "absent.jsonl")], capsys)
    assert code == 1
    assert_one_line_error(err, "absent.jsonl: no such file")


def test_no_broker_running(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["topics", "list"], capsys)
    assert code == 1
    assert_one_line_error(err, "no Kafka broker", "KAFKA_BOOTSTRAP_SERVERS")


@pytest.mark.parametrize("argv", [["kafka", "start"], ["kafka", "start", "-v"]])
def test_no_broker_available(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    def nothing_startable(env: dict[str, str], *, home: Path) -> broker.BrokerChoice:
        return broker.resolve_bootstrap(
            env,
            home=home,
            docker_available=lambda: False,
            start_local=_raise(broker.KafkaPrerequisiteError("Java not found: install a JDK")),
        )

    monkeypatch.setattr(kafka_command, "resolve_bootstrap", nothing_startable)
    code, _, err = run(argv, capsys)
    assert code == 1
    assert_one_line_error(err, "No Kafka broker available", "Docker: no daemon answers")
    assert "local broker: Java not found: install a JDK" in err


def test_broker_start_failure_shows_the_log_tail_with_verbose(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    failure = KafkaStartError("Local Kafka in /k: broker process exited. Last lines:\nboom")
    monkeypatch.setattr(kafka_command, "resolve_bootstrap", _raise(failure))
    code, _, err = run(["kafka", "start"], capsys)
    assert code == 1
    assert_one_line_error(err, "broker process exited", "(details with -v)")
    _, _, err = run(["-v", "kafka", "start"], capsys)
    assert "Traceback" not in err and err.splitlines()[-1] == "boom"


def test_unreachable_configured_broker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    code, _, err = run(["topics", "list"], capsys)
    assert code == 1
    assert_one_line_error(err, "cannot reach Kafka")


def test_command_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["pseudonym", "alice"], capsys)  # no pseudonym key set
    assert code == 1
    assert_one_line_error(err, "CHURNSTREAM_PSEUDONYM_KEY")


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(args: argparse.Namespace, settings: Settings) -> int:
        raise KeyError("a bug")

    monkeypatch.setattr(pseudonym_command, "run", broken)
    with pytest.raises(KeyError):
        main(["pseudonym", "u"])


def test_error_messages() -> None:
    assert cli_main.message(FileNotFoundError(2, "No such file or directory", "/x")) == (
        "/x: No such file or directory"
    )
    assert cli_main.message(CommandError("  ")) == "CommandError"


def test_check_output(tmp_path: Path) -> None:
    check_output(None, "--out")
    check_output(tmp_path / "x.json", "--out")
    with pytest.raises(CommandError, match=r"--out .*: directory .* does not exist"):
        check_output(tmp_path / "no" / "x.json", "--out")


def _raise(exc: BaseException) -> Any:
    def fail(*args: object, **kwargs: object) -> Any:
        raise exc

    return fail
