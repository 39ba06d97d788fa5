"""The input guard's side of the event-time order: which partitions still have unread records,
and pausing the partitions the aligner names as ahead (back-pressure during a catch-up)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest

from churnstream.agents import input_guard
from churnstream.agents.input_guard import STALL_S, InputGuard
from churnstream.agents.metrics import WorkerMetrics
from churnstream.stream.settings import Settings


class TP(NamedTuple):
    topic: str
    partition: int


A, B, C = TP("logins", 0), TP("logins", 1), TP("syncs", 0)


class FakeConsumer:
    """Faust's consumer as the guard sees it: assignment, log ends, pause and resume."""

    def __init__(self, highwater: dict[TP, int | None]) -> None:
        self.ends = highwater
        self.paused: set[TP] = set()
        self.calls: list[tuple[str, set[TP]]] = []
        self._active_partitions = set(highwater)

    def _get_active_partitions(self) -> set[TP]:
        return self._active_partitions

    def assignment(self) -> set[TP]:
        return set(self.ends)

    def highwater(self, tp: TP) -> int | None:
        return self.ends[tp]

    def pause_partitions(self, tps: Any) -> None:
        self.calls.append(("pause", set(tps)))
        self.paused |= set(tps)

    def resume_partitions(self, tps: Any) -> None:
        self.calls.append(("resume", set(tps)))
        self.paused -= set(tps)


class FakeApp:
    def __init__(self, consumer: FakeConsumer) -> None:
        self.consumer = consumer
        self.consumer_generation_id = 1
        self.rebalancing = False


def guard_at(offsets: dict[TP, int], ends: dict[TP, int | None]) -> tuple[InputGuard, FakeApp]:
    app = FakeApp(FakeConsumer(ends))
    guard = InputGuard(app, Settings(), "localhost:9092", WorkerMetrics(), ["logins", "syncs"])
    guard.generation = 1
    guard.sequence.reset({(tp.topic, tp.partition): o for tp, o in offsets.items()})
    return guard, app


def test_lagging_are_the_partitions_with_unread_records_or_an_unknown_log_end() -> None:
    guard, _ = guard_at({A: 5, B: 7, C: 0}, {A: 9, B: 7, C: None})
    assert sorted(guard.lagging()) == [("logins", 0), ("syncs", 0)]


def test_hold_back_pauses_and_resumes_only_what_changed() -> None:
    guard, app = guard_at({A: 0, B: 0, C: 0}, {A: 9, B: 9, C: 9})
    guard.hold_back(frozenset({("logins", 0), ("syncs", 0)}))
    assert app.consumer.paused == {A, C}
    guard.hold_back(frozenset({("logins", 0)}))
    assert app.consumer.paused == {A}
    guard.hold_back(frozenset({("logins", 0)}))
    assert app.consumer.calls == [("pause", {A, C}), ("resume", {C})]
    assert guard.metrics.registry.get_sample_value("churnstream_input_partitions_paused") == 1


def test_hold_back_leaves_the_partitions_to_faust_while_it_rebalances() -> None:
    guard, app = guard_at({A: 0}, {A: 9})
    app.rebalancing = True
    guard.hold_back(frozenset({("logins", 0)}))
    assert app.consumer.calls == []


def test_a_paused_partition_is_not_taken_for_stalled(monkeypatch: pytest.MonkeyPatch) -> None:
    guard, _ = guard_at({A: 0, B: 0}, {A: 9, B: 9})
    reread: list[tuple[str, int]] = []

    async def read_again(tp: tuple[str, int], offset: int) -> None:
        reread.append(tp)

    guard._read_again = read_again  # type: ignore[method-assign]
    guard.hold_back(frozenset({("logins", 0)}))
    clock = iter([100.0, 100.0 + STALL_S + 1])
    monkeypatch.setattr(input_guard, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    asyncio.run(guard.watch())
    asyncio.run(guard.watch())
    assert reread == [("logins", 1)]  # B delivered nothing although unpaused: read again


def test_the_lease_of_a_batch_ends_with_its_generation_assignment_or_a_rebalance() -> None:
    guard, app = guard_at({A: 0, B: 0}, {A: 5, B: 5})
    guard.assigned = frozenset({("logins", 0), ("logins", 1)})
    lease = guard.lease()
    assert guard.ready() and lease()
    app.rebalancing = True  # partitions revoked, the new assignment not known yet
    assert not guard.ready() and not lease()
    app.rebalancing = False
    assert lease()
    app.consumer.ends.pop(B)  # the same generation cannot lose a partition, but if it did
    assert not lease()
    app.consumer.ends[B] = 5
    app.consumer_generation_id = 2
    assert not lease()
    assert not guard.lease()()  # the guard has not synced to generation 2 yet
