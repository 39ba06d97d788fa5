"""Alerts end to end: simulated customers through a real broker and worker to churn.alerts.

Checked against the simulator's ground truth (its default mix: most course churners drop out
silently, the rest cancel): few users who never churn get a churn_risk alert; alerts are
followed by churn within the segment's horizon often enough; silent course dropouts are
alerted within days of their last activity; churners whose decline was visible get an alert
before they cancel, early enough (median lead >= 5 days for course, >= 7 for SaaS) once the
cold start is over; no user gets two alerts of the same kind and severity within the cooldown;
alerts stop after a cancel; planted SaaS value drops get a roi_drop alert within days while
most stable accounts get none. The report (model.evaluation's alert quality, never-churners
alerted, recall and lead after the cold start) is printed.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import (
    consume,
    make_topics,
    produce_day_by_day,
    running_worker,
)

from churnstream.model.config import ModelConfig
from churnstream.model.evaluation import alert_quality
from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth
from churnstream.stream.devtools.simulator.judge import SimulatorTruth

pytestmark = pytest.mark.kafka

SIM = SimConfig(users=300, days=60, seed=31, segments=("course", "saas"))
DAY = 86400.0
COOLDOWN = 7 * DAY
WINDOW = 28 * DAY  # lead before a cancel: the first alert of the 4 weeks before it
LEAD_TARGET_DAYS = {"course": 5.0, "saas": 7.0}
# Until about day 40 the learned models have too few labels to tell a declining customer from
# the rest and score everyone low (docs/alerts.md, "Cold start"): recall and lead are asserted
# for churners who cancel after it, and printed for all.
COLD_START_DAYS = 40
# Limits from `churnstream replay` of this very history with the thresholds chosen on daily
# rows (bench/alert_quality.py; replay and the live worker share the detector). Measured:
# never-churners alerted course 0.14 (0.33-0.34 with the old course warning 0.15), saas 0.50:
# the saas warning is unchanged (0.25); in this 60-day history its share rose from 0.21 with
# the day-2-equals-day-200 features and the model as of each day (on 2000 users x 90 days, the
# held-out seed: 25%), hence 0.55 for saas, a loosened bound.
NEVER_CHURNERS_MAX = {"course": 0.2, "saas": 0.55}
# Precision within the horizon (7 / 14 days). Measured: course 0.67 (64 judged), saas 0.28
# (85 judged; most SaaS churners cancel during the cold start of this short history).
PRECISION_MIN = {"course": 0.5, "saas": 0.2}
# Silent course dropouts alerted within 3 days of their last activity. Measured: 13 of 23
# (57 %), 21 of 23 alerted at all, median 2.2 days after (72 % on 5,000 users x 120 days).
SILENT_PROMPT_MIN = 0.45


# The limits above hold for a replay of this history. The live worker missed them until issue
# 15 (measured 2026-12-06: course precision 0.12 with 206 alerts, saas 0.03; then, waiting for
# the model of each day, 9-11 course alerts): its model at a given version was not the
# replay's (tests/integration/test_parity.py). Since a kind's progress is its freshest
# partition's and rows read nothing after their boundary, the live run gives the replay's
# numbers (two runs: course 78 alerts, precision 0.69, lead after the cold start 6.0 d; saas
# 98, 0.38, 10.8 d; replay 78 / 0.69 / 6.0 and 98 / 0.38 / 10.8).
# This history has no docs customers: the worker is deployed for course and saas, so it does
# not wait for `behaviour.document-jobs`, which never gets a record. Deployed for all segments
# (before CHURNSTREAM_SEGMENTS and the intake limit) it waited the default 120 s for that kind
# while the day-by-day producer went on and the users' states ran weeks past the boundaries
# held: measured 2026-12-06 at load 0.2, course 437 alerts, precision 0.08, 79 % of
# never-churners alerted. Intake now stops 4-5 days past the oldest boundary not made.
ENV = {"CHURNSTREAM_SEGMENTS": "course,saas"}


def test_alerts_are_early_rare_and_edge_triggered(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    truth = ground_truth(SIM)
    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        # Day by day, as a live stream arrives: a whole history at once is a catch-up, where
        # event-time order across partitions is best effort (README, Known limitations).
        produce_day_by_day(worker, prefix, list(generate(SIM)))
        n = int(worker.metric("churnstream_alerts_total"))
    records = consume(
        kafka_bootstrap, f"{prefix}churn.alerts", until=lambda r: len(r) >= n, timeout=60
    )
    alerts = [orjson.loads(r.value) for r in records]
    for a in alerts:
        a["t"] = parse_ts(a["ts"])

    by_user: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for a in sorted(alerts, key=lambda a: a["t"]):
        by_user[a["user_id"], a["kind"]].append(a)
    # Edge trigger + cooldown: the same kind and severity never twice within 7 event days.
    for (user, kind), items in by_user.items():
        for prev, nxt in itertools.pairwise(items):
            if nxt["severity"] == prev["severity"]:
                assert nxt["t"] - prev["t"] >= COOLDOWN, (user, kind, prev, nxt)

    report: dict[str, Any] = {}
    judge = SimulatorTruth(truth)
    model = ModelConfig()
    for segment in SIM.segments:
        mine = {u: t for u, t in truth.users.items() if t.segment == segment}
        risk = {u: [a["t"] for a in by_user.get((u, "churn_risk"), [])] for u in mine}
        quality = alert_quality(
            [(u, ts) for u, times in risk.items() for ts in times],
            judge,
            segment,
            model.horizon_s(segment),
            model.label_mode(segment),
        )
        warned = {u: t for u, t in mine.items() if t.cancel_ts is not None and t.warning_start_ts}
        leads: dict[str, float] = {}
        for user, t in warned.items():
            before = [ts for ts in risk[user] if t.cancel_ts - WINDOW <= ts <= t.cancel_ts]
            if before:
                leads[user] = (t.cancel_ts - min(before)) / DAY
            # Alerts stop after the cancel (until a reactivate).
            stop = t.reactivate_ts or float("inf")
            assert not [ts for ts in risk[user] if t.cancel_ts < ts < stop], (user, risk[user])
        later = [u for u, t in warned.items() if t.cancel_ts >= truth.start + COLD_START_DAYS * DAY]
        later_leads = [leads[u] for u in later if u in leads]
        never = [u for u, t in mine.items() if t.churn_kind is None]
        report[segment] = {
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in quality.items()},
            "never_churners_alerted": round(sum(bool(risk[u]) for u in never) / len(never), 2),
            "warned_cancels": len(warned),
            "warned_alerted_before_cancel": round(len(leads) / len(warned), 2),
            "after_cold_start": {
                "warned_cancels": len(later),
                "alerted_before_cancel": round(len(later_leads) / len(later), 2),
                "median_lead_days": (
                    round(statistics.median(later_leads), 1) if later_leads else None
                ),
            },
        }
    print(f"\nalert quality on the broker ({SIM.users} users x {SIM.days} days): {report}")
    for segment in SIM.segments:
        row = report[segment]
        assert row["warned_cancels"] >= 5 and row["after_cold_start"]["warned_cancels"] >= 3
        # Rare (measured above).
        assert row["never_churners_alerted"] <= NEVER_CHURNERS_MAX[segment], report
        # Right often enough within the horizon (measured above).
        assert row["precision"] >= PRECISION_MIN[segment], report
        # Early, for most of those who cancel after the cold start. Measured in the replay:
        # course 4 of 6, median lead 6.0 days; saas 11 of 11, 13.9 days.
        later = row["after_cold_start"]
        assert later["alerted_before_cancel"] >= 0.5, report
        assert later["median_lead_days"] >= LEAD_TARGET_DAYS[segment], report
    # Learners who stop without cancelling are alerted soon after they go quiet, most of them
    # within 3 days of their last activity (the target: 70 % on 5,000 users).
    course = report["course"]
    assert course["silent_dropouts"] >= 20, "history too small to judge"
    assert course["silent_alerted_within_3d"] >= SILENT_PROMPT_MIN, report

    planted = [
        u
        for u, t in truth.users.items()
        if t.segment == "saas"
        and t.roi_drop_ts is not None
        and (t.cancel_ts is None or t.cancel_ts > t.roi_drop_ts + 7 * DAY)
    ]
    caught = [
        u
        for u in planted
        if any(
            truth.users[u].roi_drop_ts <= a["t"] <= truth.users[u].roi_drop_ts + 7 * DAY
            for a in by_user.get((u, "roi_drop"), [])
        )
    ]
    stable = [
        u
        for u, t in truth.users.items()
        if t.segment == "saas" and t.roi_drop_ts is None and t.cancel_ts is None
    ]
    stable_alerted = [u for u in stable if (u, "roi_drop") in by_user]
    report["roi"] = {
        "planted": len(planted),
        "caught_within_7d": len(caught),
        "stable": len(stable),
        "stable_alerted": len(stable_alerted),
    }
    print(f"roi_drop: {report['roi']}")
    assert planted and len(caught) >= 0.5 * len(planted), report
    assert len(stable_alerted) <= 0.5 * len(stable), report
