"""A learner who goes quiet is alerted live, and `replay` raises the very same alert.

Churn is mostly silence: a course learner who stops coming sends nothing more, so only the
daily as-of rows (model/engine.py, docs/model.md "Daily scores") can see them. A small course
history is streamed through a real broker one event-time day at a time, as a live stream
arrives, and replayed offline. The rules score serves throughout (the model is never ready:
`min_labels` out of reach), so every daily row depends on the events alone and the two sides
must agree row for row: same daily scores, same alert ids, and the silent dropouts the
simulator's truth names are alerted on both sides within days of their last activity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_live_replay import by_id, compare_daily, replay_of, settled_outputs
from workers import (
    WorkerProcess,
    input_topics,
    make_topics,
    produce_day_by_day,
    wait_caught_up,
)

from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth
from churnstream.stream.devtools.simulator.judge import SimulatorTruth
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

DAY = 86400.0
SIM = SimConfig(users=120, days=30, seed=3, segments=("course",), churn_rate=0.4)
# A course deployment: the saas and docs inputs, which this history never writes, are not waited
# for (the day-by-day producer would otherwise wait for intake held until they are given up).
ENV = {
    "CHURNSTREAM_MIN_LABELS": str(10**9),
    "CHURNSTREAM_SCORE_EVENTS": "false",
    "CHURNSTREAM_SEGMENTS": "course",
}


def first_alerts(alerts: list[dict[str, Any]]) -> dict[str, float]:
    """Each user's first churn_risk alert time."""
    out: dict[str, float] = {}
    for a in by_id(alerts).values():
        if a["kind"] == "churn_risk":
            ts = parse_ts(a["ts"])
            out[a["user_id"]] = min(ts, out.get(a["user_id"], ts))
    return out


def test_a_silent_learner_is_alerted_live_as_in_replay(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    sims = sorted(generate(SIM), key=lambda r: r.ts)
    truth = SimulatorTruth(ground_truth(SIM))
    silent = {c.user_id: c.ts for c in truth.churns() if c.kind == "silent"}
    assert len(silent) >= 5, "the history must hold silent dropouts"

    settings = Settings.from_env(
        {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "CHURNSTREAM_TOPIC_PREFIX": prefix, **ENV}
    )
    _, offline_scores, offline_alerts = replay_of(sims, settings, tmp_path)

    worker = WorkerProcess(kafka_bootstrap, prefix, tmp_path / "w", env=ENV)
    try:
        worker.start()
        produce_day_by_day(worker, prefix, sims)
        topics = [*input_topics(prefix), settings.topic("churn.examples")]
        wait_caught_up(worker, topics, timeout=120)
        live_scores, live_alerts = settled_outputs(worker, settings, timeout=300)
    except BaseException:
        print(f"--- worker log tail ---\n{worker.log_tail()}")
        raise
    finally:
        worker.stop()

    counts, mismatched = compare_daily(live_scores, offline_scores)
    print(dict(counts), mismatched[:5])
    assert counts["replay_rows"] > 1000
    assert counts["score_mismatch"] == 0 and counts["other_model"] == 0, mismatched[:5]
    # The last boundary's rows may still wait for a source that sends nothing more live.
    assert counts["only_replay"] <= counts["replay_rows"] // SIM.days, counts
    assert counts["only_live"] == 0, counts
    live_ids, offline_ids = by_id(live_alerts), by_id(offline_alerts)
    differ = [
        (side, a["kind"], a["severity"], a["user_id"], a["ts"])
        for side, mine, other in (
            ("live", live_ids, offline_ids),
            ("replay", offline_ids, live_ids),
        )
        for key, a in mine.items()
        if key not in other
    ]
    for d in sorted(differ, key=lambda d: (d[3], d[4])):
        print("only", *d)
    assert not differ, f"{len(differ)} alerts on one side only"

    live_first = first_alerts(live_alerts)
    prompt = [u for u, last in silent.items() if live_first.get(u, 1e18) - last <= 3 * DAY]
    print(f"silent dropouts {len(silent)}, alerted live within 3 days of their last activity "
          f"{len(prompt)}")  # fmt: skip
    assert prompt, "no silent dropout alerted within 3 days of going quiet"
