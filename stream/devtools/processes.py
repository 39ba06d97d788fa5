"""Child processes of the dev tools: `churnstream worker` subprocesses (demo, e2e bench,
integration tests) and any other helper process they run next to it.

Each child gets its own session, so stopping it stops everything it started (Faust's own
children included), its output goes to a log file whose tail explains a failure, and it is
waited for on a condition with a deadline, never on a fixed sleep. The worker's command line
is built here only: callers give the log level, never the option that carries it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Final

from churnstream.stream.settings import PREFIX, Settings

__all__ = ["ManagedProcess", "die_with_parent", "spawn", "start_worker", "worker_env"]

WORKER_MODULE: Final = "churnstream.stream.cli"
_SETTING_NAMES: Final = frozenset(f.name for f in fields(Settings)) - {"extra"}
_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> None:
    """`preexec_fn`: runs in the child before exec and asks Linux to SIGTERM it when its
    parent dies, so a crashed harness leaves no process behind."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class ManagedProcess:
    """A started child process (leader of its own session) and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited."""
        if not self.running():
            raise RuntimeError(
                f"{self.name} exited ({self.popen.returncode}); log tail:\n{self.log_tail()}"
            )

    def wait_ready(
        self, ready: Callable[[], object], timeout: float, what: str, every: float = 0.2
    ) -> None:
        """Poll `ready` until it returns something truthy; fail at once if the process exits,
        or after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if ready():
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{self.name}: no {what} after {timeout:.0f} s; log tail:\n{self.log_tail()}"
                )
            time.sleep(every)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 60.0) -> None:
        """Send `sig` to the whole process group and wait for the leader to exit."""
        if self.running():
            os.killpg(self.pid, sig)
            self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a worker then leaves its group and flushes), SIGKILL after `timeout` s."""
        if not self.running():
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


def spawn(
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    *,
    cwd: Path | None = None,
    append: bool = False,
    with_parent: bool = False,
) -> ManagedProcess:
    """Start `argv` in a new session, stdout and stderr to `log` (appended to if `append`, so
    restarts of one worker keep one log). `with_parent`: Linux stops it if this process dies."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab" if append else "wb") as out:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent if with_parent else None,
        )
    return ManagedProcess(name, popen, log)


def worker_env(base: Mapping[str, str], bootstrap: str, **settings: object) -> dict[str, str]:
    """`base` plus the broker and one `CHURNSTREAM_<NAME>` variable per setting given by name
    (`topic_prefix="run1."`); a name that is not a `Settings` field is an error."""
    unknown = sorted(set(settings) - _SETTING_NAMES)
    if unknown:
        raise ValueError(f"not settings: {', '.join(unknown)}")
    env = dict(base)
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env.update({PREFIX + name.upper(): str(value) for name, value in settings.items()})
    return env


def start_worker(
    env: Mapping[str, str],
    log: Path,
    *,
    log_level: str,
    name: str = "worker",
    cwd: Path | None = None,
    append: bool = False,
    with_parent: bool = False,
) -> ManagedProcess:
    """`python -m churnstream.stream.cli worker` with `env` and its log level.

    The level goes in as the `log_level` setting (it wins over one in `env`): the one source
    the worker reads it from, whatever the command line's options are called.
    """
    argv = [sys.executable, "-m", WORKER_MODULE, "worker"]
    child_env = {**env, f"{PREFIX}LOG_LEVEL": log_level}
    return spawn(name, argv, child_env, log, cwd=cwd, append=append, with_parent=with_parent)
