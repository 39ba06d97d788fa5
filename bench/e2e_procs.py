"""Processes the end-to-end benchmark starts: churnstream workers and the no-op Faust app.

Both are `stream.devtools.processes` children: each runs in its own session (so it can be
stopped as a group) and gets SIGTERM from Linux if the harness dies, so a crashed benchmark
leaves nothing behind.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from churnstream.stream.devtools.processes import ManagedProcess, spawn, start_worker, worker_env

REPO = Path(__file__).resolve().parents[1]
NOOP_SCRIPT = Path(__file__).resolve().with_name("e2e_noop_faust.py")


def rss_bytes(proc: ManagedProcess) -> tuple[int, int]:
    """(current RSS, peak RSS) of the process, from /proc/PID/status."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(rest.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def start_bench_worker(
    *,
    bootstrap: str,
    prefix: str,
    app_id: str,
    data_dir: Path,
    metrics_port: int,
    web_port: int,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    """(c) `python -m churnstream.stream.cli worker` on its own app id, topic prefix and ports."""
    env = worker_env(
        os.environ,
        bootstrap,
        topic_prefix=prefix,
        app_id=app_id,
        data_dir=data_dir,
        metrics_port=metrics_port,
        web_port=web_port,
    )
    env.update(extra_env or {})
    # Warnings only: a worker logging at info would measure its logging too.
    return start_worker(
        env, log, log_level="warning", name=f"worker {app_id}", cwd=REPO, with_parent=True
    )


def start_noop_faust(
    *,
    bootstrap: str,
    app_id: str,
    topics: Sequence[str],
    data_dir: Path,
    web_port: int,
    log: Path,
) -> ManagedProcess:
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
    return spawn(f"no-op Faust {app_id}", argv, os.environ, log, cwd=REPO, with_parent=True)
