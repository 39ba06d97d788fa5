"""Progress per source, outliers and the model as of a boundary (docs/architecture.md)."""

from __future__ import annotations

import itertools
import math

from churnstream.features import FEATURE_NAMES, FeatureConfig
from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.engine import Detector, EngineConfig
from churnstream.model.learner import SegmentModel
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.model.watermark import CONFIRM_EVENTS, Watermark
from churnstream.stream.contract.events import DAY_S, Login, ValueEvent

D0 = 1_767_225_600.0
_ids = itertools.count()


def test_an_idle_source_is_not_waited_for_once_marked_and_counts_again_when_it_advances() -> None:
    wm = Watermark(0.0, idle_after_s=DAY_S, wait=True)
    wm.observe(("logins", 0), D0 + 10 * DAY_S, "login")
    wm.observe(("value", 0), D0, "value")
    assert wm.value == D0  # behind: waited for
    assert wm.lagging() == [("value", 0)]
    wm.mark_idle(("value", 0))
    assert wm.value == D0 + 10 * DAY_S
    assert wm.lagging() == []
    wm.observe(("value", 0), D0 + DAY_S, "value")  # it advances: behind again, waited for
    assert wm.value == D0 + DAY_S


def test_a_partition_of_a_current_kind_that_only_lacks_events_is_not_waited_for() -> None:
    """A kind's progress is its freshest partition's, as in a replay (one source per kind).
    Waiting for a partition that simply had no subscription change for days held every daily
    row live until its next event, after the users' states ran past what a row can read."""
    live = Watermark(0.0, idle_after_s=DAY_S, wait=True, max_step_s=math.inf)
    replay = Watermark(0.0, idle_after_s=DAY_S, wait=False, max_step_s=math.inf)
    for wm, source in ((live, lambda t, p: (t, p)), (replay, lambda t, p: t)):
        wm.observe(source("subs", 0), D0, "lifecycle")
        wm.observe(source("subs", 1), D0 + 5 * DAY_S, "lifecycle")
        wm.observe(source("logins", 0), D0 + 5 * DAY_S, "login")
    assert live.value == replay.value == D0 + 5 * DAY_S
    assert live.lagging() == [] and live.waiting_for("lifecycle", D0 + 5 * DAY_S) == []
    # A whole kind behind is still waited for (its producer may lag), until marked idle.
    live.observe(("logins", 0), D0 + 8 * DAY_S, "login")
    assert live.value == D0 + 5 * DAY_S
    assert live.lagging() == [("subs", 0), ("subs", 1)]
    assert live.waiting_for("lifecycle", D0 + 8 * DAY_S) == [("subs", 0), ("subs", 1)]


def test_a_kind_not_started_holds_the_watermark_only_when_waiting() -> None:
    live = Watermark(0.0, wait=True, expect=("login", "value"))
    replay = Watermark(0.0, wait=False, expect=("login", "value"))
    for wm in (live, replay):
        wm.observe(("logins", 0), D0, "login")
    assert live.value == -math.inf and live.lagging() == ["value"]
    assert live.waiting_for("value", D0) == ["value"]
    assert replay.value == D0 and replay.waiting_for("value", D0) == []
    live.mark_idle("value")
    assert live.value == D0


def test_an_outlier_does_not_move_the_watermark_until_the_next_events_confirm_it() -> None:
    wm = Watermark(0.0, max_step_s=DAY_S)
    wm.observe("login", D0, "login")
    wm.observe("login", D0 + 40 * 365 * DAY_S, "login")  # decades ahead
    assert wm.value == D0 and wm.outliers == 1
    wm.observe("login", D0 + 3600.0, "login")  # the stream goes on
    assert wm.value == D0 + 3600.0
    far = D0 + 10 * DAY_S
    for i in range(CONFIRM_EVENTS):  # the next events confirm a real jump
        wm.observe("login", far + 60.0 * i, "login")
    assert wm.value == far


def test_far_events_scattered_in_a_normal_stream_never_confirm_each_other() -> None:
    """Bad records dated anywhere up to 2100 among ordinary ones (the soak's extreme input):
    two of them land within a day of each other now and then, but an ordinary event of the
    source came between them, so the stream did not jump."""
    wm = Watermark(0.0, max_step_s=DAY_S)
    far = D0 + 30 * 365 * DAY_S
    wm.observe("video", D0 + DAY_S / 2, "video_view")
    for n in range(2000):
        # Ordinary events, not newer than the source's newest (records out of order).
        wm.observe("video", D0 + (n % 600) * 60.0, "video_view")
        if n % 10 == 0:
            wm.observe("video", far + (n % 7) * 3600.0, "video_view")
    assert wm.value == D0 + DAY_S / 2
    assert wm.outliers == 200


def _detector(wait: bool) -> tuple[Detector, MemoryRepository]:
    model = ModelConfig.from_dict({"horizons_days": {"course": 2.0, "saas": 2.0}})
    config = EngineConfig(
        features=FeatureConfig(lateness_s=0.0), model=model, wait_for_sources=wait
    )
    repo = MemoryRepository()
    policy = AlertPolicy(AlertConfig())
    det = Detector(config, Scorer(model, FEATURE_NAMES), policy, repo, wall_clock=lambda: 0.0)
    return det, repo


def test_a_lagging_value_source_holds_roi_decisions_and_daily_rows() -> None:
    det, _ = _detector(wait=True)
    for kind in det.watermark.expected - {"login", "value"}:
        det.watermark.mark_idle(kind)  # sources this deployment does not have
    det.handle(ValueEvent(event_id="v0", user_id="u", ts=D0 + 60.0, value=5.0), ("value", 0, 0))
    for day in range(10):
        ts = D0 + day * DAY_S + 3600.0
        det.handle(Login(event_id=f"l{day}", user_id="u", ts=ts, success=True), ("logins", 0, day))
    out = det.out.drain()
    assert out.held["roi_source"] == 9  # every login after the first day: value is behind
    assert not [s for s in out.scores if s["trigger"] == "daily"]  # rows wait for value
    assert out.held["daily_source"] >= 1
    det.watermark.mark_idle(("value", 0))  # the caller's limit: value is idle
    det.sweep()
    assert len([s for s in det.out.drain().scores if s["trigger"] == "daily"]) == 9


def _model(version: int, until: float) -> SegmentModel:
    m = SegmentModel("course", base_rate=0.1, feature_names=FEATURE_NAMES)
    m.version, m.labels_until = version, until
    return m


def test_the_model_as_of_a_boundary_is_the_newest_whose_labels_fell_due_before_it() -> None:
    scorer = Scorer(ModelConfig(), FEATURE_NAMES)
    for version, day in ((1, 1), (2, 3), (3, 5)):
        scorer.install(_model(version, D0 + day * DAY_S))
    assert scorer.covers({"course": D0 + 5 * DAY_S})
    assert not scorer.covers({"course": D0 + 6 * DAY_S, "saas": D0})
    assert scorer.as_of("course", D0 + 4 * DAY_S).version == 2  # type: ignore[union-attr]
    assert scorer.as_of("course", D0 + 6 * DAY_S).version == 3  # type: ignore[union-attr]
    assert scorer.models["course"].version == 3  # event scores: the newest


def test_a_snapshot_keeps_its_labels_until() -> None:
    m = _model(4, D0)
    assert SegmentModel.from_snapshot(m.snapshot()).labels_until == D0
