"""Real Prometheus tools for tests: installed by deploy/install-prometheus.sh when missing."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROM_DIR = ROOT / "deploy" / "prometheus"
INSTALL = ROOT / "deploy" / "install-prometheus.sh"


def ensure_tools() -> None:
    if shutil.which("promtool") and shutil.which("prometheus"):
        return
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
    if done.returncode == 3:
        pytest.skip(f"PROMETHEUS TOOLS UNAVAILABLE (install script exit 3): {done.stderr.strip()}")
    assert done.returncode == 0, f"install-prometheus.sh failed:\n{done.stdout}\n{done.stderr}"


def run(cmd: list[str], cwd: Path | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(cmd)} failed ({done.returncode}):\n{out}"
    return out


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(base: str, promql: str) -> list[dict[str, object]]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    body = json.loads(get(url))
    assert body["status"] == "success", body
    return body["data"]["result"]


def scalar(base: str, promql: str) -> float | None:
    """The single value of `promql` now, None while Prometheus has none (or is not up)."""
    try:
        result = query(base, promql)
    except OSError:
        return None
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


@contextlib.contextmanager
def prometheus_server(
    targets: list[str], workdir: Path, alertmanagers: list[str] | None = None
) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 scraping `targets` every second and evaluating rules.yml,
    sending firing alerts to `alertmanagers` (host:port) if given; yields its base URL."""
    ensure_tools()
    config = workdir / "prometheus.yml"
    alerting = (
        "alerting:\n  alertmanagers:\n    - static_configs:\n"
        f"        - targets: {json.dumps(alertmanagers)}\n"
        if alertmanagers
        else ""
    )
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {PROM_DIR / 'rules.yml'}\n"
        + alerting
        + "scrape_configs:\n  - job_name: churnstream\n    static_configs:\n"
        f"      - targets: {json.dumps(targets)}\n"
    )
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                shutil.which("prometheus") or "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(workdir)},
        )
        try:
            yield f"http://127.0.0.1:{port}"
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited:\n{log_path.read_text()[-3000:]}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def wait_for_value(base: str, promql: str, expected: float, timeout: float = 60.0) -> float:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = scalar(base, promql)
        if value == expected:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{promql}: {value} after {timeout} s, expected {expected}")
