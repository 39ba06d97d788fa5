"""Every query of the Grafana dashboard, evaluated by a real Prometheus that scraped a live worker.

A worker consumes a simulated history (with some invalid records) until its models are in use,
while a real Prometheus scrapes it every second. Then each panel's expression and each template
variable's query is sent to Prometheus's query API with the variables filled in as Grafana would
(all jobs, instances and segments of this worker): every one must parse and evaluate, and every
one must return data, except the few named in NO_DATA with the reason this scenario has none.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from prom import ROOT, get, prometheus_server, scalar
from workers import (
    WorkerProcess,
    input_topics,
    make_topics,
    produce,
    running_worker,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.devtools.simulator import SimConfig, generate

pytestmark = pytest.mark.kafka

DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "churnstream.json"
SIM = SimConfig(users=60, days=40, seed=11, bad_fraction=0.02)
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "50"}
TIMEOUT = 300.0
# Grafana's $__rate_interval is at least 4 scrape intervals; the test's Prometheus scrapes each 1 s.
RATE_INTERVAL = "15s"

# Queries that have no series in this scenario, and why: counters whose label values are open
# get their first series when the event first happens, which a healthy run never does.
NO_DATA: dict[str, str] = {
    "Input order: held events, early releases, offset gaps and repeats / s [X]": (
        "input_records_expired_total{topic}: no record removed by retention"
    ),
    "Decisions waiting for data [B]": "decisions_at_limit_total{reason}: no wait hit its limit",
    "Decisions waiting for data [C]": "sources_given_up_total{kind}: no source given up",
}


def _targets() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    return [
        (f"{panel['title']} [{target['refId']}]", target["expr"])
        for panel in dash["panels"]
        for target in panel.get("targets", [])
    ]


def _variable_queries() -> list[tuple[str, str]]:
    """`label_values(selector, label)` of each query variable, as an instant query."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", var["definition"])
        assert m, var["definition"]
        out.append((f"variable {var['name']}", f"count by ({m.group(2)}) ({m.group(1)})"))
    return out


def _fill(expr: str, instance: str) -> str:
    """The expression as Grafana sends it with this worker and every segment selected."""
    values = {
        "$__rate_interval": RATE_INTERVAL,
        "$__interval": "1s",
        "$job": "churnstream",
        # Grafana escapes a regex value for a PromQL string: 127\\.0\\.0\\.1
        "$instance": re.escape(instance).replace("\\", "\\\\"),
        "$segment": "|".join(SEGMENTS),
    }
    for name, value in values.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def _query(base: str, expr: str) -> dict[str, Any]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        return json.loads(get(url))
    except OSError as exc:  # HTTP 400/422 carry the parse or evaluation error
        body = getattr(exc, "read", lambda: b"")()
        return json.loads(body) if body else {"status": "error", "error": str(exc)}


def _load(worker: WorkerProcess, prefix: str) -> None:
    produce(worker.bootstrap, sim_to_kafka(prefix, generate(SIM)))
    wait_until(
        lambda: all(worker.metric("churnstream_model_version", segment=s) > 0 for s in SEGMENTS),
        TIMEOUT,
        "a model in use in every segment",
    )
    wait_caught_up(worker, input_topics(prefix), timeout=TIMEOUT)


def test_every_dashboard_query_returns_data_from_a_live_worker(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    (tmp_path / "prom").mkdir()
    with running_worker(kafka_bootstrap, prefix, tmp_path / "w", env=ENV) as worker:
        instance = f"127.0.0.1:{worker.metrics_port}"
        with prometheus_server([instance], tmp_path / "prom") as base:
            _load(worker, prefix)
            # Prometheus has scraped the worker's final counts (and a window of rates after).
            total = worker.metric("churnstream_records_consumed_total")
            wait_until(
                lambda: scalar(base, "sum(churnstream_records_consumed_total)") == total,
                60,
                f"Prometheus to scrape {total:.0f} consumed records",
            )
            gaps = scalar(base, 'sum(churnstream_input_gaps_total{kind=~"lost|stalled"})')
            failed: dict[str, str] = {}
            empty: list[str] = []
            for name, expr in _targets() + _variable_queries():
                body = _query(base, _fill(expr, instance))
                if body.get("status") != "success":
                    failed[name] = f"{expr}: {body.get('error')}"
                elif not body["data"]["result"]:
                    empty.append(name)
    assert not failed, "queries Prometheus rejects:\n" + "\n".join(failed.values())
    assert sorted(empty) == sorted(NO_DATA), f"queries without data: {empty}"
    # The basis of ChurnstreamInputGaps (deploy/prometheus/rules.yml): none in a healthy run.
    assert gaps == 0
