"""Dev-tool child processes: log, readiness with a deadline, graceful stop, the worker command."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from churnstream.stream.devtools import processes
from churnstream.stream.devtools.processes import ManagedProcess, spawn, start_worker, worker_env

# Says it is ready, then waits for SIGTERM and says goodbye: a well-behaved worker.
ON_TERM = "lambda *_: (print('bye', flush=True), sys.exit(0))"
POLITE = (
    "import signal, sys, time\n"
    f"signal.signal(signal.SIGTERM, {ON_TERM})\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def python(tmp_path: Path, code: str, **kw: Any) -> ManagedProcess:
    return spawn("child", [sys.executable, "-c", code], {}, tmp_path / "logs" / "child.log", **kw)


def test_ready_on_a_condition_then_stopped_gracefully(tmp_path: Path) -> None:
    proc = python(tmp_path, POLITE)
    try:
        proc.wait_ready(lambda: "ready" in proc.log.read_text(), 10, "greeting")
        assert proc.running()
    finally:
        proc.stop(timeout=10)
    assert not proc.running() and proc.popen.returncode == 0
    assert proc.log_tail().splitlines() == ["ready", "bye"]


def test_a_process_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    stubborn = POLITE.replace(ON_TERM, "signal.SIG_IGN")
    proc = python(tmp_path, stubborn)
    # Only once it ignores SIGTERM: earlier, Python's default would end it by SIGTERM.
    proc.wait_ready(lambda: "ready" in proc.log.read_text(), 10, "greeting")
    proc.stop(timeout=0.5)
    assert proc.popen.returncode == -signal.SIGKILL


def test_an_exit_while_waiting_fails_at_once_with_the_log_tail(tmp_path: Path) -> None:
    proc = python(tmp_path, "print('no broker'); raise SystemExit(3)")
    with pytest.raises(RuntimeError, match=r"child exited \(3\)(.|\n)*no broker"):
        proc.wait_ready(lambda: False, 30, "metrics")


def test_waiting_ends_at_the_deadline(tmp_path: Path) -> None:
    proc = python(tmp_path, POLITE)
    try:
        with pytest.raises(TimeoutError, match="no metrics after 0 s"):
            proc.wait_ready(lambda: False, 0.3, "metrics", every=0.05)
    finally:
        proc.stop(timeout=10)


def test_append_keeps_the_log_of_an_earlier_run(tmp_path: Path) -> None:
    for text in ("first", "second"):
        proc = python(tmp_path, f"print({text!r})", append=True)
        proc.popen.wait(timeout=10)
    assert proc.log_tail().splitlines() == ["first", "second"]


def test_worker_env_names_settings_and_rejects_others() -> None:
    env = worker_env({"PATH": "/bin"}, "k:9092", topic_prefix="t.", metrics_port=9999)
    assert env == {
        "PATH": "/bin",
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "CHURNSTREAM_TOPIC_PREFIX": "t.",
        "CHURNSTREAM_METRICS_PORT": "9999",
    }
    with pytest.raises(ValueError, match="not settings: metric_port"):
        worker_env({}, "k:9092", metric_port=1)


def test_the_worker_command_carries_the_log_level_as_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def fake_spawn(name: str, argv: list[str], env: dict[str, str], log: Path, **kw: Any) -> Any:
        seen.update(name=name, argv=argv, env=env, log=log, **kw)

    monkeypatch.setattr(processes, "spawn", fake_spawn)
    start_worker({"CHURNSTREAM_LOG_LEVEL": "debug"}, tmp_path / "w.log", log_level="warning")
    assert seen["argv"] == [sys.executable, "-m", "churnstream.stream.cli", "worker"]
    assert seen["env"]["CHURNSTREAM_LOG_LEVEL"] == "warning"  # the argument wins
