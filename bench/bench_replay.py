"""Throughput of the offline replay path (`model.replay.Replay`) on a fixed simulated history.

Plain script: `.venv/bin/python bench/bench_replay.py [--users 300] [--days 60] [--seed 1]
[--repeat 1] [--profile] [--by-user 1,2]`. The history is generated in memory (seeded, so
every run replays the same records), converted to replay records once, then replayed: parse,
features, scoring, labels, learning and alerts, as `churnstream replay` does minus reading the
file. Prints
events/s by wall clock and by process CPU time (the latter is steadier on a shared machine)
and a digest of the report, so two versions of the code can be checked for identical results.

`--by-user 1,2` also replays with the users partitioned over 1 and 2 processes
(model/partitioned.py), alternating with the one-process replay in the same run, and prints
for each the wall time, the CPU seconds of every process (the busiest one bounds the speed-up),
the load average before and after, and the digests of the report and the alerts.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import pstats
import time
from typing import Any

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


def _digest(data: Any) -> str:
    raw = data if isinstance(data, bytes) else orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest()[:16]


def replay_jobs(records: list[ReplayRecord], settings: Settings, jobs: int | None) -> dict:
    """One replay with an alerts file: `Replay` (jobs None) or users over `jobs` processes."""
    alerts = io.BytesIO()
    kw: dict[str, Any] = {"wall_clock": lambda: 0.0, "alerts_out": alerts}
    if jobs is None:
        replay = configure.replay(settings, **kw)
    else:
        replay = configure.replay(settings, by_user=True, jobs=jobs, **kw)
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    report = replay.run(records)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    workers = getattr(replay, "workers_cpu_s", 0.0)
    busiest = max(cpu, getattr(replay, "busiest_cpu_s", 0.0))
    return {
        "wall": wall,
        "here": cpu,  # this process: the replay, or the coordinator (reader and learner)
        "cpu": cpu + workers,  # every process's
        "busiest": busiest,
        "load": (load, os.getloadavg()[0]),
        "digest": (_digest(report), _digest(alerts.getvalue())),
    }


def compare_jobs(
    records: list[ReplayRecord], settings: Settings, jobs: list[int], repeat: int
) -> None:
    runs: dict[str, list[dict]] = {}
    for _ in range(repeat):
        for n in [None, *jobs]:
            name = "Replay" if n is None else f"by user, {n} job{'s' if n > 1 else ''}"
            runs.setdefault(name, []).append(replay_jobs(records, settings, n))
    base = min(r["wall"] for r in runs["Replay"])
    for name, rs in runs.items():
        best = min(rs, key=lambda r: r["wall"])
        loads = " ".join(f"{a:.1f}->{b:.1f}" for a, b in (r["load"] for r in rs))
        print(
            f"{name:18} wall {best['wall']:6.2f} s ({len(records) / best['wall']:7,.0f} events/s, "
            f"{base / best['wall']:.2f}x), CPU all {best['cpu']:6.2f} s, this process "
            f"{best['here']:5.2f} s, busiest {best['busiest']:6.2f} s "
            f"({len(records) / best['busiest']:7,.0f} events per CPU s); "
            f"load {loads}; digests {sorted({r['digest'] for r in rs})}"
        )


def _own_sessions() -> None:
    from churnstream.model import partitioned

    start = partitioned._part_main

    def in_own_session(*args: Any) -> None:
        os.setsid()
        start(*args)

    partitioned._part_main = in_own_session  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1, help="replays; the best is reported")
    parser.add_argument("--profile", action="store_true", help="print the top cProfile rows")
    parser.add_argument(
        "--by-user",
        default="",
        metavar="N,...",
        help="also replay with the users over N processes, alternating with one (see above)",
    )
    parser.add_argument(
        "--own-sessions",
        action="store_true",
        help="start each replay process in a session of its own: with Linux's autogroup "
        "scheduling (/proc/sys/kernel/sched_autogroup_enabled) the CPU is shared between "
        "sessions, so on a busy machine N processes of one session get one session's share",
    )
    args = parser.parse_args()

    records = history(args.users, args.days, args.seed)
    settings = Settings.from_env({})
    print(
        f"history: {args.users} users x {args.days} days, seed {args.seed}: "
        f"{len(records):,} records"
    )
    if args.own_sessions:
        _own_sessions()
    if args.by_user:
        jobs = [int(n) for n in args.by_user.split(",")]
        compare_jobs(records, settings, jobs, args.repeat)
        return
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
