"""Far-ahead event times among ordinary ones do not move the watermark (make soak f1)."""

from __future__ import annotations

import random

from churnstream.model.watermark import CONFIRM_EVENTS, Watermark
from churnstream.stream.contract.events import DAY_S

D0 = 1_767_225_600.0
Y2100 = 4_133_980_799.0


def test_bad_records_dated_2100_twice_in_a_row_do_not_move_the_watermark() -> None:
    """The soak's replay of a million extreme records: on one source (a kind), two records
    dated 2100 came in a row, the second confirmed the first, and the replay then made a daily
    row for every user for every day up to 2100."""
    wm = Watermark(0.0, max_step_s=DAY_S)
    wm.observe("login", D0, "login")
    for n in range(1, 200):
        wm.observe("login", D0 + n * 60.0, "login")
        wm.observe("login", Y2100 - 1.0, "login")
        wm.observe("login", Y2100, "login")  # within a day of the one before
        if n % 3 == 0:
            wm.observe("login", Y2100, "login")  # even three in a row
    assert wm.value == D0 + 199 * 60.0
    assert wm.outliers == 2 * 199 + 66


def test_scattered_far_events_at_the_soaks_rate_never_confirm_each_other() -> None:
    # ~1.6% of the source's events far ahead, within a day of each other, 200,000 events.
    rng = random.Random(7)
    wm = Watermark(0.0, max_step_s=DAY_S)
    ts = D0
    for _ in range(200_000):
        if rng.random() < 0.016:
            wm.observe("login", Y2100 - rng.random() * 3600.0, "login")
        else:
            ts += 1.0
            wm.observe("login", ts, "login")
    assert wm.value == ts


def test_a_real_jump_moves_the_watermark_once_confirmed() -> None:
    wm = Watermark(0.0, max_step_s=DAY_S)
    wm.observe("login", D0, "login")
    far = D0 + 10 * DAY_S  # e.g. a history that resumes after a gap
    for i in range(CONFIRM_EVENTS - 1):
        wm.observe("login", far + 60.0 * i, "login")
        assert wm.value == D0
    wm.observe("login", far + 3600.0, "login")
    assert wm.value == far  # the nearest of the events that confirmed it
    assert wm.outliers == CONFIRM_EVENTS - 1
