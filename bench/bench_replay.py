"""Throughput of the offline replay path (`model.replay.Replay`) on a fixed simulated history.

Plain script: `.venv/bin/python bench/bench_replay.py [--users 300] [--days 60] [--seed 1]
[--repeat 1] [--profile]`. The history is generated in memory (seeded, so every run replays
the same records), converted to replay records once, then replayed: parse, features, scoring,
labels, learning and alerts, as `churnstream replay` does minus reading the file. Prints
events/s by wall clock and by process CPU time (the latter is steadier on a shared machine)
and a digest of the report, so two versions of the code can be checked for identical results.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import pstats
import time

import orjson

from churnstream.agents import configure
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.devtools.simulator import SimConfig, generate
from churnstream.stream.devtools.simulator.jsonl import replay_records
from churnstream.stream.settings import Settings


def history(users: int, days: int, seed: int) -> list[ReplayRecord]:
    """The simulated history as the records `model.replay_input.read_records` would yield."""
    return list(replay_records(generate(SimConfig(users=users, days=days, seed=seed))))


def replay_once(records: list[ReplayRecord], settings: Settings) -> tuple[float, float, str]:
    """(wall s, CPU s, report digest) of one replay from empty state."""
    # wall_clock feeds scored_at only: a fixed one keeps the run deterministic.
    replay = configure.replay(settings, wall_clock=lambda: 0.0)
    wall, cpu = time.perf_counter(), time.process_time()
    report = replay.run(records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    digest = hashlib.sha256(orjson.dumps(report, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return wall, cpu, digest[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="replays; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile rows")
    args = parser.parse_args()

    records = history(args.users, args.days, args.seed)
    settings = Settings.from_env({})
    print(
        f"history: {args.users} users x {args.days} days, seed {args.seed}: "
        f"{len(records):,} records"
    )
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(replay_once, records, settings)
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return
    runs = [replay_once(records, settings) for _ in range(args.repeat)]
    wall = min(r[0] for r in runs)
    cpu = min(r[1] for r in runs)
    digests = {r[2] for r in runs}
    print(
        f"replay: {len(records) / wall:,.0f} events/s wall ({wall:.2f} s), "
        f"{len(records) / cpu:,.0f} events/s CPU ({cpu:.2f} s)"
    )
    print(f"report digest: {' '.join(sorted(digests))}")


if __name__ == "__main__":
    main()
