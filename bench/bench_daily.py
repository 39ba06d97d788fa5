"""Cost of a day boundary: how long one worker takes to make every at-risk user's daily row.

Plain script: `.venv/bin/python bench/bench_daily.py [--users 100000]`. Builds a detector as the
worker does (default settings, rules score: the cold start), gives each user a signup and a login
on day 0, then applies the event that moves the watermark past the next midnight and times
that call: it makes every user's daily row (features as of the boundary, score, pending label,
alert decision). Also prints the cost of the per-event path for comparison, and the share of
the boundary's time a worker spends without taking input (the event loop is busy throughout).
"""

from __future__ import annotations

import argparse
import time

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.stream.contract.events import DAY_S, Lifecycle, Login
from churnstream.stream.settings import Settings

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def build(users: int) -> tuple[Detector, float]:
    """A detector holding `users` users with activity on day 0; returns it and the seconds
    the per-event path took for the day-0 events."""
    settings = Settings.from_env({})
    config = engine_config(settings)
    detector = Detector(
        config,
        Scorer(config.model, FEATURE_NAMES),
        alert_policy(settings),
        MemoryRepository(),
        wall_clock=lambda: 0.0,
    )
    began = time.perf_counter()
    for n in range(users):
        uid = f"u{n:06d}"
        ts = START + (n % 3600) * 10.0
        detector.handle(Lifecycle(event_id=f"s{n}", user_id=uid, ts=ts, segment="course",
                                  event="signup"))  # fmt: skip
        detector.handle(Login(event_id=f"l{n}", user_id=uid, ts=ts + 60.0, success=True))
    return detector, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    args = parser.parse_args()
    detector, setup_s = build(args.users)
    detector.out.drain()
    lateness = engine_config(Settings.from_env({})).features.lateness_s
    # Events whose time, less the allowed lateness, passes the next midnight: two, because
    # the watermark does not move on a lone event far ahead of the rest (an outlier guard).
    movers = [
        Login(event_id=f"mover{i}", user_id="mover", ts=START + DAY_S + lateness + i, success=True)
        for i in (1.0, 2.0)
    ]
    detector.handle(movers[0])
    began = time.perf_counter()
    detector.handle(movers[1])
    boundary_s = time.perf_counter() - began
    out = detector.out.drain()
    daily = sum(1 for s in out.scores if s.get("trigger") == "daily")
    per_event_us = setup_s / (2 * args.users) * 1e6
    print(f"users: {args.users:,}; per-event path: {per_event_us:.1f} us/event")
    print(
        f"day boundary: {daily:,} daily rows in {boundary_s:.2f} s "
        f"({boundary_s / max(daily, 1) * 1e6:.1f} us/row), "
        f"{len(out.alerts):,} alerts; input waits that long once a day"
    )


if __name__ == "__main__":
    main()
