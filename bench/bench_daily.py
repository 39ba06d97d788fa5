"""Cost of a day boundary: every at-risk user's daily row, at once and spread over batches.

Plain script: `.venv/bin/python bench/bench_daily.py [--users 100000]`. Builds a detector as the
worker does (default settings, rules score: the cold start), gives each user a signup and a login
on day 0, then applies the events that move the watermark past the next midnight, twice:

- at once (`daily_rows_per_sweep=None`, `replay`): one handle() call makes every user's row
  (features as of the boundary, score, pending label, alert decision); rows/s and that call's
  time, which is how long intake waits;
- spread (the live worker's `DAILY_ROWS_PER_SWEEP`): batches of `--batch` events of users
  whose rows are due keep arriving, each followed by a sweep(); the longest handle() call, the
  longest sweep(), the longest batch (its events and its sweep: what an event waits for at
  most because of the boundary) and the batches until every row is made. Full (generation 2)
  garbage collections are timed apart: with 100k users' records in memory one takes ~0.5-1 s,
  whichever batch happens to trigger it, boundary or not.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import time

from churnstream.agents.configure import DAILY_ROWS_PER_SWEEP, alert_policy, engine_config
from churnstream.features import FEATURE_NAMES
from churnstream.model.engine import Detector
from churnstream.model.replay import MemoryRepository
from churnstream.model.scoring import Scorer
from churnstream.model.watermark import CONFIRM_EVENTS
from churnstream.stream.contract.events import DAY_S, Lifecycle, Login
from churnstream.stream.settings import Settings

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def build(users: int, per_sweep: int | None) -> tuple[Detector, float]:
    """A detector holding `users` users with activity on day 0; returns it and the seconds
    the per-event path took for the day-0 events."""
    settings = Settings.from_env({})
    config = dataclasses.replace(engine_config(settings), daily_rows_per_sweep=per_sweep)
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
    detector.out.drain()
    return detector, time.perf_counter() - began


def movers(detector: Detector) -> list[Login]:
    """Events whose time, less the allowed lateness, passes the next midnight: CONFIRM_EVENTS
    of them, because the watermark does not move on a few events far ahead of the rest (an
    outlier guard); the last one moves it."""
    ts = START + DAY_S + detector.config.features.lateness_s
    return [
        Login(event_id=f"mover{i}", user_id="mover", ts=ts + 1.0 + i, success=True)
        for i in range(CONFIRM_EVENTS)
    ]


def daily_rows(detector: Detector) -> int:
    return sum(1 for s in detector.out.drain().scores if s["trigger"] == "daily")


def at_once(users: int) -> tuple[int, float, float]:
    """Rows, the one handle() call's seconds, and the per-event path's us/event."""
    detector, setup_s = build(users, None)
    *lead, last = movers(detector)
    for event in lead:
        detector.handle(event)
    began = time.perf_counter()
    detector.handle(last)
    took = time.perf_counter() - began
    return daily_rows(detector), took, setup_s / (2 * users) * 1e6


class FullCollections:
    """Times the interpreter's full garbage collections (generation 2) while installed."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 2:
            if phase == "start":
                self._began = time.perf_counter()
            else:
                self.pauses.append(time.perf_counter() - self._began)


def spread(users: int, batch: int) -> dict[str, float]:
    """The boundary spread over batches of `batch` events of users whose rows are due."""
    detector, _ = build(users, DAILY_ROWS_PER_SWEEP)
    full = FullCollections()
    gc.callbacks.append(full)
    *lead, last = movers(detector)
    for event in (*lead, last):
        detector.handle(event)
    ts = last.ts
    longest = {"handle": 0.0, "sweep": 0.0, "sweep_no_gc": 0.0, "batch": 0.0}
    rows = batches = 0
    busy = 0.0
    n = 0
    while detector.rows_due:
        began = time.perf_counter()
        for _ in range(batch):  # logins of users spread over the population, rows due or not
            uid = f"u{(n * 7919) % users:06d}"
            t0 = time.perf_counter()
            detector.handle(Login(event_id=f"b{n}", user_id=uid, ts=ts, success=True))
            longest["handle"] = max(longest["handle"], time.perf_counter() - t0)
            n += 1
        t0, collected = time.perf_counter(), sum(full.pauses)
        detector.sweep()
        gc_s = sum(full.pauses) - collected
        longest["sweep"] = max(longest["sweep"], time.perf_counter() - t0)
        longest["sweep_no_gc"] = max(longest["sweep_no_gc"], time.perf_counter() - t0 - gc_s)
        took = time.perf_counter() - began
        longest["batch"] = max(longest["batch"], took)
        busy += took
        batches += 1
        rows += daily_rows(detector)
    gc.callbacks.remove(full)
    return {
        **longest,
        "rows": rows,
        "batches": batches,
        "busy": busy,
        "events": n,
        "full_gcs": len(full.pauses),
        "gc_max": max(full.pauses, default=0.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="events per batch (spread)")
    args = parser.parse_args()
    rows, took, per_event_us = at_once(args.users)
    print(f"users: {args.users:,}; per-event path: {per_event_us:.1f} us/event")
    print(
        f"at once: {rows:,} daily rows in one handle() call of {took:.2f} s "
        f"({rows / took:,.0f} rows/s, {took / max(rows, 1) * 1e6:.1f} us/row)"
    )
    s = spread(args.users, args.batch)
    print(
        f"spread ({DAILY_ROWS_PER_SWEEP} rows/sweep, batches of {args.batch} events): "
        f"{s['rows']:,.0f} rows over {s['batches']:.0f} batches ({s['events']:,.0f} events), "
        f"{s['busy']:.2f} s of batches in all; longest handle() {s['handle'] * 1e3:.1f} ms, "
        f"longest sweep() {s['sweep'] * 1e3:.0f} ms ({s['sweep_no_gc'] * 1e3:.0f} ms without "
        f"full GC), longest batch {s['batch'] * 1e3:.0f} ms; {s['full_gcs']:.0f} full GCs, "
        f"longest {s['gc_max'] * 1e3:.0f} ms"
    )


if __name__ == "__main__":
    main()
