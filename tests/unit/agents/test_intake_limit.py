"""Intake stops where the daily rows not made yet could no longer be made right.

While a decision waits for an input source (one that has not started, or lags), the events of
the other sources go on being applied and their users' states run ahead of the watermark. A
daily row as of boundary B reads the state's day ring, which keeps only `AHEAD_DAYS` days past
B, so the live worker must not apply events past that before B's rows are made
(`Detector.intake_until`, held in the aligner by `BatchLoop`). Here a whole history arrives at
once while the kinds that never start are waited for: the examples must be the replay's.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from fake_records import Ev
from test_batch_loop import World, run
from test_status import Records, processor

from churnstream.agents.configure import alert_policy, engine_config, live_engine_config
from churnstream.agents.processor import EventProcessor, decode_example
from churnstream.features import FEATURE_NAMES
from churnstream.features.buckets import AHEAD_DAYS
from churnstream.model.engine import Detector, EngineConfig
from churnstream.model.labels import Example
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import DAY_S, Event, Login, expected_kinds
from churnstream.stream.settings import Settings, SettingsError

D0 = 1_767_225_600.0  # a day boundary
USERS = 4
DAYS = 40  # more than the 28-day window plus the ring's days ahead


@dataclass(frozen=True)
class Record:
    """An input record as the batch loop and `EventProcessor.apply` read it."""

    topic: str
    partition: int
    offset: int
    timestamp: float = 0.0


class HistoryProcessor(EventProcessor):
    """The real processor; `validate` hands out the history's events instead of parsing."""

    def __init__(self, events: dict[tuple[int, int], Event], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events = events

    def validate(self, message: Any, out: Any) -> Event | None:
        return self.events[(message.partition, message.offset)]


class Unlimited(Detector):
    """Intake as before the limit: never held for the rows."""

    @property
    def intake_until(self) -> float:
        return math.inf


def history() -> list[tuple[int, int, Login]]:
    """Each user logs in every day (twice on odd days); users 0-1 on partition 0, 2-3 on 1."""
    out: list[tuple[int, int, Login]] = []
    offsets = [0, 0]
    for day in range(DAYS):
        for n in range(USERS):
            for k in range(1 + day % 2):
                p = n // 2
                ts = D0 + day * DAY_S + 3600.0 * (n + 1) + 60.0 * k
                out.append(
                    (p, offsets[p], Login(event_id=f"{n}-{day}-{k}", user_id=f"u{n}", ts=ts))
                )
                offsets[p] += 1
    return out


def replay_examples(config: EngineConfig, settings: Settings) -> list[Example]:
    detector = Detector(
        config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), Records()
    )
    examples: list[Example] = []
    for _, _, event in sorted(history(), key=lambda r: r[2].ts):
        detector.handle(event)
        detector.sweep()
        examples += detector.out.drain().examples
    return examples


def live_examples(settings: Settings, *, limit: bool) -> tuple[list[Example], float]:
    """The examples of the history delivered in one batch; the most days a user's state ran
    past the oldest boundary whose rows were not made yet."""
    config = dataclasses.replace(live_engine_config(settings), model_as_of=False)
    repo = Records()
    cls = Detector if limit else Unlimited
    detector = cls(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    w = World()
    records = history()
    processor = HistoryProcessor(
        {(p, o): e for p, o, e in records},
        settings=settings,
        metrics=w.metrics,
        detector=detector,
        repo=repo,  # type: ignore[arg-type]
        clock=w.clock,
    )
    w.processor = processor  # type: ignore[assignment]
    w.loop.processor = processor
    ahead = 0.0
    handle = detector.handle

    def watched(event: Event, source: Any = None) -> str:
        nonlocal ahead
        if detector.days.earliest < math.inf:
            ahead = max(ahead, (event.ts - detector.days.earliest) / DAY_S)
        return handle(event, source)

    detector.handle = watched  # type: ignore[method-assign]

    async def scenario() -> None:
        await w.loop.run([Ev(Record("logins", p, o)) for p, o, _ in records])  # type: ignore[arg-type]
        start = w.clock.now
        for _ in range(200):
            waited = w.clock.now - start > settings.source_wait_s
            if waited and not len(w.aligner) and not detector.rows_due:
                break
            w.clock.now += 1.0  # wall time passes: the kinds that never start are given up
            await w.loop.tick()

    run(scenario())
    sent = [
        decode_example(value) for topic, _, value, _ in w.sender.sent if topic == "churn.examples"
    ]
    return sent, ahead


def test_a_history_at_once_while_sources_are_waited_for_gives_the_replays_rows() -> None:
    settings = Settings(source_wait_s=5.0)
    live, ahead = live_examples(settings, limit=True)
    offline = replay_examples(engine_config(settings), settings)
    assert len(offline) > 100
    assert [(e.user_id, e.made_at, e.features, e.label) for e in live] == [
        (e.user_id, e.made_at, e.features, e.label) for e in offline
    ]
    assert ahead <= AHEAD_DAYS + 1


def test_without_the_limit_the_states_run_ahead_and_the_rows_differ() -> None:
    """The test above can fail: intake unbounded, every state is 40 days on before the first
    boundary's rows are made, and the rows lose the oldest days of their window."""
    settings = Settings(source_wait_s=5.0)
    live, ahead = live_examples(settings, limit=False)
    offline = replay_examples(engine_config(settings), settings)
    assert ahead > DAYS - 2
    assert [(e.user_id, e.made_at, e.features, e.label) for e in live] != [
        (e.user_id, e.made_at, e.features, e.label) for e in offline
    ]


def test_the_limit_is_the_rings_days_past_the_oldest_row_not_made_or_past_the_lateness() -> None:
    settings = Settings()
    config = engine_config(settings)
    detector = Detector(
        config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), Records()
    )
    assert detector.intake_until == math.inf  # no row scheduled
    detector.handle(Login(event_id="e", user_id="u", ts=D0 + 3600.0))
    assert detector.intake_until == D0 + (1 + AHEAD_DAYS + 1) * DAY_S
    late = dataclasses.replace(
        config, features=dataclasses.replace(config.features, lateness_s=9 * DAY_S)
    )
    detector = Detector(late, Scorer(late.model, FEATURE_NAMES), alert_policy(settings), Records())
    detector.handle(Login(event_id="e", user_id="u", ts=D0 + 3600.0))
    assert detector.intake_until == D0 + (1 + 9 + 1) * DAY_S


def test_sources_with_events_held_past_the_limit_are_not_waited_for() -> None:
    p = processor()
    detector = p.detector
    detector.handle(Login(event_id="e", user_id="u", ts=D0), ("t.behaviour.logins", 0, 0))
    waited = set(detector.watermark.lagging())
    assert {"document_job", "value", "video_view"} <= waited
    # Document jobs were delivered, all past the limit; value has sent nothing.
    p.held_past({("t.behaviour.document-jobs", 2): 3})
    assert set(detector.watermark.lagging()) == waited - {"document_job"}


def test_a_deployment_waits_only_for_the_inputs_of_its_segments() -> None:
    settings = Settings(segments="course")
    assert engine_config(settings).expect_kinds == ("video_view", "login", "lifecycle")
    assert expected_kinds(("saas", "docs")) == (
        "login", "integration_sync", "document_job", "value", "lifecycle"
    )  # fmt: skip
    config = live_engine_config(settings)
    detector = Detector(
        config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), Records()
    )
    wm = detector.watermark
    for topic, kind in (("logins", "login"), ("views", "video_view"), ("subs", "lifecycle")):
        wm.observe((topic, 0), D0, kind)
    assert wm.lagging() == [] and wm.value == D0 - config.features.lateness_s
    for bad in ("", "course,retail", " , "):
        try:
            Settings(segments=bad).validate()
        except SettingsError as exc:
            assert "CHURNSTREAM_SEGMENTS" in str(exc)
        else:
            raise AssertionError(f"segments={bad!r} accepted")
