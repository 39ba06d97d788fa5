"""Ingest on the real broker: every invalid record dead-lettered, every valid event applied once.

Traffic: hand-made records (each validation error kind, a ~1 MiB blob, null and foreign keys,
exact duplicates, an in-window late event behind a newer one in the same partition) plus the
simulator's mixed stream (`bad_fraction` > 0, `SimRecord.expect` says what each should become).
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from workers import (
    WorkerProcess,
    clean_pass,
    consume,
    feature_mismatches,
    input_topics,
    make_topics,
    produce_located,
    running_worker,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.agents.metrics import RESULTS
from churnstream.stream.contract.dlq import decode_dlq
from churnstream.stream.contract.topics import DLQ, EXAMPLES
from churnstream.stream.devtools.simulator import SimConfig, generate

pytestmark = pytest.mark.kafka

T0 = 1_767_571_200.0  # 2026-01-05T00:00:00Z
HOUR = 3600.0
MAX_BYTES = 65536
# The broker's default message.max.bytes (1 MiB + 12) must hold the value plus record overhead.
BLOB_BYTES = 2**20 - 1024

LOGINS = "behaviour.logins"
VIEWS = "behaviour.video-views"
SYNCS = "behaviour.integration-syncs"
JOBS = "behaviour.document-jobs"
VALUE = "business.value"
SUBS = "lifecycle.subscriptions"


@dataclass(frozen=True)
class Rec:
    """One produced record: contract topic, key, value, and what the worker must make of it."""

    topic: str
    key: bytes | None
    value: bytes | None
    expect: str  # "valid", "duplicate", "rekey" or the exact DLQ error code


def _login(user: str, n: int, ts: float, **extra: object) -> bytes:
    return orjson.dumps({"event_id": f"{user}-login-{n}", "user_id": user, "ts": ts, **extra})


def _hand_made() -> list[Rec]:
    a, b = "ingest-a", "ingest-b"
    ka = a.encode()
    view = {
        "event_id": "v1",
        "user_id": a,
        "ts": T0 + HOUR,
        "video_id": "x",
        "watched_s": 60,
        "duration_s": 120,
    }
    recs = [
        Rec(
            SUBS,
            ka,
            orjson.dumps(
                {
                    "event_id": "a-signup",
                    "user_id": a,
                    "ts": T0,
                    "event": "signup",
                    "segment": "course",
                    "plan_price": 29.0,
                }
            ),
            "valid",
        ),
        # Ten successful logins of `a`, then one exact duplicate of the third.
        *(Rec(LOGINS, ka, _login(a, i, T0 + (i + 1) * HOUR), "valid") for i in range(10)),
        Rec(LOGINS, ka, _login(a, 2, T0 + 3 * HOUR), "duplicate"),
        # Late but within the allowed lateness, behind a newer login of the same partition.
        Rec(LOGINS, ka, _login(a, 10, T0 + 30 * HOUR), "valid"),
        Rec(LOGINS, ka, _login(a, 11, T0 + 25 * HOUR), "valid"),
        # `b` arrives without a key, keyed by someone else, and as a duplicate of the unkeyed one.
        Rec(LOGINS, None, _login(b, 0, T0 + HOUR), "rekey"),
        Rec(LOGINS, b"someone-else", _login(b, 1, T0 + 2 * HOUR), "rekey"),
        Rec(LOGINS, b.encode(), _login(b, 0, T0 + HOUR), "duplicate"),
        # One of each error kind.
        Rec(LOGINS, ka, b'{"event_id": "broken', "not_json"),
        Rec(
            LOGINS,
            ka,
            b'{"event_id": "\xff\xfe", "user_id": "ingest-a", "ts": 1767571200}',
            "not_json",
        ),
        Rec(LOGINS, ka, b"[1, 2, 3]", "not_object"),
        Rec(LOGINS, ka, orjson.dumps({"event_id": "m", "user_id": a}), "missing_field:ts"),
        Rec(VIEWS, ka, orjson.dumps({**view, "watched_s": "a minute"}), "bad_type:watched_s"),
        Rec(VIEWS, ka, orjson.dumps({**view, "duration_s": 0}), "out_of_range:duration_s"),
        Rec(VIEWS, ka, orjson.dumps({**view, "ts": "yesterday"}), "bad_timestamp"),
        Rec(VIEWS, ka, orjson.dumps({**view, "ts": T0 * 1000}), "bad_timestamp"),
        Rec(
            SYNCS,
            ka,
            orjson.dumps(
                {"event_id": "s", "user_id": a, "ts": T0, "integration": "crm", "status": "maybe"}
            ),
            "bad_enum:status",
        ),
        Rec(
            JOBS,
            ka,
            orjson.dumps(
                {
                    "event_id": "j",
                    "user_id": a,
                    "ts": T0,
                    "job_id": "1",
                    "status": "ok",
                    "pad": "x" * MAX_BYTES,
                }
            ),
            "too_large",
        ),
        Rec(VALUE, ka, b"", "empty"),
        Rec(VALUE, ka, None, "empty"),
        Rec(SUBS, ka, bytes(range(256)) * (BLOB_BYTES // 256), "too_large"),
    ]
    return recs


def _simulated(seed: int) -> list[Rec]:
    config = SimConfig(users=40, days=4, seed=seed, bad_fraction=0.08)
    sims = list(generate(config))
    return [
        Rec(sim.topic, key, value, sim.expect)
        for (_, key, value), sim in zip(sim_to_kafka("", sims), sims, strict=True)
    ]


def _is_error(expect: str) -> bool:
    return expect not in ("valid", "duplicate", "rekey")


def _consumed(worker: WorkerProcess, result: str | None = None) -> int:
    labels = {} if result is None else {"result": result}
    return int(worker.metric("churnstream_records_consumed_total", **labels))


def test_ingest_dead_letters_invalid_and_applies_valid_once(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    recs = _hand_made() + _simulated(seed=5)
    kinds = Counter(r.expect.split(":")[0] for r in recs)
    assert {
        "not_json",
        "missing_field",
        "bad_type",
        "out_of_range",
        "bad_timestamp",
        "bad_enum",
        "too_large",
        "empty",
        "rekey",
        "duplicate",
    } <= kinds.keys()

    with running_worker(kafka_bootstrap, prefix, tmp_path) as worker:
        located = produce_located(
            kafka_bootstrap, [(prefix + r.topic, r.key, r.value) for r in recs]
        )
        n_rekey = kinds["rekey"]
        # Re-keyed records are consumed twice: from their topic and back from churn.rekeyed.
        total = len(recs) + n_rekey
        wait_until(lambda: _consumed(worker) >= total, 90, f"{total} records consumed")
        wait_caught_up(worker, input_topics(prefix), timeout=60)

        invalid = {loc: r for loc, r in zip(located, recs, strict=True) if _is_error(r.expect)}
        dlq = consume(
            kafka_bootstrap, prefix + DLQ, until=lambda got: len(got) >= len(invalid), timeout=30
        )
        assert len(dlq) == len(invalid)
        for message in dlq:
            doc = decode_dlq(message.value)
            rec = invalid.pop((doc["source_topic"], doc["partition"], doc["offset"]))
            assert doc["error"] == rec.expect, doc
            if rec.value is None:
                assert doc["payload_b64"] is None
            else:
                assert doc["payload"] == rec.value[:MAX_BYTES]
                assert doc["payload_size"] == len(rec.value)
                assert base64.b64decode(doc["payload_b64"]) == rec.value[:MAX_BYTES]
        assert invalid == {}, "invalid records missing from the DLQ"

        # Each valid event applied exactly once, wherever it came in.
        valid_ids = {
            orjson.loads(r.value or b"")["event_id"] for r in recs if r.expect in ("valid", "rekey")
        }
        results = {r: _consumed(worker, r) for r in RESULTS}
        applied = results["ok"] + results["late"] + results["too_late"]
        assert applied == len(valid_ids), f"by result: {results}"
        assert _consumed(worker, "duplicate") == kinds["duplicate"]
        assert _consumed(worker, "invalid") == len(dlq)
        assert _consumed(worker, "rekeyed") == n_rekey
        assert _consumed(worker, "redelivered") == 0
        assert _consumed(worker) == total
        assert worker.metric("churnstream_worker_up") == 1

        # Per-user features through the read API equal one clean in-process pass.
        expected = clean_pass((r.topic, r.value) for r in recs)
        a = wait_until(lambda: worker.user("ingest-a"), 30, "ingest-a in the read API")
        assert a["features"]["logins_28d"] == 12  # 10 + 2 late-ordered, the duplicate once
        b = wait_until(lambda: worker.user("ingest-b"), 30, "ingest-b in the read API")
        assert b["features"]["logins_28d"] == 2
        wrong = {}
        for user, state in expected.items():
            view = worker.user(user)
            assert view is not None, f"{user} unknown to the read API"
            diff = feature_mismatches(view["features"], state.features())
            if diff:
                wrong[user] = diff
        assert wrong == {}
        worker._alive()


def test_undecodable_example_goes_to_the_dlq_and_the_trainer_goes_on(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    """`churn.examples` is internal, but a record there that is not an example (another
    writer, a corrupted copy) must not vanish in a log line: DLQ, metric, next records."""
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    with running_worker(kafka_bootstrap, prefix, tmp_path) as worker:
        located = produce_located(
            kafka_bootstrap, [(prefix + EXAMPLES, b"course", b'{"not": "an example"}')]
        )
        (dead,) = consume(kafka_bootstrap, prefix + DLQ, until=bool, timeout=60)
        doc = decode_dlq(dead.value)
        assert (doc["source_topic"], doc["partition"], doc["offset"]) == located[0]
        assert doc["error"] == "internal_error"
        assert doc["payload"] == b'{"not": "an example"}'
        wait_until(
            lambda: worker.metric("churnstream_dlq_records_total", error="internal_error") == 1,
            30,
            "the DLQ metric",
        )
        worker._alive()
