"""kill -9 with pseudonymisation on: copies re-sent through churn.rekeyed are applied once.

With pseudonymisation every record goes through churn.rekeyed. A worker killed after sending
re-keyed copies but before committing its input offsets re-keys the same records again after
the restart, with new offsets in churn.rekeyed. One user sends far more events than the 64
event-id hashes a state keeps, so only the origin marks (agents/redelivery.py) can tell the
copies apart; the user's features must equal one clean pass of the records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import (
    WorkerProcess,
    clean_pass,
    consumer_lag,
    end_offsets,
    feature_mismatches,
    input_topics,
    make_topics,
    produce,
    wait_caught_up,
    wait_until,
)

from churnstream.stream.contract.pseudonym import pseudonym

pytestmark = pytest.mark.kafka

KEY = "k3y-under-test-" + "7" * 24
HEAVY = "heavy@example.org"
LIGHT = [f"light-{i}@example.org" for i in range(20)]
T0 = 1767600000.0
LOGINS = "behaviour.logins"
# Members of a killed worker's group are dropped after 6 s (the broker's minimum).
FAST_FAILOVER = {"BROKER_SESSION_TIMEOUT": "6", "BROKER_HEARTBEAT_INTERVAL": "1"}


def history() -> list[tuple[str, bytes]]:
    """(topic, value): 3000 logins of one user over a day, 10 of each light user."""
    out = []
    for i in range(3000):
        doc = {"user_id": HEAVY, "event_id": f"h{i}", "ts": T0 + 25.0 * i}
        out.append((LOGINS, orjson.dumps(doc)))
    for j, user in enumerate(LIGHT):
        for i in range(10):
            doc = {"user_id": user, "event_id": f"l{j}-{i}", "ts": T0 + 7000.0 * i + j}
            out.append((LOGINS, orjson.dumps(doc)))
    return out


def kafka_records(prefix: str, records: list[tuple[str, bytes]]) -> list[Any]:
    return [(prefix + topic, orjson.loads(v)["user_id"].encode(), v) for topic, v in records]


def test_kill_9_with_pseudonymisation_never_double_counts_a_heavy_user(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    records = history()
    env = {**FAST_FAILOVER, "CHURNSTREAM_PSEUDONYM_KEY": KEY}
    first = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=env)
    second = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "a", env=env)
    logins, rekeyed = prefix + LOGINS, prefix + "churn.rekeyed"
    try:
        first.start()
        # Fed in chunks; killed as soon as copies of at least 100 records are on
        # churn.rekeyed while their input offsets are not committed yet (the crash window;
        # the worker commits its inputs at most once a second).

        def crash_window(sent: int) -> tuple[int, bool] | None:
            copies = sum(end_offsets(kafka_bootstrap, [rekeyed]).values())
            lag = sum(consumer_lag(kafka_bootstrap, first.app_id, [logins]).values())
            window = copies - (sent - lag)  # copies whose input is not committed
            if window >= 100:
                return (window, True)
            return (window, False) if lag == 0 else None  # the chunk went through: next

        window, caught = 0, False
        for sent in range(500, 3001, 500):  # the heavy user's records
            produce(kafka_bootstrap, kafka_records(prefix, records[sent - 500 : sent]))
            window, caught = wait_until(lambda n=sent: crash_window(n), 60, "the chunk", 0.02)
            if caught:
                break
        assert caught, "no crash window seen"
        first.kill()
        rest = records[sent:]
        second.start()
        if rest:
            produce(kafka_bootstrap, kafka_records(prefix, rest))
        wait_caught_up(second, input_topics(prefix), timeout=180)
        copies = sum(end_offsets(kafka_bootstrap, [rekeyed]).values())
        redelivered = second.metric("churnstream_records_consumed_total", result="redelivered")
        print(f"crash window {window}, copies {copies - len(records)}, redelivered {redelivered}")
        assert copies - len(records) >= 100  # re-sent copies did reach churn.rekeyed
        aliased = [
            (topic, orjson.dumps({**doc, "user_id": pseudonym(doc["user_id"], KEY.encode())}))
            for topic, doc in ((t, orjson.loads(v)) for t, v in records)
        ]
        expected = clean_pass(aliased)
        wrong = {}
        for user in [HEAVY, *LIGHT]:
            alias = pseudonym(user, KEY.encode())
            view = wait_until(lambda a=alias: second.user(a), 30, "the user's state")
            diff = feature_mismatches(view["features"], expected[alias].features())
            if diff:
                wrong[user] = diff
        assert wrong == {}, wrong
    except BaseException:
        print(f"--- first ---\n{first.log_tail()}\n--- second ---\n{second.log_tail()}")
        raise
    finally:
        first.stop()
        second.stop()
