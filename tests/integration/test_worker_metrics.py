"""The live worker's /metrics: lint-clean for promtool, and scraped by a real Prometheus."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from prom import ensure_tools, prometheus_server, run, wait_for_value
from workers import make_topics, produce, running_worker, wait_until

pytestmark = pytest.mark.kafka

LOGINS, USERS, BAD = 30, 10, 5


def _records(prefix: str) -> list[tuple[str, bytes | None, bytes | None]]:
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(LOGINS):
        user = f"u{i % USERS}"
        body = {"event_id": f"e{i}", "user_id": user, "ts": 1767600000 + 3600 * i}
        out.append((f"{prefix}behaviour.logins", user.encode(), orjson.dumps(body)))
    out += [(f"{prefix}behaviour.logins", b"x", b"{not json")] * BAD
    return out


def test_live_worker_metrics_are_lint_clean_and_scraped(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    ensure_tools()
    make_topics(kafka_bootstrap, fresh_topic_prefix)
    with running_worker(kafka_bootstrap, fresh_topic_prefix, tmp_path / "w") as worker:
        produce(kafka_bootstrap, _records(fresh_topic_prefix))
        wait_until(
            lambda: worker.metric("churnstream_records_consumed_total", result="ok") == LOGINS,
            90,
            "all valid logins applied",
        )
        text = worker.scrape() or ""
        assert 'result="invalid",topic="behaviour.logins"} 5.0' in text
        lint = run([shutil.which("promtool") or "promtool", "check", "metrics"], stdin=text)
        assert lint.strip() == "", f"promtool findings on the live worker:\n{lint}"

        (tmp_path / "prom").mkdir()
        with prometheus_server([f"127.0.0.1:{worker.metrics_port}"], tmp_path / "prom") as base:
            ok = 'sum(churnstream_records_consumed_total{result="ok"})'
            assert wait_for_value(base, ok, LOGINS) == LOGINS
            assert wait_for_value(base, "sum(churnstream_dlq_records_total)", BAD) == BAD
            assert wait_for_value(base, 'up{job="churnstream"}', 1) == 1
