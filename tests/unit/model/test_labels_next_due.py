"""`PendingLabels.next_due` is kept between changes (the engine asks it at every event): it
must follow every change of the snapshots."""

from __future__ import annotations

from churnstream.model.labels import PendingLabels
from churnstream.stream.contract.events import DAY_S

H = 14 * DAY_S


def test_next_due_follows_every_change() -> None:
    p = PendingLabels("u1", "course")
    assert p.next_due() is None
    p.add(10 * DAY_S, [0.0], 0.1, 1, H)
    p.add(11 * DAY_S, [0.0], 0.1, 1, H)
    assert p.next_due() == 10 * DAY_S + H
    # The same day again, later in the day: replaces the earliest snapshot.
    p.add(10 * DAY_S + 3600, [0.0], 0.1, 1, H)
    assert p.next_due() == 10 * DAY_S + 3600 + H
    assert p.due(10 * DAY_S + 3600 + H + 1)[0].made_at == 10 * DAY_S + 3600
    assert p.next_due() == 11 * DAY_S + H
    p.on_cancel(11 * DAY_S - 1)  # drops the snapshot made after the cancel
    assert p.next_due() is None
    p.add(20 * DAY_S, [0.0], 0.1, 1, H)
    copy = PendingLabels.from_bytes(p.to_bytes())
    assert copy.next_due() == p.next_due() == 20 * DAY_S + H
    p.clear()
    assert p.next_due() is None
    assert [e.made_at for e in copy.due(float("inf"))] == [20 * DAY_S]
    assert copy.next_due() is None
