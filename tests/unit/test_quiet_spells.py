"""The quiet-spell course label of bench/quiet_spells.py (docs/model.md "Nonlinear ceiling")."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from quiet_spells import DAY, quiet_spell_labels

NAMES = ["days_since_login", "days_since_video", "other"]


def _rows(user: str, active_days: set[int], days: int) -> tuple[list[str], list[float], list]:
    """Daily rows at the end of each day 0..days-1, recency from the last active day."""
    users, ts, xs = [], [], []
    last = None
    for d in range(days):
        if d in active_days:
            last = d
        quiet = 60.0 if last is None else float(d - last)
        users.append(user)
        ts.append(d * DAY)
        xs.append([quiet, quiet + 1.0, 0.0])  # the label reads the smaller of the two
    return users, ts, xs


def _labels(users, ts, xs, cancels=None, quiet_days=14.0):
    return quiet_spell_labels(
        NAMES, np.array(users), np.array(ts), np.array(xs), cancels or {}, 7.0, quiet_days
    )


def test_leaver_is_positive_in_the_horizon_before_the_spell_and_left_after() -> None:
    # Active every day up to day 10, then quiet for good (rows go on until day 39).
    label, left = _labels(*_rows("a", set(range(11)), 40))
    assert list(np.flatnonzero(label)) == [3, 4, 5, 6, 7, 8, 9]  # last activity in (t, t + 7]
    assert list(np.flatnonzero(left)) == list(range(10, 40))


def test_a_quiet_week_then_back_is_no_churn() -> None:
    # Quiet from day 11 to day 19 (8 days), back on day 20: shorter than the 14-day spell.
    label, left = _labels(*_rows("b", set(range(11)) | set(range(20, 40)), 40))
    assert not label.any() and not left.any()
    # With a 7-day spell the same quiet week counts.
    label7, left7 = _labels(*_rows("b", set(range(11)) | set(range(20, 40)), 40), quiet_days=7.0)
    assert label7[3:10].all() and left7[10:20].all() and not left7[20:].any()


def test_a_cancel_in_the_horizon_is_positive() -> None:
    label, _ = _labels(*_rows("c", set(range(40)), 40), cancels={"c": [30.5 * DAY]})
    assert list(np.flatnonzero(label)) == [24, 25, 26, 27, 28, 29, 30]
