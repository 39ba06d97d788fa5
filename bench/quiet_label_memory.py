"""Per-user record size with the course label `either` vs `quiet` on a simulated history.

Run: .venv/bin/python bench/quiet_label_memory.py [--users 500] [--days 90] [--seed 7]

The history is replayed in memory once per mode (CHURNSTREAM_SCORE_EVENTS=false, as the label
measurements); at a few event-time days each course user's stored record (`UserRecord.to_bytes`,
what the worker's table holds) and its pending labels are measured: mean and max bytes, and
pending snapshots per user. A `quiet` label waits horizon + Q days, so its users hold more.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Iterator

from churnstream.agents import configure
from churnstream.model.replay import Replay
from churnstream.model.replay_input import ReplayRecord
from churnstream.stream.devtools.simulator import SimConfig, generate
from churnstream.stream.devtools.simulator.jsonl import replay_records
from churnstream.stream.settings import Settings


def measure(replay: Replay, day: int) -> str:
    recs = [r for r in replay.repo.records.values() if r.state.segment == "course"]
    size = [len(r.to_bytes()) for r in recs]
    pending = [len(r.pending.to_bytes()) if r.pending else 0 for r in recs]
    snaps = [len(r.pending) if r.pending else 0 for r in recs]
    return (
        f"day {day:3}: {len(recs)} course users, record mean {statistics.mean(size):,.0f} B "
        f"max {max(size):,} B; pending labels mean {statistics.mean(pending):,.0f} B "
        f"max {max(pending):,} B; snapshots mean {statistics.mean(snaps):.1f} max {max(snaps)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--at", default="30,60,89", help="event-time days to measure at")
    args = parser.parse_args()
    history = generate(SimConfig(users=args.users, days=args.days, seed=args.seed))
    records = list(replay_records(history))
    at = sorted(int(d) for d in args.at.split(","))
    for mode in ("either", "quiet"):
        env = {"CHURNSTREAM_LABEL_COURSE": mode, "CHURNSTREAM_SCORE_EVENTS": "false"}
        replay = configure.replay(Settings.from_env(env), wall_clock=lambda: 0.0)
        lines: list[str] = []

        def fed(replay: Replay = replay, lines: list[str] = lines) -> Iterator[ReplayRecord]:
            # The n-th day is measured once the replay reads a record of day n.
            todo = list(at)
            start = None
            for rec in records:
                ts = replay.detector.watermark.value
                if start is None and ts > 0:
                    start = ts
                if todo and start is not None and ts >= start + todo[0] * 86400:
                    lines.append(measure(replay, todo.pop(0)))
                yield rec

        replay.run(fed())
        print(f"{mode}:")
        for line in lines:
            print(f"  {line}")


if __name__ == "__main__":
    main()
