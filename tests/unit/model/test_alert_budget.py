"""The daily alert budget: at most K churn_risk alerts per segment and boundary, highest
expected loss first, the same whether a boundary's rows are made at once or spread, and kept
with the users so a restart decides what was pending."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from test_daily import Run, at, canonical, life, login, view

from churnstream.features import FEATURE_NAMES
from churnstream.model.alert_policy import (
    AlertConfig,
    AlertMemory,
    AlertPolicy,
    budget_rank,
)
from churnstream.model.engine import Detector, Outputs
from churnstream.model.experiment import Experiment
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.alerts import CHURN_RISK
from churnstream.stream.contract.events import DAY_S, Event, Lifecycle

T0 = 1_772_366_400.0
DRIVERS = [{"feature": "days_since_login", "value": 12.0, "contribution": 1.0}]


def _quitting_history() -> Iterator[Event | None]:
    """24 users (course, and SaaS with plan prices) active daily, then going quiet in groups
    of three on days 4 to 11, so that several cross a warning level on the same days; a
    late login and a cancel on the way. None marks a worker batch end."""
    users = [(f"u{n:02d}", "saas" if n % 2 else "course", 10.0 + 5 * n) for n in range(24)]
    for user, segment, price in users:
        yield Lifecycle(
            event_id=f"s-{user}", user_id=user, ts=at(0, 1.0), event="signup",
            segment=segment, plan_price=price if segment == "saas" else None,
        )  # fmt: skip
    for day in range(0, 22):
        yield login("pacer", at(day, 8.0))  # the watermark (lateness 12 h) passes day `day`
        yield None
        for n, (user, _, _) in enumerate(users):
            if day < 4 + n // 3:
                yield login(user, at(day, 7.0 + n / 10))
                for _ in range(n % 4):
                    yield view(user, at(day, 7.5))
            if n == 5 and day == 9:
                yield login(user, at(day - 1, 23.0))  # late
            if n == 7 and day == 12:
                yield life(user, at(day, 6.0), "cancel", "saas")
        yield login("pacer", at(day, 20.0))
        yield None


def budget_run(budget: dict[str, int] | None, per_sweep: int | None) -> Run:
    run = Run(lateness_s=DAY_S / 2, daily_rows_per_sweep=per_sweep)
    run.detector.alerts = AlertPolicy(AlertConfig(cooldown_s=30 * DAY_S, daily_budget=budget or {}))
    return run


def drive(run: Run, sweep_every: int | None = None) -> Outputs:
    for i, ev in enumerate(_quitting_history()):
        if ev is not None:
            run.feed(ev)
        if (ev is None) if sweep_every is None else (i % sweep_every == 0):
            run.sweep()
    while run.detector.rows_due:
        run.sweep()
    run.sweep()
    return run.out


def risk_per_day(out: Outputs) -> Counter[tuple[str, str]]:
    return Counter((a["segment"], a["ts"]) for a in out.alerts if a["kind"] == CHURN_RISK)


def test_without_a_budget_several_alerts_share_a_day() -> None:
    free = drive(budget_run(None, None))
    assert max(risk_per_day(free).values()) >= 2


@pytest.mark.parametrize("k", [0, 1, 2])
def test_no_segment_gets_more_than_k_a_day(k: int) -> None:
    out = drive(budget_run({"course": k, "saas": k}, None))
    assert all(n <= k for n in risk_per_day(out).values())
    free = drive(budget_run(None, None))
    assert len(risk_per_day(out)) <= len(risk_per_day(free)) or k > 0


def test_the_first_day_keeps_the_highest_risk() -> None:
    free = drive(budget_run(None, None))
    first_day = min(ts for (_, ts), n in risk_per_day(free).items() if n >= 2)
    candidates = [a for a in free.alerts if a["kind"] == CHURN_RISK and a["ts"] == first_day]
    out = drive(budget_run({"course": 1, "saas": 1}, None))
    kept = [a for a in out.alerts if a["kind"] == CHURN_RISK and a["ts"] == first_day]
    for segment in {a["segment"] for a in candidates}:
        best = min(
            (a for a in candidates if a["segment"] == segment),
            key=lambda a: budget_rank({"alert": a}),
        )
        assert [a["alert_id"] for a in kept if a["segment"] == segment] == [best["alert_id"]]


@pytest.mark.parametrize(("per_sweep", "sweep_every"), [(1, None), (3, None), (2, 1), (2, 7)])
def test_spread_rows_give_the_budget_the_same_alerts(
    per_sweep: int, sweep_every: int | None
) -> None:
    budget = {"course": 1, "saas": 1}
    at_once = drive(budget_run(budget, None))
    spread = drive(budget_run(budget, per_sweep), sweep_every)
    assert canonical(spread) == canonical(at_once)


def test_dropped_candidates_compete_again_while_the_risk_holds() -> None:
    policy = AlertPolicy(AlertConfig(risk_warmup_s=0.0, daily_budget={"saas": 1}))
    memories = {u: AlertMemory() for u in ("a", "b")}
    for day in range(2):
        ts = T0 + day * DAY_S
        for user, score in (("a", 0.9), ("b", 0.8)):
            before = policy.risk_memory(memories[user])
            alert = policy.on_score(user, "saas", ts, score, DRIVERS, memories[user])
            if alert is not None:
                policy.hold(memories[user], alert, ts, before)
        kept = policy.settle(list(memories.values()))
        assert [a["user_id"] for a in kept] == (["a"] if day == 0 else ["b"])
        assert all(m.candidate is None for m in memories.values())


def test_revenue_at_risk_ranks_before_probability() -> None:
    rich = {"alert": {"revenue_at_risk": 30.0, "value": 0.3, "user_id": "r"}}
    poor = {"alert": {"revenue_at_risk": 5.0, "value": 0.9, "user_id": "p"}}
    unpriced = {"alert": {"revenue_at_risk": None, "value": 0.95, "user_id": "u"}}
    assert sorted([unpriced, poor, rich], key=budget_rank) == [rich, poor, unpriced]


def test_pending_candidates_survive_a_restart() -> None:
    run = budget_run({"course": 1, "saas": 1}, 1)
    events = list(_quitting_history())
    pending: dict[float, set[str]] = {}
    for ev in events:
        if ev is not None:
            run.feed(ev)
        else:
            run.sweep()
        pending = {b: set(u) for b, u in run.detector._candidates.items()}
        if pending:
            break
    assert pending, "the history never left a candidate pending across a sweep"
    stored = [
        UserRecord.from_bytes(r.user_id, r.to_bytes(), run.config.features)
        for r in run.repo.records.values()
    ]
    assert any(r.alerts.candidate is not None for r in stored)
    restarted = Detector(
        run.config,
        Scorer(run.config.model, FEATURE_NAMES),
        run.detector.alerts,
        run.repo,
        wall_clock=lambda: 0.0,
    )
    restarted.reschedule(stored)
    assert restarted._candidates == pending


# -- treated customers' labels (model/experiment.py learn_from_treated) --------------------------


def experiment_run(experiment: Experiment) -> Outputs:
    run = Run(lateness_s=DAY_S / 2)
    run.detector.alerts = AlertPolicy(AlertConfig(cooldown_s=30 * DAY_S), experiment=experiment)
    return drive(run)


def test_treated_customers_labels_are_not_learned_holdout_ones_are() -> None:
    everyone_treated = experiment_run(Experiment("e", holdout_share=0.0))
    learning = experiment_run(Experiment("e", holdout_share=0.0, learn_from_treated=True))
    all_holdout = experiment_run(Experiment("e", holdout_share=1.0))
    alerted = {a["user_id"] for a in learning.alerts}
    assert alerted
    # The same alerts either way: the arm changes delivery and learning, not decisions.
    ids = [sorted(a["alert_id"] for a in out.alerts) for out in (everyone_treated, all_holdout)]
    assert ids[0] == ids[1] == sorted(a["alert_id"] for a in learning.alerts)
    assert {a["holdout"] for a in all_holdout.alerts} == {True}
    kept = {(e.user_id, e.made_at) for e in everyone_treated.examples}
    learned = {(e.user_id, e.made_at) for e in learning.examples}
    assert kept < learned
    assert {user for user, _ in learned - kept} <= alerted
    assert {(e.user_id, e.made_at) for e in all_holdout.examples} == learned


def test_treated_is_the_last_alert_within_the_effect_window() -> None:
    policy = AlertPolicy(
        AlertConfig(risk_warmup_s=0.0), experiment=Experiment("e", 0.0, effect_days=10)
    )
    memory = AlertMemory()
    assert policy.on_score("u1", "saas", T0, 0.9, DRIVERS, memory) is not None
    horizon = 14 * DAY_S
    assert policy.treated("u1", "saas", memory, T0 - 13 * DAY_S, horizon)  # alert in horizon
    assert not policy.treated("u1", "saas", memory, T0 - 15 * DAY_S, horizon)  # before it
    assert policy.treated("u1", "saas", memory, T0 + 10 * DAY_S, horizon)  # effect lasts
    assert not policy.treated("u1", "saas", memory, T0 + 11 * DAY_S, horizon)
    holdout = AlertPolicy(AlertConfig(risk_warmup_s=0.0), experiment=Experiment("e", 1.0))
    assert not holdout.treated("u1", "saas", memory, T0, horizon)
    assert not AlertPolicy(AlertConfig()).treated("u1", "saas", memory, T0, horizon)
