"""Read API of a live worker: `GET /users/{id}/` and `churnstream state` agree on a user."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from workers import (
    ROOT,
    clean_pass,
    feature_mismatches,
    input_topics,
    make_topics,
    produce,
    running_worker,
    wait_caught_up,
    wait_until,
)

from churnstream.features import FEATURE_NAMES

pytestmark = pytest.mark.kafka

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
DAY = 86400.0
USER = "reader-1"


def _events() -> list[tuple[str, dict[str, object]]]:
    base = {"user_id": USER, "segment": "course"}
    out: list[tuple[str, dict[str, object]]] = [
        (
            "lifecycle.subscriptions",
            {**base, "event_id": "r-s", "ts": T0, "event": "signup", "plan_price": 30.0},
        ),
    ]
    for i in range(5):
        out.append(
            (
                "behaviour.logins",
                {**base, "event_id": f"r-l{i}", "ts": T0 + i * DAY / 2, "success": i != 3},
            )
        )
    out.append(
        (
            "behaviour.video-views",
            {
                **base,
                "event_id": "r-v",
                "ts": T0 + 2 * DAY,
                "video_id": "v1",
                "watched_s": 300,
                "duration_s": 600,
                "seeks": 2,
            },
        )
    )
    return out


def _state_cli(port: int, user_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "churnstream.stream.cli",
            "state",
            user_id,
            "--json",
            "--url",
            f"http://127.0.0.1:{port}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_read_api_and_state_cli(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    events = _events()
    produce(
        kafka_bootstrap,
        [(prefix + topic, USER.encode(), orjson.dumps(body)) for topic, body in events],
    )
    expected = clean_pass((topic, orjson.dumps(body)) for topic, body in events)[USER]

    with running_worker(kafka_bootstrap, prefix, tmp_path) as worker:
        wait_caught_up(worker, input_topics(prefix), timeout=60)
        view = wait_until(lambda: worker.user(USER), 30, "the user in the read API")

        assert view["user_id"] == USER
        assert view["segment"] == "course"
        assert view["churned"] is False
        assert list(view["features"]) == list(FEATURE_NAMES)
        assert view["features"]["logins_28d"] == 4  # successful logins only
        assert view["features"]["failed_logins_28d"] == 1
        assert view["features"]["videos_started_28d"] == 1
        assert feature_mismatches(view["features"], expected.features()) == {}
        # Every valid event is scored (score_min_interval_s = 0): the last is the video view.
        last = view["last_score"]
        assert last is not None and last["ts"] == T0 + 2 * DAY
        assert 0.0 <= last["score"] <= 1.0 and last["source"] in ("rules", "model")
        # Pending labels come from daily rows, made once every input partition has passed a
        # midnight (partitions without data are waited for, then idle): not the subject here.
        assert isinstance(view["pending_labels"], int) and view["pending_labels"] >= 0

        assert worker.user("nobody-here") is None  # 404

        shown = _state_cli(worker.web_port, USER)
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout) == view

        unknown = _state_cli(worker.web_port, "nobody-here")
        assert unknown.returncode == 3, unknown.stderr
        assert "unknown user 'nobody-here'" in unknown.stdout
