"""An event whose fold raises half-way leaves the state exactly as it was (all or nothing).

Validation bounds every number, so these events cannot come from a topic; they stand for any
fold that fails (a bug, a future field), which must not leave a half-counted day behind.
"""

from __future__ import annotations

import math

import pytest
from feature_events import at, job, login, sync, value, view

from churnstream.features import UserState
from churnstream.stream.contract.events import Event

# Each raises OverflowError inside its fold, after some counters of the row were already added.
FAILING = {
    "video": lambda ts: view(ts, watched=1e308, duration=1.0),
    "sync": lambda ts: sync(ts, latency=math.inf),
    "job": lambda ts: job(ts, documents=3, ms=math.inf),
    "value": lambda ts: value(ts, 1e307),
}


def _state() -> UserState:
    st = UserState.new("u-1")
    for ev in (login(at(0)), view(at(1)), sync(at(1), latency=20.0), job(at(1), ms=5.0)):
        st.apply(ev)
    return st


@pytest.mark.parametrize("kind", sorted(FAILING))
@pytest.mark.parametrize("day", [1, 2], ids=["existing_day", "new_day"])
def test_a_fold_that_raises_changes_nothing(kind: str, day: int) -> None:
    st = _state()
    before, features = st.to_bytes(), st.features()
    ring = (list(st.days), [None if r is None else list(r) for r in st.rows], list(st.last))
    bad: Event = FAILING[kind](at(day, 13.0))
    with pytest.raises(OverflowError):
        st.apply(bad)
    assert st.to_bytes() == before
    assert (st.days, st.rows, st.last) == ring
    assert st.features() == features
    with pytest.raises(OverflowError):  # its id was not kept either: not a duplicate now
        st.apply(bad)
    ok = login(at(day, 14.0))
    st.apply(ok)
    assert st.features()["logins_7d"] == 2
