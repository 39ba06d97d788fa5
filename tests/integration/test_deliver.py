"""`churnstream deliver` on the real broker, against real HTTP servers on 127.0.0.1.

Alerts are produced to `churn.alerts`; a `deliver` process is killed with SIGKILL mid-stream
and two others take over in the same group. Every non-holdout alert must reach the webhook at
least once (duplicates with the same idempotency key), holdout alerts never, and the alerts
routed to a sink that always fails must be in `churn.dlq` with the sink and the reason.
"""

from __future__ import annotations

import os
import signal
import sys
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from http_receiver import http_receiver
from workers import ROOT, consume, make_topics, produce, wait_until

from churnstream.stream.contract.dlq import decode_dlq
from churnstream.stream.contract.topics import ALERTS, DLQ
from churnstream.stream.devtools.kafka_local import free_port
from churnstream.stream.devtools.processes import ManagedProcess, spawn, worker_env

pytestmark = pytest.mark.kafka

N_ALERTS = 240


def alert(i: int) -> dict[str, object]:
    return {
        "alert_id": f"{i:032x}",
        "kind": "churn_risk",
        "user_id": f"u{i % 60}",
        "segment": "course" if i % 8 == 0 else "saas",
        "ts": f"2026-02-{1 + i // 24:02d}T{i % 24:02d}:00:00.000Z",
        "severity": "critical" if i % 3 == 0 else "warning",
        "value": 0.8,
        "threshold": 0.5,
        "drivers": [{"feature": "days_since_login", "value": 12.0, "contribution": 1.0}],
        "action": {"code": "check_in", "text": "Call the customer."},
        "message": "Risk 0.80",
        "holdout": i % 10 == 0,
    }


def write_config(path: Path, crm_url: str, bad_url: str, out: Path) -> None:
    path.write_text(
        f"""
max_in_flight = 4

[[sinks]]
name = "crm"
type = "webhook"
url = "{crm_url}"
secret_env = "DELIVER_TEST_SECRET"
timeout_s = 5
backoff_s = 0.05

[[sinks]]
name = "bad"
type = "webhook"
url = "{bad_url}"
max_attempts = 2
backoff_s = 0.01

[[sinks]]
name = "file"
type = "jsonl"
path = "{out}"

[[routes]]
sinks = ["crm", "file"]

[[routes]]
sinks = ["bad"]
segments = ["course"]
"""
    )


def start_deliver(
    bootstrap: str, prefix: str, config: Path, log: Path
) -> tuple[ManagedProcess, int]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CHURNSTREAM_")}
    env = worker_env(base, bootstrap, topic_prefix=prefix, app_id=prefix.strip("."))
    env["DELIVER_TEST_SECRET"] = "integration-secret"
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "churnstream.stream.cli",
        "deliver",
        "--config",
        str(config),
        "--metrics-port",
        str(port),
    ]
    proc = spawn("deliver", argv, env, log, cwd=ROOT, append=True, with_parent=True)
    return proc, port


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return None


def sample(port: int, name: str, labels: str) -> float:
    """The value of one series of a deliver process's metrics (0 if absent)."""
    for line in (scrape(port) or "").splitlines():
        if line.startswith(f"{name}{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_deliver_killed_mid_stream_loses_nothing_and_never_sends_holdout(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    alerts = [alert(i) for i in range(N_ALERTS)]
    produce(
        kafka_bootstrap,
        ((prefix + ALERTS, str(a["user_id"]).encode(), orjson.dumps(a)) for a in alerts),
    )
    expected = {str(a["alert_id"]) for a in alerts if not a["holdout"]}
    holdout = {str(a["alert_id"]) for a in alerts if a["holdout"]}
    course = {str(a["alert_id"]) for a in alerts if a["segment"] == "course" and not a["holdout"]}
    config, log = tmp_path / "deliver.toml", tmp_path / "deliver.log"
    procs: list[ManagedProcess] = []
    with http_receiver("slow", slow_s=0.05) as crm, http_receiver(500) as bad:
        write_config(config, crm.url, bad.url, tmp_path / "alerts.jsonl")
        try:
            first, _ = start_deliver(kafka_bootstrap, prefix, config, log)
            procs.append(first)
            first.wait_ready(lambda: len(crm.requests) >= 40, 90, "40 alerts at the webhook")
            first.kill(signal.SIGKILL)
            received_at_kill = len(crm.requests)
            assert received_at_kill < len(expected), "the first process finished before the kill"
            ports = []
            for _ in range(2):
                proc, port = start_deliver(kafka_bootstrap, prefix, config, log)
                procs.append(proc)
                ports.append(port)
            wait_until(
                lambda: expected <= set(crm.keys()),
                120,
                "every non-holdout alert at the webhook",
            )
            # The survivors sent at least what the killed one had not (their metrics say so).
            wait_until(
                lambda: (
                    sum(sample(p, "churnstream_delivery_sent_total", 'sink="crm"') for p in ports)
                    >= len(expected) - received_at_kill
                ),
                30,
                "the survivors' sent counters",
            )
        finally:
            for proc in procs:
                proc.stop()
        for proc in procs[1:]:
            assert proc.popen.returncode == 0, proc.log_tail()
    keys = crm.keys()
    bodies = {}
    for req in crm.requests:
        doc = orjson.loads(req.body)
        # Duplicates carry the same idempotency key as their body's alert id.
        assert req.headers["Idempotency-Key"] == doc["alert_id"]
        assert req.headers["X-Churnstream-Signature"].startswith("sha256=")
        bodies[doc["alert_id"]] = doc
    assert not holdout & set(keys), "a holdout alert reached the webhook"
    assert set(keys) == expected
    duplicates = sum(n - 1 for n in Counter(keys).values())
    print(f"\n{len(keys)} webhook requests for {len(expected)} alerts ({duplicates} duplicates)")
    assert not holdout & set(bad.keys())

    dlq = consume(
        kafka_bootstrap,
        prefix + DLQ,
        until=lambda rs: (
            course <= {orjson.loads(decode_dlq(r.value)["payload"])["alert_id"] for r in rs}
        ),
        timeout=60,
    )
    docs = [decode_dlq(r.value) for r in dlq]
    assert all(d["error"] == "delivery_failed" for d in docs)
    assert all(d["detail"] == "sink bad: HTTP 500 after 2 attempts" for d in docs)
    assert all(d["source_topic"] == prefix + ALERTS for d in docs)
    lines = (tmp_path / "alerts.jsonl").read_bytes().splitlines()
    assert {orjson.loads(line)["alert_id"] for line in lines} == expected
