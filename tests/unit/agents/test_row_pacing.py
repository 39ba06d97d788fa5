"""Input goes before a day boundary's rows: each turn makes rows for a wall-time budget only
(`EventProcessor.finish`, a fake clock here), and the timer makes turn after turn of them only
while no input waits (`BatchLoop.tick`), so an event waits behind one turn of rows at most."""

from __future__ import annotations

import asyncio
import gc
import itertools
from typing import Any

from fake_records import RecordingStore
from test_batch_loop import FakeProcessor, World, run
from test_status import Records

from churnstream.agents.checkpoint import Outbox
from churnstream.agents.configure import alert_policy, live_engine_config
from churnstream.agents.metrics import WorkerMetrics
from churnstream.agents.processor import EventProcessor
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.scoring import Scorer
from churnstream.model.watermark import CONFIRM_EVENTS
from churnstream.stream.contract.events import DAY_S, Login
from churnstream.stream.settings import Settings

D0 = 1_767_225_600.0  # a day boundary


class RowsProcessor(FakeProcessor):
    """`rows` daily rows are due; each turn (finish) makes `per_turn` of them."""

    def __init__(self, store: RecordingStore, rows: int, per_turn: int) -> None:
        super().__init__(store)
        self.rows_left = rows
        self.per_turn = per_turn
        self.log: list[tuple[str, int]] = []  # ("rows", made) per turn, ("event", offset)

    def rows_ready(self) -> bool:
        return self.rows_left > 0

    def waiting(self, now: float) -> bool:
        return super().waiting(now) or self.rows_left > 0

    def apply(self, event: Any, message: Any, out: Outbox) -> float | None:
        self.log.append(("event", message.offset))
        return super().apply(event, message, out)

    def finish(self, out: Outbox) -> None:
        made = min(self.per_turn, self.rows_left)
        self.rows_left -= made
        if made:
            self.log.append(("rows", made))
            for _ in range(made):
                out.produce("churn.risk-scores", b"row", b"daily")
        super().finish(out)


def rows_world(rows: int, per_turn: int) -> tuple[World, RowsProcessor]:
    w = World()
    w.processor = processor = RowsProcessor(w.store, rows, per_turn)
    w.loop.processor = processor
    return w, processor


def test_with_no_input_waiting_the_timer_makes_the_rows_turn_after_turn() -> None:
    async def scenario() -> None:
        w, p = rows_world(rows=10, per_turn=3)
        await w.loop.tick()
        assert p.log == [("rows", 3), ("rows", 3), ("rows", 3), ("rows", 1)]
        assert w.steps().count("send") == 4  # each turn sent on its own

    run(scenario())


def test_records_queued_for_the_next_batch_stop_the_timer_after_one_turn() -> None:
    async def scenario() -> None:
        w, p = rows_world(rows=10, per_turn=3)
        queued = [5]
        w.loop.backlog = lambda: queued[0]
        await w.loop.tick()
        assert p.log == [("rows", 3)]
        await w.loop.tick()  # a tick makes one turn still: rows go on under any load
        assert p.log == [("rows", 3), ("rows", 3)]
        queued[0] = 0
        await w.loop.tick()
        assert p.rows_left == 0

    run(scenario())


def test_a_batch_arriving_during_the_rows_waits_behind_one_turn_only() -> None:
    async def scenario() -> None:
        w, p = rows_world(rows=10, per_turn=3)
        await asyncio.gather(w.loop.tick(), w.batch((0, 0, b"10")))
        # The batch's own turn makes its share of rows after its event.
        assert p.log == [("rows", 3), ("event", 0), ("rows", 3), ("rows", 3), ("rows", 1)]
        assert w.group.committed[next(iter(w.group.committed))] == 1

    run(scenario())


class SteppingClock:
    """Moves `step` seconds each time it is read."""

    def __init__(self, step: float) -> None:
        self.ticks = itertools.count(1)
        self.step = step

    def __call__(self) -> float:
        return next(self.ticks) * self.step


class Out:
    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes]] = []

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        self.records.append((topic, key, value))


def test_a_turn_makes_rows_for_its_time_budget_then_leaves_the_rest_to_the_next() -> None:
    settings = Settings(topic_prefix="t.", source_wait_s=1.0)
    config = live_engine_config(settings)
    repo = Records()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    # Each read of the clock is 5 ms later: a 20 ms budget ends after the fourth row.
    p = EventProcessor(
        settings,
        WorkerMetrics(),
        detector,
        repo,  # type: ignore[arg-type]
        rows_budget_s=0.02,
        clock=SteppingClock(0.005),
    )
    users = [f"u{n}" for n in range(10)]
    source = ("t.behaviour.logins", 0)
    for n, user in enumerate(users):
        detector.handle(Login(event_id=f"e{n}", user_id=user, ts=D0 + 60.0 * n), (*source, n))
    # The watermark moves on CONFIRM_EVENTS far events in a row, not on a few outliers.
    for i in range(CONFIRM_EVENTS):
        mover = Login(event_id=f"m{i}", user_id="mover", ts=D0 + 2 * DAY_S + i)
        detector.handle(mover, (*source, 10 + i))
    p.waiting(0.0)
    p.waiting(2.0)  # the sources that never started are given up: the boundary is passed
    assert p.rows_ready()
    made = []
    while p.rows_ready():
        out = Out()
        p.finish(out)  # type: ignore[arg-type]
        made.append(sum(1 for topic, _, value in out.records if b'"daily"' in value))
    assert made == [4, 4, 2]


def test_after_a_rebalance_what_survives_is_frozen_out_of_later_collections() -> None:
    settings = Settings(topic_prefix="t.")
    config = live_engine_config(settings)
    repo = Records()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    p = EventProcessor(settings, WorkerMetrics(), detector, repo)  # type: ignore[arg-type]
    gc.unfreeze()
    try:
        assert gc.get_freeze_count() == 0
        p.reset(frozenset())
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()  # the rest of the test run collects as usual
