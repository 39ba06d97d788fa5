"""Users expire on a live worker (issue 18): a user silent for longer than
CHURNSTREAM_USER_RETENTION_DAYS of event time is removed once another user's events move the
watermark past it: a tombstone is its last changelog record, the read API no longer knows it,
and churnstream_users_expired_total counts it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from test_erasure import TOMBSTONE, login, signup_and_logins, wait_changelog
from workers import make_topics, produce, running_worker, wait_until

pytestmark = pytest.mark.kafka

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z, as test_erasure's events
DAY = 86400.0
QUIET, BUSY = "quiet-one", "busy-one"


def test_a_silent_user_is_removed_after_the_retention(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix, partitions=1)
    env = {
        "CHURNSTREAM_USER_RETENTION_DAYS": "50",
        # Features only (no daily rows or labels waiting for a model), and the topics that
        # send nothing are given up at once, so the logins alone move the watermark.
        "CHURNSTREAM_SCORING": "false",
        "CHURNSTREAM_SOURCE_WAIT_S": "1",
    }
    with running_worker(kafka_bootstrap, prefix, tmp_path, env=env, partitions=1) as worker:
        app_changelog = f"{worker.app_id}-users-changelog"
        records = signup_and_logins(QUIET, 2) + signup_and_logins(BUSY, 2)
        produce(kafka_bootstrap, [(prefix + t, k, v) for t, k, v in records])
        wait_until(lambda: worker.user(QUIET), 60, "the quiet user's state")
        # The busy user logs in daily for 60 days: the watermark passes the quiet user's last
        # event plus 50 days.
        days = [login(BUSY, f"busy-d{d}", T0 + d * DAY) for d in range(1, 61)]
        produce(kafka_bootstrap, [(prefix + t, k, v) for t, k, v in days])
        wait_until(lambda: worker.metric("churnstream_users_expired_total") == 1, 90, "the expiry")
        assert worker.user(QUIET) is None
        assert worker.user(BUSY) is not None
        wait_changelog(
            kafka_bootstrap,
            app_changelog,
            settings.replace(partitions=1),
            {QUIET: TOMBSTONE},
            "the quiet user's tombstone",
        )
        # Back later: a fresh user.
        back = login(QUIET, "quiet-back", T0 + 61 * DAY)
        produce(kafka_bootstrap, [(prefix + back[0], back[1], back[2])])
        view = wait_until(lambda: worker.user(QUIET), 60, "the quiet user back")
        assert view["features"]["logins_28d"] == 1.0, orjson.dumps(view)
