"""Right to be forgotten end to end on the real broker, with real workers.

After `forget`: the user's record is deleted on the owning worker and a tombstone is the last
changelog record of the user, so a restarted worker recovering from the changelog does not
bring the state back: later events of the user start a fresh state (logins counted from 1),
while the other user keeps everything; an `erased` audit record exists and the erasure counter
moved. State is read from the `users` table's changelog, the worker's durable truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import consume, make_topics, produce, running_worker, wait_until

from churnstream.agents.configure import engine_config
from churnstream.model.user_record import UserRecord
from churnstream.stream.cli.commands.forget import publish, request_for
from churnstream.stream.contract import topics as t
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
GONE, KEPT = "erase-me", "keep-me"
TOMBSTONE = "tombstone"


def signup_and_logins(user: str, n: int) -> list[tuple[str, bytes, bytes]]:
    base = {"user_id": user, "segment": "course"}
    out = [
        (
            "lifecycle.subscriptions",
            user.encode(),
            orjson.dumps(
                {**base, "event_id": f"{user}-s", "ts": T0, "event": "signup", "plan_price": 30.0}
            ),
        )
    ]
    out += [login(user, f"{user}-l{i}", T0 + 3600.0 * (i + 1)) for i in range(n)]
    return out


def login(user: str, event_id: str, ts: float) -> tuple[str, bytes, bytes]:
    return (
        "behaviour.logins",
        user.encode(),
        orjson.dumps({"user_id": user, "event_id": event_id, "ts": ts}),
    )


def read_topic(
    bootstrap: str,
    topic: str,
    partitions: int,
    until: Callable[[list[Any]], bool],
    timeout: float,
) -> list[Any]:
    """Read `topic` from the beginning until `until(records)` holds; fails after `timeout`."""
    return consume(bootstrap, topic, until=until, timeout=timeout, partitions=partitions)


def wait_changelog(
    bootstrap: str, changelog: str, settings: Settings, want: dict[str, Any], what: str
) -> None:
    """Wait until the latest changelog record of each user matches `want`.

    `want[user]` is TOMBSTONE or the expected `logins_28d` of the user's stored record.
    """
    config = engine_config(settings).features

    def latest(records: list[Any]) -> dict[str, Any]:
        last: dict[str, Any] = {}
        for r in records:
            user = r.key.decode()
            if r.value is None:
                last[user] = TOMBSTONE
            else:
                rec = UserRecord.from_bytes(user, r.value, config)
                last[user] = rec.state.features(rec.state.clock)["logins_28d"]
        return last

    seen: list[dict[str, Any]] = [{}]

    def done(records: list[Any]) -> bool:
        seen[0] = latest(records)
        return {u: seen[0].get(u) for u in want} == want

    try:
        read_topic(bootstrap, changelog, settings.partitions, done, timeout=60)
    except AssertionError:
        raise AssertionError(
            f"changelog never showed {what}: wanted {want}, last {seen[0]}"
        ) from None


def test_forget_erases_one_user_everywhere(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    produce(
        kafka_bootstrap,
        [
            (prefix + topic, k, v)
            for user in (GONE, KEPT)
            for topic, k, v in signup_and_logins(user, 3)
        ],
    )

    with running_worker(kafka_bootstrap, prefix, tmp_path / "w1") as worker:
        app_id = worker.app_id
        changelog = f"{app_id}-users-changelog"
        wait_changelog(kafka_bootstrap, changelog, settings, {GONE: 3, KEPT: 3}, "both users")
        assert worker.metric("churnstream_erasures_total") == 0

        asyncio.run(publish(request_for(GONE, settings, "req-erase-1"), kafka_bootstrap, settings))
        wait_until(lambda: worker.metric("churnstream_erasures_total") == 1, 60, "the erasure")
        wait_changelog(
            kafka_bootstrap, changelog, settings, {GONE: TOMBSTONE, KEPT: 3}, "the tombstone"
        )

        # On the live worker, a later event of the erased user starts from nothing.
        produce(
            kafka_bootstrap,
            [(prefix + topic, k, v) for topic, k, v in [login(GONE, "late-1", T0 + 86400.0)]],
        )
        wait_changelog(kafka_bootstrap, changelog, settings, {GONE: 1, KEPT: 3}, "fresh state")

    audit = read_topic(
        kafka_bootstrap, settings.topic(t.AUDIT), 1, lambda rs: len(rs) >= 1, timeout=30
    )
    records = [orjson.loads(r.value) for r in audit]
    assert [(r["kind"], r["user_id"], r["request_id"], r["found"]) for r in records] == [
        ("erased", GONE, "req-erase-1", True)
    ]
    assert set(records[0]) == {
        "kind",
        "user_id",
        "request_id",
        "requested_ts",
        "found",
        "erased_at",
    }  # nothing personal beyond the id
    assert [r.key for r in audit] == [GONE.encode()]

    # A new worker of the same app (memory store) rebuilds the table from the changelog before
    # it processes anything: the erased history (3 logins) must not come back.
    with running_worker(kafka_bootstrap, prefix, tmp_path / "w2", app_id=app_id):
        produce(
            kafka_bootstrap,
            [
                (prefix + topic, k, v)
                for topic, k, v in [
                    login(GONE, "late-2", T0 + 2 * 86400.0),
                    login(KEPT, "late-3", T0 + 2 * 86400.0),
                ]
            ],
        )
        wait_changelog(
            kafka_bootstrap,
            changelog,
            settings,
            {GONE: 2, KEPT: 4},
            "recovered state plus one login each",
        )
