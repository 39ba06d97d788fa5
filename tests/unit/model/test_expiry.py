"""Users expire: a user silent for longer than `expire_after_s` of event time is removed at
the event that moves the watermark past it (deterministic: the same events remove the same
users at the same event, live or in a replay), and a later event starts a fresh user."""

from __future__ import annotations

import itertools

from churnstream.features import FEATURE_NAMES, FeatureConfig
from churnstream.model.alerts import AlertConfig, AlertPolicy
from churnstream.model.config import ModelConfig
from churnstream.model.engine import Detector, EngineConfig
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import DAY_S, Login

D0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
_ids = itertools.count()


def login(user: str, day: float) -> Login:
    return Login(event_id=f"e{next(_ids)}", user_id=user, ts=D0 + day * DAY_S, success=True)


def detector(
    expire_days: float | None = 60.0, *, wait_for_sources: bool = False
) -> tuple[Detector, MemoryRepository]:
    model = ModelConfig.from_dict({"horizons_days": {"course": 2.0, "saas": 2.0}})
    config = EngineConfig(
        features=FeatureConfig(lateness_s=0.0),
        model=model,
        gone_after_s=10 * DAY_S,
        expire_after_s=None if expire_days is None else expire_days * DAY_S,
        wait_for_sources=wait_for_sources,
    )
    repo = MemoryRepository()
    policy = AlertPolicy(AlertConfig(cooldown_s=30 * DAY_S))
    return Detector(
        config, Scorer(model, FEATURE_NAMES), policy, repo, wall_clock=lambda: 0.0
    ), repo


def pace(d: Detector, days: range) -> None:
    for day in days:
        d.handle(login("pacer", day))
        d.sweep()


def test_a_silent_user_is_removed_once_the_watermark_passes_its_retention() -> None:
    d, repo = detector(60.0)
    d.handle(login("quiet", 0))
    pace(d, range(1, 60))
    assert repo.get("quiet") is not None  # 59 days of silence: kept
    pace(d, range(60, 62))
    assert repo.get("quiet") is None
    assert repo.get("pacer") is not None
    assert repo.expired == 1
    # Back later: a fresh user (its old logins are gone).
    d.handle(login("quiet", 70))
    rec = repo.get("quiet")
    assert rec is not None and rec.state.features()["logins_28d"] == 1.0


def test_a_user_active_again_is_kept() -> None:
    d, repo = detector(60.0)
    d.handle(login("back", 0))
    pace(d, range(1, 40))
    d.handle(login("back", 40))
    pace(d, range(41, 90))
    assert repo.get("back") is not None  # 49 days since its last event
    pace(d, range(90, 102))
    assert repo.get("back") is None and repo.expired == 1


def test_the_same_events_remove_the_same_users_at_the_same_event() -> None:
    events = [login(f"u{i}", i * 3) for i in range(20)]
    events += [login("pacer", day) for day in range(0, 150)]
    events.sort(key=lambda e: e.ts)
    removed_at: list[list[int]] = []
    for sweep_every in (1, 7):  # live sweeps per batch, a replay every N events
        d, repo = detector(60.0)
        seen: list[int] = []
        for n, ev in enumerate(events):
            before = repo.expired
            d.handle(ev)
            if n % sweep_every == 0:
                d.sweep()
            seen += [n] * (repo.expired - before)
        removed_at.append(seen)
    assert removed_at[0] == removed_at[1] and len(removed_at[0]) == 20


def test_expiry_off_keeps_users_forever() -> None:
    d, repo = detector(None)
    d.handle(login("quiet", 0))
    pace(d, range(1, 800, 10))
    assert repo.get("quiet") is not None and repo.expired == 0


def test_a_sweep_expires_when_the_watermark_moved_without_an_event() -> None:
    """Live, sources are waited for: the watermark moves when the caller gives them up, at a
    sweep, with no event to carry the expiry."""
    d, repo = detector(60.0, wait_for_sources=True)
    d.handle(login("quiet", 0))
    d.handle(login("pacer", 70))
    d.sweep()
    assert repo.get("quiet") is not None  # the other kinds have not started: no watermark
    for source in list(d.watermark.lagging()):
        d.watermark.mark_idle(source)
    d.sweep()
    assert repo.get("quiet") is None and repo.expired == 1
