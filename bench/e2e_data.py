"""Inputs of the end-to-end benchmark: simulator histories and a many-users generator."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.devtools.simulator import SimConfig, SimRecord, generate
from churnstream.stream.devtools.simulator.config import (
    DEFAULT_START,
    DOC_JOBS,
    LIFECYCLE,
    SYNCS,
    VIDEO_VIEWS,
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much each phase processes; FULL keeps `make bench` near 10 minutes on 2 cores."""

    throughput_users: int
    throughput_days: int
    latency_seconds: float
    scale_users: int
    restart_users: int
    replay_users: int
    replay_days: int

    def throughput_config(self) -> SimConfig:
        return SimConfig(users=self.throughput_users, days=self.throughput_days, seed=11)

    def replay_config(self) -> SimConfig:
        return SimConfig(users=self.replay_users, days=self.replay_days, seed=13)


FULL = Sizes(
    throughput_users=600,
    throughput_days=30,
    latency_seconds=30.0,
    scale_users=100_000,
    restart_users=30_000,
    replay_users=600,
    replay_days=30,
)
QUICK = Sizes(
    throughput_users=150,
    throughput_days=20,
    latency_seconds=8.0,
    scale_users=3000,
    restart_users=500,
    replay_users=150,
    replay_days=20,
)


def throughput_records(sizes: Sizes) -> list[SimRecord]:
    """The simulated history that baselines and worker all consume (kept in memory: reused)."""
    return list(generate(sizes.throughput_config()))


def latency_records(count: int, seed: int = 17) -> list[SimRecord]:
    """The first `count` records of a simulated history sized to hold at least that many."""
    users = max(100, count // 150)  # ~165 records per simulated user over 30 days
    return list(itertools.islice(generate(SimConfig(users=users, days=30, seed=seed)), count))


_ACTIVITY = {
    "course": (VIDEO_VIEWS, {"video_id": "v1", "watched_s": 300.0, "duration_s": 600.0}),
    "saas": (SYNCS, {"integration": "crm", "status": "ok", "records": 10, "latency_ms": 120.0}),
    "docs": (DOC_JOBS, {"job_id": "j1", "status": "ok", "documents": 3, "processing_ms": 900.0}),
}


def many_users(
    users: int, start: float = DEFAULT_START, span_s: float = 86_400.0
) -> Iterator[SimRecord]:
    """Two valid records per user (a signup and one activity of its segment) over `span_s`
    seconds of event time from `start` (activities end 60 s after the span).

    The simulator makes ~4 records per user-day; this keeps a 100k-user run short while every
    user still gets a state with a plan, a segment and one activity bucket.
    """
    step = span_s / users
    for i in range(users):
        segment = SEGMENTS[i % len(SEGMENTS)]
        uid = f"scale-{i:06d}"
        ts = start + i * step
        yield SimRecord(
            LIFECYCLE,
            uid,
            {
                "event_id": f"{uid}-s",
                "user_id": uid,
                "ts": ts,
                "event": "signup",
                "segment": segment,
                "plan_price": 49.0,
            },
            None,
            ts,
        )
        topic, body = _ACTIVITY[segment]
        yield SimRecord(
            topic,
            uid,
            {"event_id": f"{uid}-a", "user_id": uid, "ts": ts + 60.0, **body},
            None,
            ts + 60.0,
        )
