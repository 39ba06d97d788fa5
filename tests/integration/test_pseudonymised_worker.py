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


def test_forget_by_pseudonym_or_raw_id_and_no_raw_id_in_the_dlq(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: `forget p-...` erases the user the pseudonym names (it was hashed again and
    erased nobody), a request naming the raw id (made without the key) erases its pseudonym,
    and a bad record of a raw id reaches the DLQ under the pseudonym only."""
    import asyncio

    from churnstream.stream.cli.commands.forget import publish, request_for
    from churnstream.stream.contract.dlq import decode_dlq
    from churnstream.stream.kafka.security import ENV_VARS

    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    by_alias, by_raw = USERS[0], USERS[1]
    records = []
    for i, user in enumerate((by_alias, by_raw)):
        login = {"event_id": f"l{i}", "user_id": user, "ts": 1767603600 + i}
        records.append((f"{prefix}behaviour.logins", user.encode(), orjson.dumps(login)))
    bad = {"event_id": "bad", "user_id": USERS[2]}  # no ts
    records.append((f"{prefix}behaviour.logins", USERS[2].encode(), orjson.dumps(bad)))
    key = KEY.encode()
    with running_worker(
        kafka_bootstrap, prefix, tmp_path, env={"CHURNSTREAM_PSEUDONYM_KEY": KEY}
    ) as worker:
        produce(kafka_bootstrap, records)
        for user in (by_alias, by_raw):
            wait_until(lambda u=user: worker.user(pseudonym(u, key)), 60, "the user's state")
        [dead] = consume(
            kafka_bootstrap, f"{prefix}churn.dlq", until=lambda rs: len(rs) >= 1, timeout=30
        )
        assert dead.key == pseudonym(USERS[2], key).encode()
        assert USERS[2].encode() not in dead.value
        assert orjson.loads(decode_dlq(dead.value)["payload"])["user_id"] == pseudonym(
            USERS[2], key
        )

        keyed = settings.replace(extra={"CHURNSTREAM_PSEUDONYM_KEY": KEY})
        alias_request = request_for(pseudonym(by_alias, key), keyed, "req-alias")
        raw_request = request_for(by_raw, settings, "req-raw")  # no key here: the raw id
        assert raw_request.user_id == by_raw
        for request in (alias_request, raw_request):
            asyncio.run(publish(request, kafka_bootstrap, settings))
        wait_until(lambda: worker.metric("churnstream_erasures_total") == 2, 60, "two erasures")
        assert worker.user(pseudonym(by_alias, key)) is None
        assert worker.user(pseudonym(by_raw, key)) is None
