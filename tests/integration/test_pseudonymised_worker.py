"""Pseudonymisation on a live worker: no raw id in state or outputs, and no key in the log."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from workers import consume, make_topics, produce, running_worker, wait_until

from churnstream.stream.contract.pseudonym import is_pseudonym, pseudonym

pytestmark = pytest.mark.kafka

KEY = "k3y-under-test-" + "5" * 24
USERS = [f"learner-{i}@example.org" for i in range(5)]


def test_outputs_and_state_carry_only_pseudonyms(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    records = []
    for i, user in enumerate(USERS):
        life = {
            "event_id": f"s{i}",
            "user_id": user,
            "ts": 1767600000 + i,
            "event": "signup",
            "segment": "course",
            "plan_price": 40,
        }
        login = {"event_id": f"l{i}", "user_id": user, "ts": 1767603600 + i}
        records.append((f"{prefix}lifecycle.subscriptions", user.encode(), orjson.dumps(life)))
        records.append((f"{prefix}behaviour.logins", user.encode(), orjson.dumps(login)))
    env = {"CHURNSTREAM_PSEUDONYM_KEY": KEY}
    # At the usual info level: at debug, aiokafka logs whole fetch responses, raw ids included.
    with running_worker(kafka_bootstrap, prefix, tmp_path, env=env) as worker:
        produce(kafka_bootstrap, records)
        wait_until(
            lambda: worker.metric("churnstream_records_consumed_total", result="ok") == 10,
            60,
            "every event applied: " + (worker.scrape() or "")[-1500:],
        )
        scores = consume(
            kafka_bootstrap,
            f"{prefix}churn.risk-scores",
            until=lambda rs: len(rs) >= 2 * len(USERS),
            timeout=90,
        )
        expected = {pseudonym(u, KEY.encode()) for u in USERS}
        ids = {orjson.loads(r.value)["user_id"] for r in scores}
        assert ids == expected and all(is_pseudonym(i) for i in ids)
        assert {r.key.decode() for r in scores} == expected
        alias = pseudonym(USERS[0], KEY.encode())
        view = wait_until(lambda: worker.user(alias), 30, "the pseudonymised user's state")
        assert view["user_id"] == alias
        assert worker.user(USERS[0].replace("@", "%40")) is None  # no state under the raw id
        rekeyed = consume(
            kafka_bootstrap,
            f"{prefix}churn.rekeyed",
            until=lambda rs: len(rs) >= len(records),
            timeout=30,
        )
        assert not any(u.encode() in r.value for r in rekeyed for u in USERS)
    log = worker.log_path.read_text(errors="replace")
    assert KEY not in log
    assert not any(u in log for u in USERS)
