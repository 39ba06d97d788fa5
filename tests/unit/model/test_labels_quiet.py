"""The `quiet` label mode: a cancel or the start of a quiet spell of >= Q days in the horizon.

Days are whole UTC days counted from the row's day (day 0 = the boundary's day); the row reads
the days before it, so `gap` g means the last activity before the row was on day -1 - g.
"""

from __future__ import annotations

import itertools

import pytest

from churnstream.features import FEATURE_NAMES, FeatureConfig, UserState
from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.engine import Detector, EngineConfig
from churnstream.model.labels import Example, PendingLabels, quiet_start
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import DAY_S, Lifecycle, Login, VideoView
from churnstream.stream.settings import Settings, SettingsError

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z, a UTC day boundary
H = 7 * DAY_S
Q = 14
_ids = itertools.count()


def day(d: float, hour: float = 12.0) -> float:
    return T0 + d * DAY_S + hour * 3600.0


def quiet_row(gap: int = 0, mask: int = 0, made_at: float = T0) -> PendingLabels:
    p = PendingLabels("u", "course")
    p.add(made_at, [1.0, 2.0], 0.3, 5, H, quiet=(Q, gap, mask))
    return p


def released(p: PendingLabels) -> list[bool]:
    return [e.label for e in p.due(float("inf"), "quiet")]


def active_on(p: PendingLabels, *days: float) -> PendingLabels:
    for d in days:
        p.on_activity(day(d))
    return p


def test_release_waits_for_horizon_plus_quiet_days() -> None:
    p = active_on(quiet_row(), 2)
    due = T0 + H + Q * DAY_S
    assert p.next_due() == due
    assert p.due(T0 + H + 1, "quiet") == []  # the horizon passed, the spell is not known yet
    assert p.due(due, "quiet") == []  # strict, as every label
    assert [e.label for e in p.due(due + 1, "quiet")] == [True]
    assert len(p) == 0


def test_last_activity_in_the_horizon_then_quiet_is_positive() -> None:
    assert released(active_on(quiet_row(), 0, 1, 2)) == [True]
    assert released(active_on(quiet_row(), 6)) == [True]  # the horizon's last day


def test_a_spell_starting_after_the_horizon_is_negative() -> None:
    assert released(active_on(quiet_row(), *range(8))) == [False]  # active on day 7, then quiet
    assert released(active_on(quiet_row(), *range(21))) == [False]  # never quiet


def test_a_user_who_returns_after_a_short_gap_is_negative() -> None:
    # Last activity on day 2, back on day 15: 12 quiet days, < 14.
    assert released(active_on(quiet_row(), 2, 15)) == [False]
    # Back on day 17: 14 quiet days (3 .. 16) is a spell, so day 2 started one.
    assert released(active_on(quiet_row(), 2, 17)) == [True]


def test_a_row_inside_a_spell_begun_before_it_is_dropped() -> None:
    # Last activity 4 days before the row (gap 3), next on day 12: days -3 .. 11 quiet.
    assert released(active_on(quiet_row(gap=3), 12)) == []
    assert released(quiet_row(gap=Q)) == []  # already Q quiet days before the row
    # Back within Q days of the last activity: not in a spell, and day 5 starts one.
    assert released(active_on(quiet_row(gap=3), 5)) == [True]


def test_a_cancel_inside_the_horizon_is_positive_one_after_it_is_not() -> None:
    p = active_on(quiet_row(), *range(21))
    p.on_cancel(day(3))
    assert released(p) == [True]
    p = active_on(quiet_row(), *range(21))
    p.on_cancel(T0 + H + 3600)  # after the horizon, before the release: not this row's churn
    assert released(p) == [False]


def test_a_late_activity_before_the_row_closes_the_gap() -> None:
    p = quiet_row(gap=20)  # would be dropped
    active_on(p, -1, 1)
    assert released(p) == [True]  # last activity day -1, then day 1, then quiet


def test_arrival_order_does_not_change_the_label() -> None:
    days = [-2, 1, 4, 13, 19]
    labels = set()
    for order in itertools.permutations(days):
        labels.add(tuple(released(active_on(quiet_row(gap=5), *order))))
    assert labels == {(False,)}  # day 4 -> 13 and 13 -> 19 are shorter than 14 days
    labels = {
        tuple(released(active_on(quiet_row(gap=5), *o))) for o in itertools.permutations([3, -1, 1])
    }
    assert labels == {(True,)}


def test_activity_far_after_the_window_is_ignored() -> None:
    assert released(active_on(quiet_row(), 1, 40)) == [True]


def test_codec_round_trip_and_backward_compatible_format() -> None:
    p = active_on(quiet_row(gap=2), 1, 3)
    p.add(T0 + DAY_S, [3.0], 0.5, 6, H, cancelled=True)  # a snapshot of another mode
    data = p.to_bytes()
    assert data[0] == 4
    back = PendingLabels.from_bytes(data)
    assert back.to_bytes() == data
    assert back.next_due() == p.next_due() == T0 + DAY_S + H
    assert [(e.made_at, e.label) for e in back.due(float("inf"), "quiet")] == [
        (T0, True),
        (T0 + DAY_S, True),
    ]
    plain = PendingLabels("u", "course")
    plain.add(T0, [1.0], 0.1, 1, H)
    assert plain.to_bytes()[0] == 3  # other modes keep the format older workers read
    # A format-3 state (written before the quiet mode) still loads, and labels as before.
    old = PendingLabels.from_bytes(plain.to_bytes())
    assert [e.label for e in old.due(float("inf"), "quiet")] == [True]  # "either": no activity


def _login(user: str, ts: float) -> Login:
    return Login(event_id=f"e{next(_ids)}", user_id=user, ts=ts, success=True)


def _view(user: str, ts: float) -> VideoView:
    return VideoView(
        event_id=f"e{next(_ids)}", user_id=user, ts=ts, video_id="v", watched_s=60, duration_s=60
    )


def test_quiet_start_reads_the_row_and_the_days_the_state_ran_ahead() -> None:
    state = UserState.new("u", FeatureConfig())
    for ev in (_login("u", day(-4)), _view("u", day(-3)), _login("u", day(0)), _view("u", day(2))):
        state.apply(ev)
    vector = state.vector_at(T0)
    gap, mask = quiet_start(state, "course", T0, H, Q, vector)
    assert gap == 2  # the last activity on day -3
    assert mask == 0b101  # days 0 and 2, already in the state
    # A failed login is no activity; a saas user's video is not its kind.
    state = UserState.new("v", FeatureConfig())
    state.apply(_view("v", day(-2)))
    state.apply(Login(event_id="f", user_id="v", ts=day(1), success=False))
    assert quiet_start(state, "course", T0, H, Q, state.vector_at(T0)) == (1, 0)


def test_config_parsing_and_validation() -> None:
    config = ModelConfig.from_dict({"label_modes": {"course": "quiet"}, "quiet_days": 10})
    assert config.label_mode("course") == "quiet" and config.label_mode("saas") == "cancel"
    assert config.quiet_days_of("course") == 10 and config.quiet_days_of("saas") == 0
    assert config.label_delay_s("course") == 17 * DAY_S
    assert config.label_delay_s("saas") == 14 * DAY_S
    assert ModelConfig().quiet_days == Q
    for bad in (0, 53, 2.5):
        with pytest.raises(ValueError, match="quiet_days"):
            ModelConfig.from_dict({"label_modes": {"course": "quiet"}, "quiet_days": bad})
    ModelConfig(quiet_days=0)  # unused: no segment has a quiet label
    with pytest.raises(ValueError, match="label mode"):
        ModelConfig.from_dict({"label_modes": {"course": "silent"}})
    settings = Settings.from_env(
        {"CHURNSTREAM_LABEL_COURSE": "quiet", "CHURNSTREAM_LABEL_QUIET_DAYS": "10"}
    )
    assert (settings.label_course, settings.label_quiet_days) == ("quiet", 10)
    for env in (
        {"CHURNSTREAM_LABEL_COURSE": "silent"},
        {"CHURNSTREAM_LABEL_QUIET_DAYS": "0"},
        {"CHURNSTREAM_LABEL_SAAS": "quiet", "CHURNSTREAM_LABEL_QUIET_DAYS": "50"},
        {"CHURNSTREAM_LABEL_COURSE": "quiet", "CHURNSTREAM_USER_RETENTION_DAYS": "50"},
        {"CHURNSTREAM_LABEL_COURSE": "quiet", "CHURNSTREAM_DAY_OFFSET_S": "21600"},
    ):
        with pytest.raises(SettingsError):
            Settings.from_env(env)


def test_the_engine_labels_a_learner_who_goes_quiet() -> None:
    model = ModelConfig.from_dict({"label_modes": {"course": "quiet"}})
    config = EngineConfig(features=FeatureConfig(), model=model, score_events=False)
    repo = MemoryRepository()
    detector = Detector(
        config,
        Scorer(model, FEATURE_NAMES),
        AlertPolicy(AlertConfig()),
        repo,
        wall_clock=lambda: 0.0,
    )
    examples: list[Example] = []

    def pace(ts: float) -> None:
        detector.handle(_login("pacer", ts))
        detector.sweep()
        examples.extend(e for e in detector.out.drain().examples if e.user_id == "u")

    detector.handle(
        Lifecycle(event_id="s", user_id="u", ts=day(0, 1.0), event="signup", segment="course")
    )
    for d in range(10):  # active on days 0 .. 9, then quiet for good
        detector.handle(_view("u", day(d)))
        pace(day(d, 20.0))
    for d in range(10, 40):
        pace(day(d))
    # Rows as of days 1 .. 30 (gone after 30 quiet days); the watermark trails the newest
    # event by the default lateness (a day), so the labels of rows up to day 17 are out.
    # Rows 3 .. 9 hold day 9 in their horizon: positive; rows 1, 2 negative; rows 11 .. 17
    # lie inside the spell begun on day 9: dropped, and row 10 too (day 9 began it).
    got = {round((e.made_at - T0) / DAY_S): e.label for e in examples}
    assert got == {d: d >= 3 for d in range(1, 10)}
    assert all(e.made_at + H + Q * DAY_S < day(39) for e in examples)
    pending = repo.records["u"].pending
    assert pending is not None and pending.next_due() == T0 + 18 * DAY_S + H + Q * DAY_S
