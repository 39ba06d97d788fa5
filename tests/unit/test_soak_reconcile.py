"""The soak's accounting (bench/soak/soak_reconcile.py): lost, doubled and stuck per user."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "soak"))

from soak_reconcile import Expected, Seen, counted_events, reconcile

from churnstream.features import UserState
from churnstream.stream.contract.events import DAY_S as DAY
from churnstream.stream.contract.events import Lifecycle, Login, ValueEvent


def _expected(**users: int) -> Expected:
    exp = Expected(records_in=sum(users.values()))
    for user, n in users.items():
        for i in range(n):
            exp.valid(user, 1000.0 + i)
    return exp


def test_everything_reflected_passes() -> None:
    exp = _expected(a=3, b=2)
    exp.invalid, exp.duplicates, exp.records_in = 1, 1, 7
    tally = reconcile(exp, {"a": Seen(3, 1002.0), "b": Seen(1, 1001.0)}, {"b": 1}, 1)
    assert (tally.reflected, tally.doubled, tally.lost, tally.stuck) == (7, 0, 0, 0)
    assert tally.passed


def test_double_count_and_loss_do_not_cancel_out_across_users() -> None:
    tally = reconcile(_expected(a=3, b=3), {"a": Seen(4, 1002.0), "b": Seen(2, 1002.0)}, {}, 0)
    assert (tally.reflected, tally.doubled, tally.lost, tally.stuck) == (5, 1, 1, 0)
    assert tally.worst == (("a", 1), ("b", -1))
    assert not tally.passed


def test_missing_invalid_record_is_lost_and_newest_event_not_applied_is_stuck() -> None:
    exp = _expected(a=2)
    exp.invalid = 2
    tally = reconcile(exp, {"a": Seen(1, 1000.0)}, {}, 1)
    assert (tally.lost, tally.stuck) == (2, 1)


def test_unreadable_or_absent_state_is_stuck_and_written_off_events_are_not_lost() -> None:
    exp = _expected(a=2, b=1, c=4)
    exp.write_off("c", 4)
    tally = reconcile(exp, {"a": None, "c": Seen(0, 0.0)}, {}, 0)
    assert (tally.lost, tally.stuck, tally.written_off) == (3, 2, 4)


@pytest.mark.parametrize("n", [1, 5])
def test_counted_events_counts_each_counted_kind_once(n: int) -> None:
    state = UserState.new("u")
    for i in range(n):
        state.apply(Login(event_id=f"l{i}", user_id="u", ts=DAY * 20 + i))
        state.apply(ValueEvent(event_id=f"v{i}", user_id="u", ts=DAY * 20 + i, value=3.0))
    state.apply(Lifecycle(event_id="s", user_id="u", ts=DAY * 20, event="signup"))
    # A duplicate delivery: not counted again.
    state.apply(Login(event_id="l0", user_id="u", ts=DAY * 20))
    assert counted_events(state) == 2 * n
