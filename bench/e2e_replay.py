"""Replay throughput: `churnstream replay`'s code path (model.replay) over a simulated file.

Five runs of the same file, one after the other: without a scores file
(`churnstream replay FILE`), then writing every score record with `--jobs 1` and `--jobs 2`
(issue 17: N - 1 processes work out the event scores, model/score_pool.py), then both with
`--jobs 2 --by-user` (the users partitioned over 2 processes, model/partitioned.py). Each
gives wall seconds, CPU seconds of this process and of its workers, and a digest of the
outputs, so the settings can be seen to write the same bytes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
from e2e_data import Sizes

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.partitioned import PartitionedReplay
from churnstream.model.replay import replay_file
from churnstream.model.replay_input import read_records
from churnstream.stream.devtools.simulator import generate, write_jsonl
from churnstream.stream.settings import Settings


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One replay of the file (read, parse, features, labels, learning, scores, alerts)."""

    what: str
    jobs: int
    events: int
    users: int
    seconds: float  # wall
    cpu_s: float  # this process
    workers_cpu_s: float  # the score pool's processes, or the partitioned replay's
    digest: str  # report, alerts and scores (when written)
    by_user: bool = False

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ReplayResult:
    runs: tuple[ReplayRun, ...]
    load: tuple[tuple[float, float, float], tuple[float, float, float]]  # at start, at end

    @property
    def per_second(self) -> float:
        """`churnstream replay FILE` (no scores file, one job): the issue's target."""
        return self.runs[0].per_second

    def run(self, what: str, jobs: int, by_user: bool = False) -> ReplayRun | None:
        return next(
            (r for r in self.runs if (r.what, r.jobs, r.by_user) == (what, jobs, by_user)), None
        )


def replay_once(
    path: Path, settings: Settings, *, scores: bool, jobs: int, by_user: bool = False
) -> ReplayRun:
    with tempfile.TemporaryFile() as scores_out, tempfile.TemporaryFile() as alerts_out:
        began, cpu = time.perf_counter(), time.process_time()
        kw = {
            "max_bytes": settings.max_record_bytes,
            "snapshot_every": settings.snapshot_every,
            "scores_out": scores_out if scores else None,
            "alerts_out": alerts_out,
            "wall_clock": lambda: 0.0,  # scored_at only: fixed, so the digests compare
            "jobs": jobs,
        }
        config, alerts = engine_config(settings), alert_policy(settings)
        if by_user:
            replay = PartitionedReplay(config, alerts, **kw)  # type: ignore[arg-type]
            report = replay.run(read_records(path))
        else:
            replay, report = replay_file(path, config, alerts, **kw)
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
        digest = hashlib.sha256(orjson.dumps(report, option=orjson.OPT_SORT_KEYS))
        for out in (alerts_out, scores_out):
            out.seek(0)
            digest.update(out.read())
    return ReplayRun(
        "scores file" if scores else "no scores file",
        jobs,
        int(report["events"]),
        int(report["users"]),
        seconds,
        cpu,
        replay.workers_cpu_s,
        digest.hexdigest()[:16],
        by_user,
    )


def replay_throughput(sizes: Sizes, workdir: Path) -> ReplayResult:
    """Write the simulated history to JSONL, then time the three replays of it."""
    path = workdir / "replay.jsonl"
    write_jsonl(generate(sizes.replay_config()), path)
    settings = Settings()
    start = os.getloadavg()
    runs = (
        replay_once(path, settings, scores=False, jobs=1),
        replay_once(path, settings, scores=True, jobs=1),
        replay_once(path, settings, scores=True, jobs=2),
        replay_once(path, settings, scores=False, jobs=2, by_user=True),
        replay_once(path, settings, scores=True, jobs=2, by_user=True),
    )
    return ReplayResult(runs, (start, os.getloadavg()))


def render(replay: ReplayResult, sizes: Sizes) -> list[str]:
    """The BENCHMARKS.md section."""
    first = replay.runs[0]
    (a1, a5, a15), (b1, b5, b15) = replay.load
    lines = [
        "## Replay (offline, no Kafka)",
        "",
        f"`model.replay.replay_file` (what `churnstream replay` runs, file read and parse "
        f"included) over a simulated history of {sizes.replay_users:,} users x "
        f"{sizes.replay_days} days written to JSONL: {first.events:,} events, "
        f"{first.users:,} users. Load average (1, 5, 15 min) {a1:.2f}, {a5:.2f}, {a15:.2f} at "
        f"the start, {b1:.2f}, {b5:.2f}, {b15:.2f} at the end, on {os.cpu_count()} CPUs.",
        "",
        "| run | events/s (wall) | wall s | CPU s this process | CPU s workers | output digest |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in replay.runs:
        lines.append(
            f"| {r.what}, --jobs {r.jobs}{' --by-user' if r.by_user else ''} | "
            f"{r.per_second:,.0f} | {r.seconds:.1f} | "
            f"{r.cpu_s:.1f} | {r.workers_cpu_s:.1f} | `{r.digest}` |"
        )
    one, two = replay.run("scores file", 1), replay.run("scores file", 2)
    if one is not None and two is not None:
        same = "the same output" if one.digest == two.digest else "**different output**"
        lines += [
            "",
            f"`--jobs 2` against `--jobs 1` of the same run, writing scores: "
            f"{one.seconds / two.seconds:.2f}x by wall time ({same}).",
        ]
    for what in ("no scores file", "scores file"):
        one, users = replay.run(what, 1), replay.run(what, 2, by_user=True)
        if one is None or users is None:
            continue
        same = "the same output" if one.digest == users.digest else "**different output**"
        lines += [
            "",
            f"`--jobs 2 --by-user` against `--jobs 1`, {what}: {one.seconds / users.seconds:.2f}x "
            f"by wall time ({same}; CPU s of its 2 processes together in the workers column, "
            f"the coordinator's in this process's).",
        ]
    return lines


def main() -> None:
    """Only this part of `make bench`: its section of BENCHMARKS.md is replaced in place."""
    import argparse
    import shutil

    from e2e_data import FULL, QUICK
    from e2e_report import REPO

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, print only")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    workdir = Path(tempfile.mkdtemp(prefix="churnstream-replay-bench-"))
    try:
        text = "\n".join(render(replay_throughput(sizes, workdir), sizes))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(text)
    if args.quick:
        return
    path = REPO / "BENCHMARKS.md"
    old = path.read_text(encoding="utf-8")
    start = old.index("## Replay (offline, no Kafka)")
    end = old.find("\n## ", start + 1)
    path.write_text(old[:start] + text + "\n" + (old[end:] if end >= 0 else ""), "utf-8")


if __name__ == "__main__":
    main()
