"""The real Prometheus tools against deploy/prometheus and the churnstream.agents.metrics endpoint.

promtool validates config, rules and rule unit tests, lints the scraped exposition, and a real
Prometheus server scrapes an in-process metrics server until the expected value shows up.
promtool/prometheus come from deploy/install-prometheus.sh when missing (Debian package).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prom import PROM_DIR, prometheus_server, wait_for_value
from prom import ensure_tools as _ensure_tools
from prom import get as _get
from prom import run as _run

from churnstream.agents.metrics import WorkerMetrics, start_metrics_server

# The alerting rules as written in rules.yml; Prometheus must load every one of them.
RULE_NAMES = re.findall(r"^\s*- alert: (\w+)$", (PROM_DIR / "rules.yml").read_text(), re.M)


@pytest.fixture(scope="module")
def promtool() -> str:
    _ensure_tools()
    path = shutil.which("promtool")
    assert path
    return path


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    _ensure_tools()
    path = shutil.which("prometheus")
    assert path
    return path


def test_promtool_check_config(promtool: str) -> None:
    out = _run([promtool, "check", "config", str(PROM_DIR / "prometheus.yml")])
    assert "SUCCESS" in out


def test_promtool_check_rules(promtool: str) -> None:
    out = _run([promtool, "check", "rules", str(PROM_DIR / "rules.yml")])
    assert f"SUCCESS: {len(RULE_NAMES)} rules found" in out


def test_promtool_test_rules(promtool: str) -> None:
    out = _run([promtool, "test", "rules", "rules_test.yml", "rules_test_daily.yml"], cwd=PROM_DIR)
    assert "SUCCESS" in out


@pytest.fixture
def metrics_server() -> Iterator[tuple[WorkerMetrics, int]]:
    metrics = WorkerMetrics()
    metrics.worker_up.set(1)
    server = start_metrics_server("127.0.0.1", 0, metrics=metrics)
    try:
        yield metrics, server.port
    finally:
        server.close()


def test_scraped_metrics_pass_promtool_lint(
    promtool: str, metrics_server: tuple[WorkerMetrics, int]
) -> None:
    metrics, port = metrics_server
    metrics.consumed("behaviour.logins", "ok").inc(3)
    metrics.dlq("bad_json").inc()
    metrics.lag("behaviour.logins", 1).set(40)
    metrics.observe_batch(25, 0.004)
    metrics.event_to_score_latency_seconds.observe(0.012)
    metrics.observe_score("docs", "rules", 0.71)
    metrics.set_model(
        "docs", version=2, age_seconds=30.0, auc=0.77, log_loss=0.5, calibration_gap=-0.02
    )
    text = _get(f"http://127.0.0.1:{port}/metrics").decode()
    assert 'churnstream_records_consumed_total{result="ok",topic="behaviour.logins"} 3.0' in text
    out = _run([promtool, "check", "metrics"], stdin=text)
    assert out.strip() == "", f"promtool lint findings:\n{out}"


def test_metrics_server_binds_only_the_given_host() -> None:
    server = start_metrics_server("127.0.0.1", 0, metrics=WorkerMetrics())
    try:
        # `host` is read back from the listening socket, not echoed from the argument.
        assert server.host == "127.0.0.1"
        assert _get(f"http://127.0.0.1:{server.port}/metrics").startswith(b"# HELP")
    finally:
        server.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass  # closed: the port is released


def test_real_prometheus_scrapes_the_worker_endpoint(
    prometheus_bin: str, metrics_server: tuple[WorkerMetrics, int], tmp_path: Path
) -> None:
    metrics, port = metrics_server
    expected = 7
    metrics.consumed("behaviour.video-views", "ok").inc(expected)
    promql = 'churnstream_records_consumed_total{topic="behaviour.video-views",result="ok"}'
    with prometheus_server([f"127.0.0.1:{port}"], tmp_path) as base:
        assert wait_for_value(base, promql, expected, timeout=40) == expected
        assert wait_for_value(base, 'up{job="churnstream"}', 1) == 1
        rules = json.loads(_get(f"{base}/api/v1/rules"))["data"]["groups"][0]["rules"]
        assert sorted(r["name"] for r in rules) == sorted(RULE_NAMES)
        assert all(r["health"] != "err" for r in rules), rules
