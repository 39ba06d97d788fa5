"""A real Prometheus evaluates deploy/prometheus/rules.yml on a worker's metrics endpoint and sends
the firing alert to a real Alertmanager (Debian's prometheus-alertmanager) configured by
deploy/alertmanager/alertmanager.yml, which delivers it to a webhook receiver in this test.

Only the receiver's URL and the grouping wait of the shipped configuration are changed (a test
cannot wait 30 s per group); routes, receivers and inhibition are the shipped ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from prom import INSTALL, ROOT, free_port, get, prometheus_server, wait_for_value

from churnstream.agents.metrics import WorkerMetrics, start_metrics_server

AM_CONFIG = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
AM_BIN = "prometheus-alertmanager"


def _ensure_alertmanager() -> str:
    if not shutil.which(AM_BIN):
        done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, timeout=900)
        if done.returncode == 3:
            pytest.skip(f"ALERTMANAGER UNAVAILABLE (install script exit 3): {done.stderr.strip()}")
        assert done.returncode == 0, f"install-prometheus.sh failed:\n{done.stdout}\n{done.stderr}"
    path = shutil.which(AM_BIN)
    assert path, f"{AM_BIN} not on PATH after deploy/install-prometheus.sh"
    return path


class Inbox:
    """Webhook payloads received, with a wait on a condition and a deadline."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def add(self, payload: dict[str, Any]) -> None:
        with self._cond:
            self.payloads.append(payload)
            self._cond.notify_all()

    def wait_for_alert(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for payload in self.payloads:
                    for alert in payload["alerts"]:
                        if alert["labels"].get("alertname") == name:
                            return alert
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} delivered in {timeout} s: {self.payloads}")
                self._cond.wait(left)


@contextlib.contextmanager
def webhook_receiver() -> Iterator[tuple[str, Inbox]]:
    inbox = Inbox()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            inbox.add(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # keep test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/churnstream-alerts", inbox
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def alertmanager(binary: str, webhook: str, workdir: Path) -> Iterator[int]:
    text = AM_CONFIG.read_text()
    text, urls = re.subn(
        r"url: http://127\.0\.0\.1:5001/churnstream-alerts", f"url: {webhook}", text
    )
    text, waits = re.subn(r"group_wait: 30s", "group_wait: 1s", text)
    assert urls == 1 and waits == 1, "the shipped alertmanager.yml changed: adapt this test"
    config = workdir / "alertmanager.yml"
    config.write_text(text)
    port = free_port()
    log_path = workdir / "alertmanager.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HOME": str(workdir)},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    get(f"http://127.0.0.1:{port}/-/ready")
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"alertmanager did not start:\n{log_path.read_text()[-3000:]}")
                    time.sleep(0.2)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def test_shipped_alertmanager_config_is_valid() -> None:
    _ensure_alertmanager()
    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with prometheus-alertmanager"
    done = subprocess.run(
        [amtool, "check-config", str(AM_CONFIG)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_prometheus_fires_and_alertmanager_delivers(tmp_path: Path) -> None:
    binary = _ensure_alertmanager()
    metrics = WorkerMetrics()
    metrics.worker_up.set(1)
    endpoint = start_metrics_server("127.0.0.1", 0, metrics=metrics)
    try:
        with (
            webhook_receiver() as (webhook, inbox),
            alertmanager(binary, webhook, tmp_path) as am_port,
            prometheus_server(
                [f"127.0.0.1:{endpoint.port}"], tmp_path, alertmanagers=[f"127.0.0.1:{am_port}"]
            ) as prom,
        ):
            # The counter exists at 0 first, so the refusal is an increase Prometheus sees.
            refused = 'churnstream_outputs_refused_total{reason="message_too_large"}'
            assert wait_for_value(prom, refused, 0, timeout=40) == 0
            metrics.refused("message_too_large")
            alert = inbox.wait_for_alert("ChurnstreamOutputsRefused", timeout=60)
            assert alert["status"] == "firing"
            assert alert["labels"]["severity"] == "critical"
            assert alert["labels"]["reason"] == "message_too_large"
            assert alert["labels"]["instance"] == f"127.0.0.1:{endpoint.port}"
            assert alert["annotations"]["runbook_url"] == (
                "docs/runbook.md#churnstreamoutputsrefused"
            )
            # Alertmanager holds it as active, and nothing else fired on a healthy worker.
            active = json.loads(get(f"http://127.0.0.1:{am_port}/api/v2/alerts"))
            names = {a["labels"]["alertname"] for a in active}
            assert names == {"ChurnstreamOutputsRefused"}, names
    finally:
        endpoint.close()
