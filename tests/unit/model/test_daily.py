"""Daily as-of scores: boundaries driven by the watermark, one row one label, gone users."""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Iterable
from typing import Any

import pytest

from churnstream.features import FEATURE_NAMES, FeatureConfig
from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.engine import Detector, EngineConfig, Outputs
from churnstream.model.labels import Example
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.model.user_record import UserRecord
from churnstream.stream.contract.events import DAY_S, Event, Lifecycle, Login, VideoView
from churnstream.stream.contract.timefmt import rfc3339

D0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a day boundary
_ids = itertools.count()


def at(day: float, hour: float = 12.0) -> float:
    return D0 + day * DAY_S + hour * 3600.0


def login(user: str, ts: float) -> Login:
    return Login(event_id=f"e{next(_ids)}", user_id=user, ts=ts, success=True)


def view(user: str, ts: float) -> VideoView:
    return VideoView(
        event_id=f"e{next(_ids)}", user_id=user, ts=ts, video_id="v", watched_s=60, duration_s=60
    )


def life(user: str, ts: float, kind: str, segment: str = "course") -> Lifecycle:
    return Lifecycle(event_id=f"e{next(_ids)}", user_id=user, ts=ts, event=kind, segment=segment)


class Run:
    """A Detector with the rules scorer; `pace(ts)` moves the watermark with another user."""

    def __init__(self, lateness_s: float = 0.0, **engine: Any) -> None:
        model = ModelConfig.from_dict({"horizons_days": {"course": 2.0, "saas": 2.0}})
        self.config = EngineConfig(
            features=FeatureConfig(lateness_s=lateness_s), model=model, **engine
        )
        policy = AlertPolicy(AlertConfig(cooldown_s=30 * DAY_S))
        self.repo = MemoryRepository()
        self.detector = Detector(
            self.config, Scorer(model, FEATURE_NAMES), policy, self.repo, wall_clock=lambda: 0.0
        )
        self.out = Outputs()

    def feed(self, *events: Event) -> None:
        for ev in events:
            self.detector.handle(ev)

    def pace(self, ts: float) -> None:
        """A busy user's login at `ts` (logins are the only source), then a sweep."""
        self.feed(login("pacer", ts))
        self.sweep()

    def sweep(self) -> None:
        self.detector.sweep()
        out = self.detector.out.drain()
        self.out.scores += out.scores
        self.out.alerts += out.alerts
        self.out.examples += out.examples

    def rows(self, user: str, trigger: str = "daily") -> list[str]:
        out = self.out.scores
        return [s["ts"] for s in out if s["user_id"] == user and s["trigger"] == trigger]

    def examples(self, user: str) -> list[Example]:
        return [e for e in self.out.examples if e.user_id == user]


def day_ts(*days: int) -> list[str]:
    return [rfc3339(D0 + d * DAY_S) for d in days]


def feature(example: Example, name: str) -> float:
    return example.features[FEATURE_NAMES.index(name)]


def test_a_watermark_jump_yields_one_row_per_boundary_in_order() -> None:
    run = Run()
    run.feed(login("u", at(0)))
    run.pace(at(0, 20.0))
    assert run.rows("u") == []
    run.pace(at(5))  # the watermark jumps over five boundaries at once
    assert run.rows("u") == day_ts(1, 2, 3, 4, 5)
    # Earliest boundary first across users too.
    assert [s["ts"] for s in run.out.scores if s["trigger"] == "daily"] == sorted(
        s["ts"] for s in run.out.scores if s["trigger"] == "daily"
    )


def test_a_row_uses_late_events_before_its_boundary_and_ignores_events_after_it() -> None:
    run = Run(lateness_s=DAY_S)
    run.feed(login("u", at(0, 9.0)))
    run.pace(at(1, 20.0))  # watermark at day 0 20:00
    run.feed(login("u", at(0, 22.0)))  # late, but before the watermark reaches day 1
    run.feed(login("u", at(1, 10.0)), login("u", at(1, 11.0)))  # after the boundary
    run.pace(at(2, 1.0))  # watermark day 1 01:00: day 1's row
    assert run.rows("u") == day_ts(1)
    run.pace(at(4, 12.0))  # watermark day 3 12:00 passes day 1's 2-day horizon
    (first, *_) = run.examples("u")
    assert first.made_at == D0 + DAY_S
    assert (feature(first, "logins_1d"), feature(first, "logins_7d")) == (2.0, 2.0)
    assert feature(first, "days_since_login") == 0.0


def test_labels_come_from_daily_rows_only() -> None:
    run = Run()
    run.feed(login("u", at(0)), login("u", at(0, 13.0)), login("u", at(0, 14.0)))
    run.sweep()
    assert len(run.rows("u", "event")) == 3
    assert run.repo.records["u"].pending is None  # event scores add no snapshot
    run.pace(at(6))
    made = [e.made_at for e in run.examples("u")]
    assert [rfc3339(t) for t in made] == run.rows("u")[: len(made)] and made
    daily = {s["ts"]: s["score"] for s in run.out.scores if s["user_id"] == "u"}
    assert all(e.score == daily[rfc3339(e.made_at)] for e in run.examples("u"))


def test_a_user_who_goes_silent_gets_daily_scores_and_a_churn_risk_alert() -> None:
    run = Run()
    for day in range(7):
        run.feed(login("u", at(day, 9.0)), view("u", at(day, 9.5)))
        run.pace(at(day, 23.0))
    assert not [a for a in run.out.alerts if a["user_id"] == "u"]
    for day in range(7, 15):  # u stops; only the pacer's events arrive
        run.pace(at(day))
    assert run.rows("u") == day_ts(*range(1, 15))
    assert not [t for t in run.rows("u", "event") if t > rfc3339(at(7))]
    alert, *escalations = [a for a in run.out.alerts if a["user_id"] == "u"]
    assert alert["kind"] == "churn_risk" and alert["ts"] in day_ts(*range(8, 15))
    assert [a["severity"] for a in escalations] in ([], ["critical"])
    assert {d["feature"] for d in alert["drivers"]} & {"days_since_event", "trend_active_days"}


def test_the_course_label_counts_inactivity_the_saas_label_only_cancels() -> None:
    run = Run()
    run.feed(life("c", at(0, 1.0), "signup"), login("c", at(0)))
    run.feed(life("s", at(0, 1.0), "signup", "saas"), login("s", at(0)))
    for day in range(1, 8):
        run.pace(at(day))
    # Rows of days 1-5 passed their 2-day horizon under the watermark (day 7 12:00).
    assert [e.label for e in run.examples("c")] == [True] * 5  # quiet: either mode
    assert [e.label for e in run.examples("s")] == [False] * 5  # quiet but subscribed


def test_activity_after_a_row_makes_an_inactivity_label_negative() -> None:
    run = Run(lateness_s=DAY_S)
    run.feed(life("c", at(0, 1.0), "signup"), login("c", at(0)))
    run.pace(at(2, 6.0))  # watermark day 1 06:00: day 1's row is made
    run.feed(view("c", at(2, 8.0)))  # after day 1's row was made: marks its snapshot active
    run.pace(at(5))
    first = run.examples("c")[0]
    assert (rfc3339(first.made_at), first.label) == (day_ts(1)[0], False)


def test_gone_users_stop_until_they_come_back() -> None:
    run = Run(gone_after_s=3 * DAY_S)
    run.feed(login("u", at(0)))
    run.pace(at(9))
    assert run.rows("u") == day_ts(1, 2, 3)  # day 4 is 3.5 days after the last event
    assert run.repo.records["u"].next_daily is None
    run.feed(login("u", at(9, 13.0)))
    run.pace(at(12))
    assert run.rows("u") == day_ts(1, 2, 3, 10, 11, 12)


def test_a_cancelled_user_is_scored_until_the_cancel_and_again_after_reactivating() -> None:
    run = Run()
    run.feed(life("u", at(0, 1.0), "signup"), login("u", at(0)))
    run.pace(at(0, 23.0))
    run.feed(life("u", at(2, 10.0), "cancel"))
    run.pace(at(6))
    assert run.rows("u") == day_ts(1, 2)  # day 2's row is before the cancel
    run.feed(life("u", at(6, 13.0), "reactivate"))
    run.pace(at(8))
    assert run.rows("u") == day_ts(1, 2, 7, 8)
    labels = [(rfc3339(e.made_at), e.label) for e in run.examples("u")]
    assert labels[:2] == [(day_ts(1)[0], True), (day_ts(2)[0], True)]


def test_no_rows_between_a_cancel_and_a_reactivation_that_both_arrived_early() -> None:
    run = Run(lateness_s=3 * DAY_S)
    run.feed(life("u", at(0, 1.0), "signup"), login("u", at(0)))
    run.feed(life("u", at(1, 10.0), "cancel"), life("u", at(3, 13.0), "reactivate"))
    run.pace(at(9))  # watermark day 6 12:00
    assert run.rows("u") == day_ts(1, 4, 5, 6)


def test_score_events_off_publishes_daily_rows_only() -> None:
    run = Run(score_events=False)
    run.feed(login("u", at(0)), login("u", at(1)))
    run.pace(at(3))
    assert run.rows("u", "event") == [] and run.rows("u") == day_ts(1, 2, 3)
    assert run.repo.records["u"].last["ts"] == D0 + 3 * DAY_S  # the newest score


def test_the_boundary_offset_moves_the_rows() -> None:
    run = Run(day_offset_s=6 * 3600.0)
    run.feed(login("u", at(0, 3.0)))
    run.pace(at(2))
    assert run.rows("u") == [rfc3339(at(d, 6.0)) for d in range(3)]


def _history() -> Iterable[Event | None]:
    """Four users over ten days; None marks a worker batch end (a sweep)."""
    for day in range(10):
        if day < 4:
            yield login("quiet", at(day, 8.0))
        yield view("busy", at(day, 9.0))
        yield login("busy", at(day, 9.5))
        if day == 3:
            yield life("leaver", at(day, 1.0), "signup")
        if day == 6:
            yield life("leaver", at(day, 2.0), "cancel")
        yield login("pacer", at(day, 20.0))
        yield None


def _replay(rebalance_after: int | None, sweeps: bool = True) -> Outputs:
    run = Run(lateness_s=DAY_S / 2)
    for i, ev in enumerate(_history()):
        if ev is not None:
            run.feed(ev)
        elif sweeps:
            run.sweep()
        if i == rebalance_after:
            # The records come back from the store; the indexes are rebuilt from them.
            cfg = run.config.features
            run.repo.records = {
                u: UserRecord.from_bytes(u, r.to_bytes(), cfg) for u, r in run.repo.records.items()
            }
            run.detector.reschedule(run.repo.records.values())
    run.sweep()
    return run.out


def test_rows_do_not_depend_on_the_sweep_cadence() -> None:
    # Live sweeps once per batch, a replay every 1000 events: a late event must land in the
    # same rows either way, so rows are made at the event that moves the watermark.
    batches, at_end = _replay(None), _replay(None, sweeps=False)
    assert at_end.scores == batches.scores
    assert sorted(map(stored_key, at_end.examples)) == sorted(map(stored_key, batches.examples))


def stored_key(example: Example) -> tuple[str, float, bool]:
    return example.user_id, example.made_at, example.label


@pytest.mark.parametrize("after", [7, 20, 33])
def test_a_rebalance_between_boundaries_gives_the_same_rows(after: int) -> None:
    plain, moved = _replay(None), _replay(after)
    assert len([s for s in plain.scores if s["trigger"] == "daily"]) > 20
    assert moved.scores == plain.scores
    assert moved.alerts == plain.alerts
    # A stored snapshot keeps its score as float32 (labels.py); compare at that precision.
    assert [stored(e) for e in moved.examples] == [stored(e) for e in plain.examples]


def stored(example: Example) -> dict[str, Any]:
    return {**example.to_dict(), "score": array("f", [example.score])[0]}


def test_an_old_record_without_a_boundary_is_scheduled_at_its_next_event() -> None:
    run = Run()
    run.feed(login("u", at(0)))
    rec = run.repo.records["u"]
    data = bytearray(rec.to_bytes())
    old = bytes([1]) + bytes(data[1:13]) + bytes(data[21:])  # format 1: no boundary field
    restored = UserRecord.from_bytes("u", old, run.config.features)
    assert restored.next_daily is None and restored.state.clock == rec.state.clock


# -- a boundary spread over sweeps (daily_rows_per_sweep) ---------------------------------------


def _busy_history() -> Iterable[Event | None]:
    """Twelve users over fifteen days with late events, cancels, reactivations and segment
    changes after the watermark passed a boundary, some going quiet (alerts); None marks a
    worker batch end."""
    users = [f"u{n:02d}" for n in range(12)]
    for user in users:
        yield life(user, at(0, 1.0), "signup")
        yield login(user, at(0, 2.0))
    for day in range(1, 15):
        yield login("pacer", at(day, 8.0))  # the watermark (lateness 12 h) passes day `day`
        yield None
        for n, user in enumerate(users):
            if (n + day) % 4 == 0 and day < 8:
                yield login(user, at(day - 1, 23.0))  # late: before the boundary just passed
            if ((n + day) % 5 == 0 and day < 8) or (n >= 8 and day < 7):
                yield view(user, at(day, 7.0))
            if n == day:
                yield life(user, at(day, 6.0), "cancel")
            if n == day + 3:
                yield life(user, at(day, 6.5), "reactivate")
            if n == 2 * day:
                yield life(user, at(day, 7.5), "signup", "saas")  # a segment change
        yield login("pacer", at(day, 20.0))
        yield None


def _run_spread(per_sweep: int | None, sweep_every: int | None = None) -> Outputs:
    """`_busy_history` with `per_sweep` rows per sweep; sweeps at batch ends, or every
    `sweep_every` events; then sweeps until no row is due."""
    run = Run(lateness_s=DAY_S / 2, daily_rows_per_sweep=per_sweep)
    for i, ev in enumerate(_busy_history()):
        if ev is not None:
            run.feed(ev)
        if (ev is None) if sweep_every is None else (i % sweep_every == 0):
            run.sweep()
    while run.detector.rows_due:
        run.sweep()
    run.sweep()
    return run.out


def canonical(out: Outputs) -> tuple[list[Any], list[Any], list[Any]]:
    """Outputs in an order that does not depend on when each row was made."""
    return (
        sorted(out.scores, key=lambda s: (s["user_id"], s["ts"], s["trigger"])),
        sorted(out.alerts, key=lambda a: (a["user_id"], a["ts"], a["kind"])),
        sorted((stored(e) for e in out.examples), key=lambda e: (e["user_id"], e["made_at"])),
    )


def test_rows_spread_over_sweeps_equal_rows_made_at_once() -> None:
    at_once = _run_spread(None)
    assert len([s for s in at_once.scores if s["trigger"] == "daily"]) > 60
    assert at_once.alerts and at_once.examples
    for per_sweep in (1, 3, 1000):
        spread = _run_spread(per_sweep)
        assert canonical(spread) == canonical(at_once), per_sweep
        # The trainer learns in this order: the same examples in the same order.
        assert [stored(e) for e in spread.examples] == [stored(e) for e in at_once.examples]


@pytest.mark.parametrize("sweep_every", [1, 7, 1000])
def test_spread_rows_do_not_depend_on_the_sweep_cadence(sweep_every: int) -> None:
    spread, at_once = _run_spread(2, sweep_every), _run_spread(None)
    assert canonical(spread) == canonical(at_once)
    assert [stored(e) for e in spread.examples] == [stored(e) for e in at_once.examples]


def _mid_spread(*late: Event) -> tuple[Run, Run]:
    """Two runs, rows at once and one row per sweep: `z` and other users quiet since day 0,
    the watermark just passed day 1; then `late` arrives before z's row is made (spread)."""
    runs = Run(lateness_s=DAY_S), Run(lateness_s=DAY_S, daily_rows_per_sweep=1)
    for run in runs:
        for user in ("a", "b", "z"):
            run.feed(life(user, at(0, 1.0), "signup"), login(user, at(0, 9.0)))
        run.pace(at(2, 1.0))  # watermark day 1 01:00
        z = run.repo.records["z"]
        assert z.next_daily is not None
        if run.config.daily_rows_per_sweep is not None:  # z's row is still to come
            assert z.next_daily <= run.detector.watermark.value
        run.feed(*late)
        run.pace(at(5, 1.0))
        while run.detector.rows_due:
            run.sweep()
    return runs


def test_a_late_event_before_the_boundary_arriving_mid_spread_leaves_the_row_unchanged() -> None:
    at_once, spread = _mid_spread(login("z", at(0, 22.0)), login("z", at(0, 23.0)))
    assert canonical(spread.out) == canonical(at_once.out)
    row = next(s for s in spread.out.scores if s["user_id"] == "z" and s["trigger"] == "daily")
    first = next(e for e in spread.out.examples if e.user_id == "z")
    assert row["ts"] == day_ts(1)[0] and feature(first, "logins_1d") == 1.0  # made before them


@pytest.mark.parametrize(("hour", "labels"), [(27.0, [True]), (23.0, [])])
def test_a_cancel_mid_spread_comes_after_the_row_as_made_at_once(
    hour: float, labels: list[bool]
) -> None:
    # After the boundary: a positive label. Late, before it: the row was made at once, so it
    # is made spread too, and the cancel then drops its label (PendingLabels.on_cancel).
    at_once, spread = _mid_spread(life("z", at(0, hour), "cancel"))
    assert canonical(spread.out) == canonical(at_once.out)
    assert spread.rows("z") == day_ts(1)
    assert [e.label for e in spread.examples("z")] == labels


def test_a_segment_change_mid_spread_keeps_the_row_and_its_label() -> None:
    at_once, spread = _mid_spread(life("z", at(1, 3.0), "signup", "saas"))
    assert canonical(spread.out) == canonical(at_once.out)
    row = next(s for s in spread.out.scores if s["user_id"] == "z" and s["trigger"] == "daily")
    assert row["segment"] == "course"


def test_an_erased_user_gets_no_row_once_forgotten_mid_spread() -> None:
    run = Run(lateness_s=DAY_S, daily_rows_per_sweep=1)
    for user in ("a", "z"):
        run.feed(login(user, at(0, 9.0)))
    run.pace(at(2, 1.0))
    del run.repo.records["z"]
    run.detector.forget("z")
    while run.detector.rows_due:
        run.sweep()
    assert run.rows("z") == [] and run.rows("a") == day_ts(1)
