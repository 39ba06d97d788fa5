"""Alerts end to end: simulated customers through a real broker and worker to churn.alerts.

Checked against the simulator's ground truth: few users who never churn get a churn_risk
alert; churners whose decline was visible get one before they cancel, early enough (median
lead >= 5 days for course, >= 7 for SaaS) once the cold start is over; no user gets two alerts
of the same kind and severity within the cooldown; alerts stop after a cancel; planted SaaS
value drops get a roi_drop alert within days while most stable accounts get none. The report
(precision, never-churners alerted, recall and lead, over the whole run and after the cold
start) is printed.
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

from churnstream.stream.contract.validation import parse_ts
from churnstream.stream.devtools.simulator import SimConfig, generate, ground_truth

pytestmark = pytest.mark.kafka

SIM = SimConfig(users=300, days=60, seed=31, segments=("course", "saas"))
DAY = 86400.0
COOLDOWN = 7 * DAY
WINDOW = 28 * DAY  # an alert counts for a cancel that follows within 4 weeks
LEAD_TARGET_DAYS = {"course": 5.0, "saas": 7.0}
# Until about day 40 the learned models have too few labels to tell a declining customer from
# the rest and score everyone low (docs/alerts.md, "Cold start"): recall and lead are asserted
# for churners who cancel after it, and printed for all.
COLD_START_DAYS = 40
# Course went up with churn_risk decided on daily rows, which also score learners on their
# quiet days (the thresholds were tuned on per-event scores).
NEVER_CHURNERS_MAX = {"course": 0.38, "saas": 0.45}


def test_alerts_are_early_rare_and_edge_triggered(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    make_topics(kafka_bootstrap, prefix)
    truth = ground_truth(SIM)
    with running_worker(kafka_bootstrap, prefix, tmp_path) as worker:
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
    end = truth.start + SIM.days * DAY
    for segment in SIM.segments:
        mine = {u: t for u, t in truth.users.items() if t.segment == segment}
        risk = {u: [a["t"] for a in by_user.get((u, "churn_risk"), [])] for u in mine}
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
        never = [u for u, t in mine.items() if t.cancel_ts is None]
        judged = [(u, ts) for u in mine for ts in risk[u] if ts + WINDOW <= end]
        hits = sum(
            1 for u, ts in judged if (c := mine[u].cancel_ts) is not None and ts < c <= ts + WINDOW
        )
        report[segment] = {
            "alerts": sum(len(v) for v in risk.values()),
            "precision": round(hits / len(judged), 2) if judged else None,
            "never_churners_alerted": round(sum(bool(risk[u]) for u in never) / len(never), 2),
            "warned_churners": len(warned),
            "alerted_before_cancel": round(len(leads) / len(warned), 2),
            "median_lead_days": round(statistics.median(leads.values()), 1) if leads else None,
            "after_cold_start": {
                "warned_churners": len(later),
                "alerted_before_cancel": round(len(later_leads) / len(later), 2),
                "median_lead_days": (
                    round(statistics.median(later_leads), 1) if later_leads else None
                ),
            },
        }
    print(f"\nalert quality on the broker ({SIM.users} users x {SIM.days} days): {report}")
    for segment in SIM.segments:
        row = report[segment]
        assert row["warned_churners"] >= 10 and row["after_cold_start"]["warned_churners"] >= 8
        # Rare. Measured: 33-34% of never-churning learners, 21% of never-churning accounts with
        # daily rows (17-18% and 30% with per-event scores; 70% and 40% before the model
        # inputs were clipped and spikes had to be confirmed).
        assert row["never_churners_alerted"] <= NEVER_CHURNERS_MAX[segment], report
        # Early, for most of those who cancel after the cold start. Measured: course 14 of 21
        # (67%), median lead 8.9 days; saas 13 of 13, 9.7 days. Over the whole run, cold start
        # included: course 48-52% (median lead 6.9-8.9 days), saas 68% (5.8 days).
        later = row["after_cold_start"]
        assert later["alerted_before_cancel"] >= 0.5, report
        assert later["median_lead_days"] >= LEAD_TARGET_DAYS[segment], report

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
