"""Alerts end to end: simulated customers through a real broker and worker to churn.alerts.

Checked against the simulator's ground truth: churners whose decline was visible get a
churn_risk alert before they cancel (share and median lead time printed), no user gets two
alerts of the same kind and severity within the cooldown, alerts stop after a cancel, and
planted SaaS value drops get a roi_drop alert within days while most stable accounts get none.
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

from stream.simulator import SimConfig, generate, ground_truth
from stream.validation import parse_ts

pytestmark = pytest.mark.kafka

SIM = SimConfig(users=300, days=60, seed=31, segments=("course", "saas"))
DAY = 86400.0
COOLDOWN = 7 * DAY


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
    for segment in SIM.segments:
        warned = {
            u: t
            for u, t in truth.users.items()
            if t.segment == segment and t.cancel_ts is not None and t.warning_start_ts is not None
        }
        leads = []
        for user, t in warned.items():
            before = [
                a["t"]
                for a in by_user.get((user, "churn_risk"), [])
                if t.cancel_ts - 28 * DAY <= a["t"] <= t.cancel_ts
            ]
            if before:
                leads.append((t.cancel_ts - min(before)) / DAY)
            # Alerts stop after the cancel (until a reactivate).
            end = t.reactivate_ts or float("inf")
            late = [a for a in by_user.get((user, "churn_risk"), []) if t.cancel_ts < a["t"] < end]
            assert late == [], (user, late)
        never = [u for u, t in truth.users.items() if t.segment == segment and t.cancel_ts is None]
        alerted_never = sum(1 for u in never if (u, "churn_risk") in by_user)
        report[segment] = {
            "warned_churners": len(warned),
            "alerted_before_cancel": len(leads) / len(warned) if warned else None,
            "median_lead_days": statistics.median(leads) if leads else None,
            "never_churners_alerted": alerted_never / len(never) if never else None,
        }
        assert len(warned) >= 10, report
        # Most warned churners are alerted before they cancel (measured: course 77-81%, median
        # lead 13 days; saas 68%, 12 days). Precision is printed, not asserted: many users who
        # never churn are alerted too (course ~70%, saas ~40%), a known weakness.
        assert len(leads) >= 0.5 * len(warned), report

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
    print(f"\nalert quality on the broker ({SIM.users} users x {SIM.days} days): {report}")
    assert planted and len(caught) >= 0.5 * len(planted), report
    assert len(stable_alerted) <= 0.5 * len(stable), report
