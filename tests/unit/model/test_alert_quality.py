"""Alert quality on small simulated histories, replayed through the live code path.

Two module-scoped replays with the default alert policy (course learners for churn_risk, SaaS
accounts with planted value drops for roi_drop; about 75 k events, 6-8 s of CPU together),
judged against the simulator's ground truth: warned churners are alerted before they cancel,
nobody is alerted twice within the cooldown, alerts stop after a cancel, planted ROI drops are
caught quickly and stable accounts stay quiet. Larger runs: bench/alert_quality.py.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

import orjson
import pytest

from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.engine import EngineConfig
from churnstream.model.replay import Replay
from churnstream.stream.devtools.simulator import GroundTruth, SimConfig, generate, ground_truth
from churnstream.stream.devtools.simulator.customers import plan_customers
from churnstream.stream.devtools.simulator.jsonl import replay_records

DAY = 86_400.0
WINDOW = 28 * DAY  # an alert counts for a cancel that follows within 4 weeks
RANK = {"warning": 1, "critical": 2}
# Lead time before a cancel: learners who drop out silently (the default mix) are not the
# subject here, so every course churner cancels.
COURSE = SimConfig(users=200, days=60, seed=3, segments=("course",), course_silent_share=0.0)
SAAS = SimConfig(users=60, days=60, seed=3, segments=("saas",), roi_drop_fraction=0.6)
BOOTSTRAP_DAYS = 40


@dataclass(frozen=True, slots=True)
class Seen:
    user_id: str
    kind: str
    ts: float
    severity: str


@dataclass(frozen=True, slots=True)
class History:
    truth: GroundTruth
    alerts: list[Seen]
    config: AlertConfig
    model_live: dict[str, float]  # segment -> first score published by the learned model


def _epoch(rfc: str) -> float:
    return datetime.fromisoformat(rfc.replace("Z", "+00:00")).timestamp()


def _replay(sim: SimConfig) -> History:
    alerts: list[Seen] = []
    model_live: dict[str, float] = {}

    class Alerts:
        def write(self, line: bytes) -> None:
            a = orjson.loads(line)
            alerts.append(Seen(a["user_id"], a["kind"], _epoch(a["ts"]), a["severity"]))

    class Scores:
        def write(self, line: bytes) -> None:
            s = orjson.loads(line)
            if s["source"] == "model" and s["segment"] not in model_live:
                model_live[s["segment"]] = _epoch(s["ts"])

    policy = AlertPolicy()
    replay = Replay(
        EngineConfig(),
        policy,
        alerts_out=Alerts(),  # type: ignore[arg-type]
        scores_out=Scores(),
    )  # type: ignore[arg-type]
    replay.run(replay_records(generate(sim)))
    return History(ground_truth(sim), alerts, policy.config, model_live)


@pytest.fixture(scope="module")
def course() -> History:
    return _replay(COURSE)


@pytest.fixture(scope="module")
def saas() -> History:
    return _replay(SAAS)


@pytest.fixture(params=["course", "saas"])
def history(request: pytest.FixtureRequest) -> History:
    return request.getfixturevalue(request.param)


def _by_user(alerts: list[Seen], kind: str) -> dict[str, list[Seen]]:
    out: dict[str, list[Seen]] = defaultdict(list)
    for a in alerts:
        if a.kind == kind:
            out[a.user_id].append(a)
    return out


def test_most_warned_churners_are_alerted_before_they_cancel(course: History) -> None:
    history = course
    # Judged after the cold start: the model takes over on day 13 but scores every learner low
    # until it has learned about a month of labels (docs/alerts.md, "Cold start").
    risk = _by_user(history.alerts, "churn_risk")
    judged_from = history.truth.start + BOOTSTRAP_DAYS * DAY
    assert min(history.model_live.values()) < judged_from
    warned = {
        u: t
        for u, t in history.truth.users.items()
        if t.cancel_ts is not None and not t.silent and t.cancel_ts >= judged_from
    }
    assert len(warned) >= 8, "history too small to judge"
    leads = []
    for user_id, t in warned.items():
        assert t.cancel_ts is not None
        before = [a.ts for a in risk.get(user_id, []) if t.cancel_ts - WINDOW <= a.ts < t.cancel_ts]
        if before:
            leads.append((t.cancel_ts - min(before)) / DAY)
    # Measured: 18 of 19 (95%), median lead 4.4 days, with the thresholds chosen for precision
    # within the 7-day horizon (course warning 0.4; alerts then come later in a decline: 14 of
    # 20 and 6.8 days at 0.15 on per-event scores). Before a row's decision saw the
    # relationship as of its boundary, a cancel applied before the row was made silenced it:
    # 16 of 19, median 4.7 days (the two more are alerted 0.45 and 0.75 days ahead). The 5-day
    # lead target of a 28-day window is not met any more; 4 days keeps the test able to catch
    # a lead that collapses.
    assert len(leads) / len(warned) >= 0.7
    assert sorted(leads)[len(leads) // 2] >= 4.0


def test_alerts_are_rarer_among_users_who_stay(course: History) -> None:
    history = course
    risk = _by_user(history.alerts, "churn_risk")
    stayed = [u for u, t in history.truth.users.items() if t.cancel_ts is None]
    churned = [u for u, t in history.truth.users.items() if t.cancel_ts is not None]
    share_stayed = sum(u in risk for u in stayed) / len(stayed)
    share_churned = sum(u in risk for u in churned) / len(churned)
    # Measured: 20.9% of the learners who stay (32 of 153), 72% of those who churn (cold start
    # included) with the course warning 0.3 chosen for the AdaGrad model (docs/alerts.md): the
    # lower level buys recall with alerts to learners who stay. At 0.4: 13.1% and 66% (15.7%
    # with recency regimes); 37.9% and 59% with the levels tuned on per-event scores.
    assert share_stayed <= 0.25
    assert share_stayed < 0.3 * share_churned


def test_no_repeat_of_kind_and_severity_within_cooldown(history: History) -> None:
    cooldown = 7 * DAY  # the contract's default, whatever the config says
    assert history.alerts, "no alerts at all: nothing to check"
    for kind in ("churn_risk", "roi_drop"):
        for user_id, alerts in _by_user(history.alerts, kind).items():
            restart = history.truth.users[user_id].reactivate_ts
            for prev, cur in pairwise(alerts):
                assert cur.ts >= prev.ts
                if restart is not None and prev.ts < restart <= cur.ts:
                    continue  # a new relationship: cooldowns were forgotten
                if cur.ts - prev.ts < cooldown:
                    assert RANK[cur.severity] > RANK[prev.severity], (user_id, prev, cur)


def test_no_alert_between_cancel_and_reactivation(history: History) -> None:
    for a in history.alerts:
        t = history.truth.users[a.user_id]
        if t.cancel_ts is not None and a.ts > t.cancel_ts:
            assert t.reactivate_ts is not None and a.ts >= t.reactivate_ts, a


def test_planted_roi_drops_are_caught_within_days(saas: History) -> None:
    history = saas
    end = history.truth.start + history.truth.days * DAY
    roi = _by_user(history.alerts, "roi_drop")
    planted = caught = 0
    for user_id, t in history.truth.users.items():
        drop = t.roi_drop_ts
        if drop is None or drop + 7 * DAY > end:
            continue
        if t.cancel_ts is not None and t.cancel_ts < drop + 7 * DAY:
            continue
        planted += 1
        caught += any(drop <= a.ts <= drop + 7 * DAY for a in roi.get(user_id, []))
    assert planted >= 10, "history too small to judge"
    assert caught / planted >= 0.8


def test_stable_saas_accounts_get_no_roi_alerts(saas: History) -> None:
    # Stable: no planted drop, no cancel, no bad week deep enough to cut value by a third,
    # and value comfortably above the price (ROI < 1 is a legitimate alert on its own).
    roi = _by_user(saas.alerts, "roi_drop")
    stable = [
        c.user_id
        for c in plan_customers(SAAS)
        if c.roi_drop_day is None
        and c.cancel_day is None
        and c.plan_change_day is None
        and max(c.stress[: SAAS.days]) <= 0.4
        and c.value_per_day > 1.5 * c.plan_price / 30
    ]
    assert len(stable) >= 10, "history too small to judge"
    assert sum(u in roi for u in stable) <= 1
