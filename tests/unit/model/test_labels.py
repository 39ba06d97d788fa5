"""PendingLabels and DueIndex: the delayed-label contract at its edges."""

from __future__ import annotations

import pytest

from churnstream.model.labels import DueIndex, Example, PendingLabels
from churnstream.stream.contract.events import DAY_S

H = 7 * DAY_S
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a UTC day boundary


def pending_with(*times: float, horizon: float = H) -> PendingLabels:
    p = PendingLabels("u1", "course")
    for i, t in enumerate(times):
        p.add(t, [float(i), 1.5], 0.1 * (i + 1), i, horizon)
    return p


def cancel_all(p: PendingLabels, ts: float) -> list[Example]:
    """Cancel, then let event time pass every horizon: all labels come out."""
    p.on_cancel(ts)
    return p.due(float("inf"))


def labels(examples: list[Example]) -> list[tuple[float, bool]]:
    return [(e.made_at, e.label) for e in examples]


def test_cancel_inside_horizon_is_positive() -> None:
    p = pending_with(T0 + 3600)
    out = cancel_all(p, T0 + 3 * DAY_S)
    assert labels(out) == [(T0 + 3600, True)]
    assert out[0].features == [0.0, 1.5]
    assert (out[0].user_id, out[0].segment, out[0].model_version) == ("u1", "course", 0)
    assert out[0].score == pytest.approx(0.1)
    assert len(p) == 0


def test_cancel_exactly_at_due_is_positive_just_after_is_negative() -> None:
    made = T0 + 3600
    assert labels(cancel_all(pending_with(made), made + H)) == [(made, True)]
    assert labels(cancel_all(pending_with(made), made + H + 0.001)) == [(made, False)]


def test_cancel_at_prediction_time_is_not_a_label() -> None:
    # (t, t + H] is open at t: a prediction made at the cancel instant saw the churned user.
    made = T0 + 3600
    assert cancel_all(pending_with(made), made) == []


def test_cancel_mixes_old_negatives_and_recent_positives() -> None:
    times = [T0 + d * DAY_S + 60 for d in range(10)]
    p = pending_with(*times)
    cancel = T0 + 9 * DAY_S + 30  # before the day-9 prediction (late cancel)
    out = cancel_all(p, cancel)
    got = dict(labels(out))
    assert T0 + 9 * DAY_S + 60 not in got  # made after the cancel: dropped
    for t in times[:-1]:
        assert got[t] is (cancel <= t + H)
    assert sorted(got.values()).count(False) == 2  # days 0 and 1 had already expired
    assert len(p) == 0


def test_due_emits_negatives_only_after_watermark_passes_due() -> None:
    made = T0 + 3600
    p = pending_with(made)
    assert p.due(made + H) == []  # watermark == due: a cancel at due may still arrive
    assert p.next_due() == made + H
    out = p.due(made + H + 1)
    assert labels(out) == [(made, False)]
    assert p.due(made + 10 * H) == []  # emitted once


def test_late_cancel_after_negative_was_emitted_does_not_relabel() -> None:
    made = T0 + 3600
    p = pending_with(made)
    assert labels(p.due(made + H + 1)) == [(made, False)]
    assert cancel_all(p, made + DAY_S) == []


def test_one_snapshot_per_day_latest_wins() -> None:
    p = PendingLabels("u1", "saas")
    assert p.add(T0 + 60, [1.0], 0.2, 1, H) is True
    assert p.add(T0 + 7200, [2.0], 0.3, 2, H) is False  # same UTC day: replaced
    assert p.add(T0 + DAY_S, [3.0], 0.4, 3, H) is True  # next day
    assert len(p) == 2
    out = cancel_all(p, T0 + DAY_S + 10)
    assert [(e.features, e.model_version) for e in out] == [([2.0], 2), ([3.0], 3)]
    assert out[0].made_at == T0 + 7200


def test_resignup_after_cancel_starts_clean() -> None:
    p = pending_with(T0 + 60)
    assert len(cancel_all(p, T0 + DAY_S)) == 1
    p.clear()
    p.add(T0 + 2 * DAY_S, [9.0], 0.5, 7, H)
    assert labels(p.due(T0 + 2 * DAY_S + H + 1)) == [(T0 + 2 * DAY_S, False)]


def test_bounded_by_horizon_days_when_due_is_swept() -> None:
    p = PendingLabels("u1", "course")
    for d in range(60):
        t = T0 + d * DAY_S + 100
        p.add(t, [0.0] * 70, 0.1, d, H)
        p.due(t)  # the engine sweeps with (at most) the current event time
        assert len(p) <= 8


def test_bytes_round_trip() -> None:
    p = PendingLabels("üser-ñ", "docs")
    for d in range(3):
        p.add(T0 + d * DAY_S + 0.25, [0.5 * d, -1.25, 3.0], 0.125 * d, 10 + d, 14 * DAY_S)
    q = PendingLabels.from_bytes(p.to_bytes())
    assert (q.user_id, q.segment, len(q)) == ("üser-ñ", "docs", 3)
    assert q.next_due() == p.next_due()
    cancel = T0 + 5 * DAY_S
    restored = [e.to_dict() for e in cancel_all(q, cancel)]
    assert restored == [e.to_dict() for e in cancel_all(p, cancel)]
    assert PendingLabels.from_bytes(PendingLabels("a", "b").to_bytes()).next_due() is None


@pytest.mark.parametrize("cut", [1, 5, 20])
def test_from_bytes_rejects_truncated(cut: int) -> None:
    data = pending_with(T0, T0 + DAY_S).to_bytes()
    with pytest.raises(ValueError):
        PendingLabels.from_bytes(data[:-cut])


def test_example_dict_round_trip_is_json_able() -> None:
    import json

    e = Example("u", "saas", T0, [1.0, 0.5], True, 0.25, 3)
    assert Example.from_dict(json.loads(json.dumps(e.to_dict()))) == e


def test_due_index_sweeps_silent_users_without_scanning() -> None:
    users = {f"u{i}": pending_with(T0 + i * DAY_S) for i in range(5)}
    idx = DueIndex()
    for uid, p in users.items():
        idx.schedule(uid, p.next_due())
    assert len(idx) == 5
    watermark = T0 + 2 * DAY_S + H + 1  # u0, u1, u2 are due
    swept = idx.pop_due(watermark)
    assert swept == ["u0", "u1", "u2"]
    negatives = [e for uid in swept for e in users[uid].due(watermark)]
    assert [e.user_id for e in negatives] == ["u1"] * 3  # pending_with names everyone u1
    assert all(not e.label for e in negatives)
    assert idx.pop_due(watermark) == []
    assert idx.pop_due(T0 + 10 * DAY_S + H) == ["u3", "u4"]


def test_due_index_reschedules_and_skips_stale_entries() -> None:
    idx = DueIndex()
    idx.schedule("a", 100.0)
    idx.schedule("a", 200.0)  # later than the live entry: ignored
    idx.schedule("a", 50.0)  # earlier: replaces; the 100 entry goes stale
    idx.schedule("b", None)
    assert len(idx) == 1
    assert idx.pop_due(60.0) == ["a"]
    assert idx.pop_due(1000.0) == []  # stale 100 entry skipped
    idx.schedule("c", 10.0)
    idx.discard("c")
    assert idx.pop_due(1000.0) == []


def test_due_index_heap_stays_bounded() -> None:
    idx = DueIndex()
    for i in range(10_000):
        idx.schedule("a", 1e9 - i)  # ever earlier: each push makes the previous stale
    assert idx.heap_size <= 2 * len(idx) + 65
    assert idx.pop_due(2e9) == ["a"]


def test_a_positive_waits_for_its_horizon_like_a_negative() -> None:
    made = T0 + 3600
    p = pending_with(made)
    p.on_cancel(made + DAY_S)
    assert p.due(made + H) == []  # known positive, but not released before made_at + horizon
    assert labels(p.due(made + H + 1)) == [(made, True)]


@pytest.mark.parametrize(
    ("mode", "quiet", "quiet_cancelled", "busy", "busy_cancelled"),
    [
        ("cancel", False, True, False, True),
        ("inactivity", True, True, False, False),
        ("either", True, True, False, True),
    ],
)
def test_label_modes(
    mode: str, quiet: bool, quiet_cancelled: bool, busy: bool, busy_cancelled: bool
) -> None:
    def label(active_at: float | None, cancel_at: float | None) -> bool:
        p = pending_with(T0)
        if active_at is not None:
            p.on_activity(active_at)
        if cancel_at is not None:
            p.on_cancel(cancel_at)
        (example,) = p.due(float("inf"), mode)  # type: ignore[arg-type]
        return example.label

    assert label(None, None) is quiet
    assert label(None, T0 + DAY_S) is quiet_cancelled
    assert label(T0 + DAY_S, None) is busy
    assert label(T0 + DAY_S, T0 + 2 * DAY_S) is busy_cancelled


def test_activity_counts_only_inside_the_horizon() -> None:
    p = pending_with(T0, T0 + 3 * DAY_S)
    p.on_activity(T0 + H + 1.0)  # after the first horizon, inside the second
    p.on_activity(T0)  # at the first prediction: not after it
    assert labels(p.due(float("inf"), "inactivity")) == [(T0, True), (T0 + 3 * DAY_S, False)]


def test_known_outcomes_can_be_given_when_adding() -> None:
    p = PendingLabels("u1", "course")
    p.add(T0, [1.0], 0.2, 1, H, cancelled=True, active=True)
    restored = PendingLabels.from_bytes(p.to_bytes())
    assert labels(restored.due(float("inf"), "cancel")) == [(T0, True)]
    p.add(T0, [1.0], 0.2, 1, H, active=True)
    assert labels(p.due(float("inf"), "inactivity")) == [(T0, False)]


def test_format_2_payload_still_decodes() -> None:
    p = pending_with(T0, T0 + DAY_S)
    p.on_cancel(T0 + 2 * DAY_S)
    data = bytearray(p.to_bytes())
    assert data[0] == 3
    data[0] = 2  # format 2: same layout, the flags byte was "positive" (1)
    old = PendingLabels.from_bytes(bytes(data))
    assert labels(old.due(float("inf"), "cancel")) == [(T0, True), (T0 + DAY_S, True)]
