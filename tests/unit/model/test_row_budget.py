"""A sweep stopped by the caller's budget (`Detector.sweep(stop)`; live: wall time, so that
input goes first) makes the same rows, labels and alerts, percentiles and budget picks
included, as rows made at once: only how many rows each sweep makes changes."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from test_alert_budget import budget_run, drive
from test_daily import Run, canonical, login


class FakeClock:
    """Time that moves by the next of `steps` each time it is read: a deterministic budget."""

    def __init__(self, steps: list[float]) -> None:
        self.now = 0.0
        self._steps = itertools.cycle(steps)

    def __call__(self) -> float:
        self.now += next(self._steps)
        return self.now


def budgeted(run: Run, budget_s: float, clock: FakeClock) -> Run:
    """`run` whose sweeps stop once `budget_s` of `clock` passed, as the worker's do."""

    def sweep() -> None:
        deadline = clock() + budget_s
        run.detector.sweep(lambda: clock() >= deadline)
        out = run.detector.out.drain()
        run.out.scores += out.scores
        run.out.alerts += out.alerts
        run.out.examples += out.examples

    run.sweep = sweep  # type: ignore[method-assign]
    return run


@pytest.mark.parametrize("budget", [None, {"course": 1, "saas": 1}])
@pytest.mark.parametrize(
    ("steps", "sweep_every"),
    [([0.01], None), ([0.004, 0.03, 0.002], None), ([0.007], 5), ([0.05], 3)],
)
def test_rows_stopped_by_a_time_budget_equal_rows_made_at_once(
    budget: dict[str, int] | None, steps: list[float], sweep_every: int | None
) -> None:
    at_once = drive(budget_run(budget, None))
    paced = drive(budgeted(budget_run(budget, 2000), 0.02, FakeClock(steps)), sweep_every)
    assert canonical(paced) == canonical(at_once)
    assert any(a["kind"] == "churn_risk" for a in at_once.alerts)


def test_the_budget_is_asked_after_each_row_and_a_sweep_makes_one_row_at_least() -> None:
    run = Run(daily_rows_per_sweep=2000)
    users = [f"u{n}" for n in range(10)]
    run.feed(*(login(u, 1_767_225_600.0 + 3600.0) for u in users))
    run.feed(login("pacer", 1_767_225_600.0 + 86400.0 + 60.0))  # passes the boundary
    assert run.detector.rows_due
    asked: list[int] = []

    def rows() -> int:
        return sum(1 for s in run.detector.out.scores if s["trigger"] == "daily")

    def spent() -> Callable[[], bool]:
        # Over budget from the start: each sweep still makes one row.
        return lambda: asked.append(rows()) is None

    sweeps = 0
    while run.detector.rows_due:
        run.detector.sweep(spent())
        sweeps += 1
    daily = [s for s in run.detector.out.scores if s["trigger"] == "daily"]
    assert sorted(s["user_id"] for s in daily) == users
    assert sweeps == len(users)
    assert asked == list(range(1, len(users) + 1))
