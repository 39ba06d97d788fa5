"""Child process of the soak's offline drill: `replay` over one JSONL file, state read back.

    .venv/bin/python bench/soak/replay_child.py FILE OUT.json --plausible-until TS

Runs what `churnstream replay FILE` runs (`model.replay`, default settings) in a process of its
own, so its memory is measured alone, and writes one JSON object: every user's counted events
and clock, the replay's results by outcome, the labels released early (negative examples whose
horizon ends after `TS`, the newest plausible event time, so event time cannot have passed it)
and RSS at start and end.
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


class _Counting(Replay):
    """The replay, counting negative labels released before their horizon could have ended."""

    plausible_until = float("inf")
    early = 0

    def _learn(self, example: Example, closes: bool = False) -> None:
        due = example.made_at + self.config.model.horizon_s(example.segment)
        if not example.label and due > self.plausible_until:
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
    report = replay.run(read_records(args.file))
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
