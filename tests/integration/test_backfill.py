"""Backfill then live: days 1-60 through `churnstream backfill`, days 61-90 through a worker.

The alerts and daily scores of days 61-90 are compared with a `replay` of all 90 days. What must
hold: the worker recovers the backfilled users as the replay left them and installs the
backfilled models; nothing the backfill made is published; the live worker continues exactly
where the backfill stopped: every daily row of days 61-90 equals the replay's field for field
(score, model version, drivers; `scored_at` aside) and the alerts are the replay's (2026-12-06:
3,441 rows, 0 differ, 84 alerts in both; before issue 15 made live = replay, 2,039 rows
differed from day 62 on at equal model versions).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import (
    ROOT,
    consume,
    feature_mismatches,
    input_topics,
    make_topics,
    produce,
    produce_day_by_day,
    running_worker,
    wait_caught_up,
    wait_until,
)

from churnstream.agents.backfill import run_history
from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.model.snapshot_codec import decode
from churnstream.model.user_view import user_view
from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.devtools.simulator import SimConfig, generate, write_jsonl
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

DAY = 86400.0
CFG = SimConfig(users=150, days=90, seed=21)
CUT = CFG.start + 60 * DAY
ENV = {"CHURNSTREAM_MIN_LABELS": "50", "CHURNSTREAM_SNAPSHOT_EVERY": "50"}


def replay_all(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    settings = Settings.from_env(ENV)
    scores, alerts = io.BytesIO(), io.BytesIO()
    Replay(
        engine_config(settings),
        alert_policy(settings),
        snapshot_every=settings.snapshot_every,
        scores_out=scores,
        alerts_out=alerts,
    ).run(read_records(path))
    return (
        [orjson.loads(line) for line in scores.getvalue().splitlines()],
        [orjson.loads(line) for line in alerts.getvalue().splitlines()],
    )


def read_all(settings: Settings, topic: str, n: int) -> list[dict[str, Any]]:
    records = consume(
        settings.bootstrap_servers,
        settings.topic(topic),
        until=lambda rs: len(rs) >= n,
        timeout=120,
        partitions=settings.partitions,
    )
    return [orjson.loads(r.value) for r in records]


def test_backfill_then_live_equals_a_replay_of_everything(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    sims = list(generate(CFG))
    history = tmp_path / "history.jsonl"
    write_jsonl(sims, history)
    live = [r for r in sims if r.ts >= CUT]
    assert live and len(live) < len(sims)

    env = {
        **os.environ,
        **ENV,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHURNSTREAM_TOPIC_PREFIX": prefix,
        "CHURNSTREAM_APP_ID": prefix.strip("."),
    }
    churnstream = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "churnstream")
    done = subprocess.run(
        [churnstream, "backfill", str(history), "--until", rfc3339(CUT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert f"live stream takes over at {rfc3339(CUT)}" in out, out
    assert f"{len(live):,} at or after --until left for the live stream" in out, out

    # What the backfill wrote, computed again in this process (same code, same cut).
    old_scores, old_alerts = io.BytesIO(), io.BytesIO()
    offline = run_history(
        read_records(history),
        Settings.from_env(ENV),
        until=CUT,
        scores_out=old_scores,
        alerts_out=old_alerts,
    ).replay
    backfilled = offline.repo.records
    made_before = {_key(orjson.loads(line)) for line in old_scores.getvalue().splitlines()}
    alerted_before = {orjson.loads(line)["alert_id"] for line in old_alerts.getvalue().splitlines()}

    # A second backfill into the same deployment is refused (the table holds records).
    again = subprocess.run(
        [churnstream, "backfill", str(history), "--until", rfc3339(CUT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 1 and "already holds" in again.stderr, again.stderr[-500:]

    everything_scores, everything_alerts = replay_all(history)
    # The replay's scores and alerts after the handover: those the backfill did not make.
    want_daily = {
        (s["user_id"], s["ts"]): s
        for s in everything_scores
        if s["trigger"] == "daily" and _key(s) not in made_before
    }

    # The models as `churnstream model list` shows them; one exported as the published data.
    listed = subprocess.run(
        [churnstream, "model", "list"], env=env, capture_output=True, text=True, check=True
    ).stdout
    for segment in SEGMENTS:
        version = offline.trainer.models[segment].version
        assert f"{segment:<6}  v{version:<8}" in listed, listed
    assert listed.count(f"backfill until {rfc3339(CUT)}") == len(SEGMENTS), listed
    exported = tmp_path / "saas.json"
    subprocess.run(
        [churnstream, "model", "export", "saas", str(exported)], env=env, check=True, timeout=60
    )
    assert decode(exported.read_bytes()).version == offline.trainer.models["saas"].version

    # Anyone who can write churn.models tries to run code on the workers: refused, counted.
    marker = tmp_path / "pwned"
    produce(
        kafka_bootstrap,
        [(settings.topic("churn.models"), b"saas", pickle.dumps(_RunsCommand(marker)))],
    )

    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        for segment in SEGMENTS:
            version = offline.trainer.models[segment].version
            assert version > 0, f"the backfill learned no {segment} example"
            wait_until(
                lambda s=segment, v=version: worker.metric(
                    "churnstream_model_version", segment=s
                ) >= v,
                120, f"the worker to install the backfilled {segment} model v{version}",
            )  # fmt: skip
        # Recovered as its own: users' views equal the backfill's records.
        for user in sorted(backfilled)[:: max(1, len(backfilled) // 30)]:
            view = worker.user(user)
            assert view is not None, f"{user} not recovered"
            want = user_view(backfilled[user])
            assert feature_mismatches(view["features"], want["features"]) == {}, user
            for part in ("segment", "churned", "clock", "pending_labels", "alerts"):
                # as JSON: the read API sends tuples as lists
                assert view[part] == orjson.loads(orjson.dumps(want[part])), (user, part)
        # the model feed refuses it (and the trainer, when it restores before its first example)
        wait_until(
            lambda: worker.metric("churnstream_model_snapshots_unreadable_total") >= 1,
            60, "the crafted snapshot to be refused",
        )  # fmt: skip
        produce_day_by_day(worker, prefix, live)
        wait_caught_up(worker, input_topics(prefix), timeout=120)
        # Daily rows wait for the model as of their day (a round trip through the trainer):
        # the last days' rows come after the inputs are committed.
        with contextlib.suppress(AssertionError):  # the assertions below say what is missing
            consume(
                settings.bootstrap_servers,
                settings.topic("churn.risk-scores"),
                until=lambda rs: _daily_keys(rs) >= len(want_daily),
                timeout=180,
                partitions=settings.partitions,
            )
        n_scores = int(worker.metric("churnstream_scores_total"))
        n_alerts = int(worker.metric("churnstream_alerts_total"))
        live_scores = read_all(settings, "churn.risk-scores", n_scores)
        live_alerts = read_all(settings, "churn.alerts", n_alerts)
    assert not marker.exists(), "a crafted snapshot ran code"
    # Nothing the backfill made is published again; what the live worker made before the cut
    # are the daily rows of the boundaries the backfill's watermark had not reached yet.
    assert not made_before & {_key(s) for s in live_scores}, "a backfilled score was published"
    assert not alerted_before & {a["alert_id"] for a in live_alerts}, "a backfilled alert again"
    early = [s for s in live_scores if s["ts"] < rfc3339(CUT)]
    assert all(s["trigger"] == "daily" for s in early), early[:1]
    got_daily = {(s["user_id"], s["ts"]): s for s in live_scores if s["trigger"] == "daily"}
    counts: Counter[str] = Counter()
    by_day: Counter[str] = Counter()  # boundary -> rows that differ from the replay's
    for key in want_daily.keys() & got_daily.keys():
        a, b = _without_wall_time(got_daily[key]), _without_wall_time(want_daily[key])
        same_version = a.get("model_version") == b.get("model_version")
        counts["same version" if same_version else "other version"] += 1
        if a != b:
            counts["differ"] += 1
            by_day[key[1][:10]] += 1
    want_ids = {a["alert_id"] for a in everything_alerts} - alerted_before
    got_ids = {a["alert_id"] for a in live_alerts}
    summary = (
        f"daily rows: live {len(got_daily)}, replay {len(want_daily)}, "
        f"both {len(want_daily.keys() & got_daily.keys())}: {dict(counts)}; alerts: live "
        f"{len(got_ids)}, replay {len(want_ids)}, common {len(got_ids & want_ids)}; "
        f"live daily rows before the cut: {len(early)}; rows that differ by boundary: "
        f"{sorted(by_day.items())}"
    )
    print(summary)
    # The live worker continues the backfill exactly: the replay's rows after the handover,
    # field for field (scores, versions, drivers), and its alerts.
    assert len(want_daily) > 1000, summary
    assert got_daily.keys() == want_daily.keys(), summary
    assert counts["differ"] == 0 and counts["other version"] == 0, summary
    assert got_ids == want_ids, summary


def _without_wall_time(score: dict[str, Any]) -> dict[str, Any]:
    """A score without `scored_at` (the wall clock when it was made)."""
    return {k: v for k, v in score.items() if k != "scored_at"}


class _RunsCommand:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def _daily_keys(records: list[Any]) -> int:
    return len({(s["user_id"], s["ts"]) for s in map(orjson.loads, (r.value for r in records))
                if s["trigger"] == "daily"})  # fmt: skip


def _key(score: dict[str, Any]) -> tuple[str, str, str]:
    return score["user_id"], score["ts"], score["trigger"]


def test_publish_scores_sends_the_history_s_scores_and_alerts_keyed_by_user(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    settings = make_topics(kafka_bootstrap, fresh_topic_prefix)
    history = tmp_path / "small.jsonl"
    write_jsonl(generate(SimConfig(users=20, days=15, seed=2)), history)
    scores, alerts = io.BytesIO(), io.BytesIO()
    run_history(read_records(history), Settings(), scores_out=scores, alerts_out=alerts)
    want = scores.getvalue().splitlines()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "CHURNSTREAM_TOPIC_PREFIX": fresh_topic_prefix,
        "CHURNSTREAM_APP_ID": fresh_topic_prefix.strip("."),
    }
    churnstream = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "churnstream")
    done = subprocess.run(
        [churnstream, "backfill", str(history), "--publish-scores"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    n_alerts = alerts.getvalue().count(b"\n")
    assert f"published {len(want):,} scores and {n_alerts:,} alerts" in done.stdout, done.stdout
    records = consume(
        kafka_bootstrap,
        settings.topic("churn.risk-scores"),
        until=lambda rs: len(rs) >= len(want),
        timeout=60,
        partitions=settings.partitions,
    )
    assert sorted(map(_made, (r.value for r in records))) == sorted(map(_made, want))
    assert all(r.key == orjson.loads(r.value)["user_id"].encode() for r in records)


def _made(value: bytes) -> bytes:
    return orjson.dumps(_without_wall_time(orjson.loads(value)))
