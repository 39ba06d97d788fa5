"""Extreme numbers never break a user: the detector marks an offset only for an applied event,
and `replay` of a history holding them goes on (validation dead-letters them)."""

from __future__ import annotations

import math
from pathlib import Path

import orjson
import pytest

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.replay import MemoryRepository, Replay
from churnstream.model.replay_input import read_records
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import ValueEvent
from churnstream.stream.settings import Settings

T0 = 1_772_366_400.0  # 2026-03-01T12:00:00Z
SOURCE = ("business.value", 0, 7)


def test_an_event_that_raises_leaves_its_offset_unmarked() -> None:
    settings = Settings.from_env({})
    config = engine_config(settings)
    repo = MemoryRepository()
    detector = Detector(config, Scorer(config.model, FEATURE_NAMES), alert_policy(settings), repo)
    ok = ValueEvent(event_id="a", user_id="u", ts=T0, value=1.0)
    detector.handle(ok, ("business.value", 0, 6))
    # Not a value validation lets through (bounded); it stands for any fold that raises.
    bad = ValueEvent(event_id="b", user_id="u", ts=T0 + 1, value=1e307)
    with pytest.raises(OverflowError):
        detector.handle(bad, SOURCE)
    rec = repo.get("u")
    assert rec is not None
    assert not rec.state.seen_offset(*SOURCE)
    assert (
        detector.handle(ValueEvent(event_id="c", user_id="u", ts=T0 + 2, value=2.0), SOURCE) == "ok"
    )
    assert rec.state.seen_offset(*SOURCE)


def _line(topic: str, **value: object) -> bytes:
    return orjson.dumps({"topic": topic, "value": value}) + b"\n"


def test_replay_of_a_history_with_extreme_numbers_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "extreme.jsonl"
    base = {"user_id": "x", "segment": "course"}
    lines = [_line("lifecycle.subscriptions", event_id="s", ts=T0, event="signup", **base)]
    extremes = [
        ("business.value", {"value": 1e307}),
        ("business.value", {"value": 1.5e306}),
        ("business.value", {"value": 1.5e306}),
        ("behaviour.video-views", {"video_id": "v", "watched_s": 1.7e307, "duration_s": 60}),
        ("behaviour.document-jobs", {"job_id": "j", "status": "ok", "processing_ms": 1e308}),
        ("behaviour.integration-syncs", {"integration": "i", "status": "ok", "latency_ms": 1e300}),
        ("lifecycle.subscriptions", {"event": "renewal", "plan_price": 1e307}),
    ]
    for i, (topic, fields) in enumerate(extremes):
        lines.append(_line(topic, event_id=f"x{i}", ts=T0 + 60 * (i + 1), **base, **fields))
    # The same user's later days, all fine: they must be applied and scored.
    for d in range(1, 4):
        lines.append(_line("behaviour.logins", event_id=f"l{d}", ts=T0 + d * 86_400, **base))
    path.write_bytes(b"".join(lines))
    settings = Settings.from_env({})
    replay = Replay(engine_config(settings), alert_policy(settings))
    report = replay.run(read_records(path))
    assert replay.invalid == {"out_of_range": len(extremes)}
    assert replay.results["ok"] == 4
    rec = replay.repo.get("x")
    assert rec is not None
    assert all(math.isfinite(v) for v in rec.state.vector())
    assert report["events"] == len(lines)
