"""Processes the end-to-end benchmark starts: churnstream workers and the no-op Faust app.

Each runs in its own session (so it can be stopped as a group) and gets SIGTERM from Linux if
the harness dies, so a crashed benchmark leaves nothing behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOOP_SCRIPT = Path(__file__).resolve().with_name("e2e_noop_faust.py")
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class Proc:
    """A started benchmark process and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check_alive(self) -> None:
        """Raise with the log tail if the process has exited."""
        if self.popen.poll() is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise RuntimeError(f"{self.name} exited ({self.popen.returncode}):\n{tail}")

    def rss_bytes(self) -> tuple[int, int]:
        """(current RSS, peak RSS) of the process, from /proc/PID/status."""
        fields: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) * 1024
        return fields["VmRSS"], fields["VmHWM"]

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL after `timeout` s."""
        if self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.popen.wait()


def _spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path) -> Proc:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return Proc(name, popen, log)


def start_worker(
    *,
    bootstrap: str,
    prefix: str,
    app_id: str,
    data_dir: Path,
    metrics_port: int,
    web_port: int,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
) -> Proc:
    """(c) `python -m churnstream.stream.cli worker` on its own app id, topic prefix and ports."""
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "CHURNSTREAM_TOPIC_PREFIX": prefix,
            "CHURNSTREAM_APP_ID": app_id,
            "CHURNSTREAM_DATA_DIR": str(data_dir),
            "CHURNSTREAM_METRICS_PORT": str(metrics_port),
            "CHURNSTREAM_WEB_PORT": str(web_port),
            "CHURNSTREAM_LOG_LEVEL": "warning",
            **dict(extra_env or {}),
        }
    )
    argv = [sys.executable, "-m", "churnstream.stream.cli", "worker", "--loglevel", "warning"]
    return _spawn(f"worker {app_id}", argv, env, log)


def start_noop_faust(
    *,
    bootstrap: str,
    app_id: str,
    topics: Sequence[str],
    data_dir: Path,
    web_port: int,
    log: Path,
) -> Proc:
    """(b) The no-op Faust agent of `e2e_noop_faust.py` over `topics`."""
    argv = [
        sys.executable,
        str(NOOP_SCRIPT),
        "--bootstrap",
        bootstrap,
        "--app-id",
        app_id,
        "--data-dir",
        str(data_dir),
        "--web-port",
        str(web_port),
        *topics,
    ]
    return _spawn(f"no-op Faust {app_id}", argv, dict(os.environ), log)
