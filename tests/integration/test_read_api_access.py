"""Read API access on two live workers: every user is read through either worker (requests
for the other's users are routed to it, the bearer token travelling along); no token, or a
wrong one, gets 401; Faust's `/table/...` and `/router/` views are off (issue 18)."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from test_erasure import signup_and_logins
from workers import (
    WorkerProcess,
    input_topics,
    make_topics,
    produce,
    wait_caught_up,
    wait_until,
)

pytestmark = pytest.mark.kafka

TOKEN = "read-api-token-under-test-0123"
USERS = [f"reader-{i}" for i in range(12)]
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}


def get(worker: WorkerProcess, path: str, token: str | None = TOKEN) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}{path}",
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_two_workers_answer_for_every_user_with_the_token_only(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    env = {**FAST_FAILOVER, "CHURNSTREAM_WEB_TOKEN": TOKEN}
    a = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=env)
    b = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "b", env=env)
    try:
        a.start()
        b.start()
        produce(
            kafka_bootstrap,
            [(prefix + t, k, v) for user in USERS for t, k, v in signup_and_logins(user, 2)],
        )
        # Both own partitions once the group settled, and everything is applied.
        wait_until(
            lambda: (
                a.metric("churnstream_records_consumed_total", result="ok") > 0
                and b.metric("churnstream_records_consumed_total", result="ok") > 0
            ),
            90,
            "both workers applying events",
        )
        wait_caught_up(a, input_topics(prefix), timeout=90)
        # Each worker owns some users (both applied events), so each answer for all of them
        # includes answers routed to the other worker, token and all.
        for worker in (a, b):
            for user in USERS:
                status, view = get(worker, f"/users/{user}/")
                assert status == 200 and view["user_id"] == user, (user, status, view)

        for token in (None, "wrong-token-but-long-enough"):
            status, _ = get(a, f"/users/{USERS[0]}/", token)
            assert status == 401
            assert get(a, "/status/", token)[0] == 401
        assert get(a, "/status/")[0] == 200
        for path in (f"/table/users/{USERS[0]}/", "/router/"):
            assert get(a, path)[0] == 404, path
    except BaseException:
        for name, w in (("A", a), ("B", b)):
            print(f"--- worker {name} log tail ---\n{w.log_tail()}")
        raise
    finally:
        a.stop()
        b.stop()
