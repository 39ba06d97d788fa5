"""Backfill from the input topics, then live: the worker starts exactly where the backfill stopped.

Days 1-15 of a simulated history are on the input topics when `churnstream backfill
--from-topics --until <day 15>` runs (day 15 is already there: the live stream has begun); then
a worker starts, takes day 15 from the committed cuts, and days 16-20 arrive live. What must
hold: every partition's cut is its first record at or after `--until`; the backfill read every
record before the cuts and the worker every record from them, none twice (no duplicate, the
counts add up to what was produced); every user's features equal one pass over all 20 days; the
daily rows after the handover are the replay's rows of all 20 days, field for field (score,
source, model version, drivers; `scored_at` aside). 2026-12-06, 3 runs: 430 rows on both sides
(319 rules, 111 model), 0 differ.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from workers import (
    ROOT,
    clean_pass,
    consume,
    feature_mismatches,
    input_topics,
    make_topics,
    produce,
    produce_day_by_day,
    running_worker,
    sim_to_kafka,
    wait_caught_up,
)

from churnstream.agents.backfill import run_history
from churnstream.model.replay_input import read_records
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.contract.topics import INPUT_TOPICS
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

DAY = 86400.0
CFG = SimConfig(users=80, days=20, seed=8)
CUT = CFG.start + 14 * DAY  # the start of day 15
ON_TOPICS = CFG.start + 15 * DAY  # produced before the backfill: days 1-15
ENV = {"CHURNSTREAM_MIN_LABELS": "30", "CHURNSTREAM_SNAPSHOT_EVERY": "30"}


def test_backfill_from_topics_hands_over_at_the_cuts_without_gap_or_double(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    sims = list(generate(CFG))
    early = [r for r in sims if r.ts < ON_TOPICS]
    later = [r for r in sims if r.ts >= ON_TOPICS]
    assert any(r.ts >= CUT for r in early) and later
    produce(kafka_bootstrap, sim_to_kafka(prefix, early))

    app_id = prefix.strip(".")
    env = {
        **os.environ,
        **ENV,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHURNSTREAM_TOPIC_PREFIX": prefix,
        "CHURNSTREAM_APP_ID": app_id,
        "CHURNSTREAM_PARTITIONS": "4",
    }
    churnstream = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "churnstream")
    done = subprocess.run(
        [churnstream, "backfill", "--from-topics", "--until", rfc3339(CUT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"live stream takes over at {rfc3339(CUT)}" in out, out
    backfilled = int(re.search(r"backfilled ([\d,]+) records", out)[1].replace(",", ""))  # type: ignore[index]
    assert backfilled == sum(r.ts < CUT for r in sims), out  # the simulator's days are in order

    # Each cut is the partition's first record at or after --until.
    cuts, logs = asyncio.run(_cuts_and_logs(kafka_bootstrap, app_id, prefix))
    assert sum(cuts.values()) == backfilled, cuts
    for tp, cut in cuts.items():
        times = logs[tp]
        assert all(ts < CUT for ts in times[:cut]), tp
        assert cut == len(times) or times[cut] >= CUT, tp

    # What the live worker must make: the replay's daily rows the backfill did not make (it
    # had the records before the cut, in this order: the simulator's is by event time).
    history, before = tmp_path / "all.jsonl", tmp_path / "before.jsonl"
    write_jsonl(sims, history)
    write_jsonl([r for r in sims if r.ts < CUT], before)
    replayed = _daily_rows(history)
    made_before = _daily_rows(before, until=CUT).keys()
    want = {k: s for k, s in replayed.items() if k not in made_before}

    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        wait_caught_up(worker, input_topics(prefix), timeout=120)  # day 15, from the cuts
        produce_day_by_day(worker, prefix, later)
        wait_caught_up(worker, input_topics(prefix), timeout=120)
        consumed = worker.metric("churnstream_records_consumed_total")
        assert worker.metric("churnstream_records_consumed_total", result="duplicate") == 0
        assert consumed == len(sims) - backfilled, (consumed, len(sims), backfilled)
        # No gap: every user's features are those of one pass over everything.
        expected = clean_pass(
            (s.topic, v) for s, (_, _, v) in zip(sims, sim_to_kafka("", sims), strict=True)
        )
        wrong = {}
        for user, state in expected.items():
            view = worker.user(user)
            assert view is not None, f"{user} unknown to the worker"
            diff = feature_mismatches(view["features"], state.features())
            if diff:
                wrong[user] = diff
        assert wrong == {}, f"{len(wrong)} users differ, e.g. {next(iter(wrong.items()))}"
        # Daily rows wait for the model as of their day (a round trip through the trainer):
        # the last ones come after the inputs are committed.
        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            consume(
                kafka_bootstrap,
                settings.topic("churn.risk-scores"),
                until=lambda rs: len(_daily(rs).keys() & want) >= len(want),
                timeout=120,
                partitions=settings.partitions,
            )
        n_scores = worker.metric("churnstream_scores_total")
        live = _daily(
            consume(
                kafka_bootstrap,
                settings.topic("churn.risk-scores"),
                until=lambda rs: len(rs) >= n_scores,
                timeout=60,
                partitions=settings.partitions,
            )
        )
    assert not made_before & live.keys(), "a daily row the backfill made was made again"
    both = want.keys() & live.keys()
    differ: Counter[str] = Counter()  # field -> rows where it differs from the replay's
    for k in both:
        a, b = _without_wall_time(live[k]), _without_wall_time(want[k])
        differ.update(f for f in a.keys() | b.keys() if a.get(f) != b.get(f))
    summary = (
        f"daily rows after the handover: replay {len(want)}, live {len(live)}, both "
        f"{len(both)} ({dict(Counter(want[k]['source'] for k in both))}), only live "
        f"{sorted(live.keys() - want.keys())[:3]}, only replay "
        f"{sorted(want.keys() - live.keys())[:3]}; fields that differ (rows) {dict(differ)}; "
        f"the first live boundary {min(k[1] for k in live) if live else '-'}"
    )
    print(summary)
    # The worker continues the backfill exactly: the replay's rows after the handover, no
    # more, field for field (scores, sources, model versions, drivers).
    assert len(want) > 200, summary
    assert live.keys() == want.keys(), summary
    assert not differ, summary


def _without_wall_time(score: dict[str, Any]) -> dict[str, Any]:
    """A score without `scored_at` (the wall clock when it was made)."""
    return {k: v for k, v in score.items() if k != "scored_at"}


def _daily(records: list[Any]) -> dict[tuple[str, str], dict[str, Any]]:
    rows = (orjson.loads(r.value) for r in records)
    return {(s["user_id"], s["ts"]): s for s in rows if s["trigger"] == "daily"}


def _daily_rows(path: Path, until: float | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """A replay's daily rows; with `until`, the backfill's (its replay, cut there)."""
    settings = Settings.from_env(ENV)
    scores = io.BytesIO()
    run_history(read_records(path), settings, until=until, scores_out=scores)
    rows = (orjson.loads(line) for line in scores.getvalue().splitlines())
    return {(s["user_id"], s["ts"]): s for s in rows if s["trigger"] == "daily"}


async def _cuts_and_logs(
    bootstrap: str, group: str, prefix: str
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, list[float]]]:
    """The group's committed offsets on the input topics, and every record's event time."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        described = await admin.describe_topics([prefix + n for n in INPUT_TOPICS.values()])
        tps = [
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        ]
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        cuts = {tp: committed[tp].offset for tp in tps}
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        logs: dict[TopicPartition, list[float]] = {tp: [] for tp in tps}
        while any(len(logs[tp]) < ends[tp] for tp in tps):
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                logs[tp] += [parse_ts(orjson.loads(m.value)["ts"]) or 0.0 for m in batch]
        return cuts, logs
    finally:
        await consumer.stop()
        await admin.close()
