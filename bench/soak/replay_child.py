"""Child process of the soak's offline drill: `replay` over one JSONL file, state read back.

    .venv/bin/python bench/soak/replay_child.py FILE OUT.json --plausible-until TS

Runs what `churnstream replay FILE` runs (`model.replay`, default settings) in a process of its
own, so its memory is measured alone, and writes one JSON object: every user's counted events
and clock, the replay's results by outcome, the labels released early (examples whose horizon
ends after `TS`, the newest plausible event time, so event time cannot have passed it; the
drill sends no cancel, so no label is due earlier) and RSS at start and end. A progress line
(JSON) goes to stdout every 50,000 records, so a run cut short still says how far it got.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import orjson
from soak_reconcile import counted_events
from soak_workers import rss_mib

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.labels import Example
from churnstream.model.replay import Replay
from churnstream.model.replay_input import read_records
from churnstream.stream.settings import Settings

PROGRESS_EVERY = 50_000


class _Counting(Replay):
    """The replay, counting labels released before their horizon could have ended."""

    plausible_until = float("inf")
    early = 0

    def _learn(self, example: Example, closes: bool = False) -> None:
        due = example.made_at + self.config.model.label_delay_s(example.segment)
        if due > self.plausible_until:
            self.early += 1
        super()._learn(example, closes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--plausible-until", type=float, required=True)
    args = parser.parse_args()
    rss_start = rss_mib(os.getpid())
    settings = Settings.from_env({})
    began = time.monotonic()
    replay = _Counting(
        engine_config(settings),
        alert_policy(settings),
        max_bytes=settings.max_record_bytes,
        snapshot_every=settings.snapshot_every,
    )
    replay.plausible_until = args.plausible_until

    def progress(events: int) -> None:
        if events % PROGRESS_EVERY == 0:
            line = {
                "records": events,
                "seconds": round(time.monotonic() - began, 1),
                "watermark": replay.detector.watermark.value,
                "users": len(replay.repo.records),
                "early": replay.early,
                "results": dict(replay.results),
            }
            print(orjson.dumps(line).decode(), flush=True)

    report = replay.run(read_records(args.file), progress)
    records = replay.repo.records
    users = {uid: [counted_events(r.state), r.state.clock] for uid, r in records.items()}
    out = {
        "seconds": time.monotonic() - began,
        "results": report["results"],
        "invalid_by_error": report["invalid_by_error"],
        "early": replay.early,
        "users": users,
        "rss_start_mib": rss_start,
        "rss_end_mib": rss_mib(os.getpid()),
    }
    args.out.write_bytes(orjson.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
