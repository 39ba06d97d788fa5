"""Replay throughput: `churnstream replay`'s code path (model.replay) over a simulated file."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from e2e_data import Sizes

from churnstream.agents.configure import alert_policy, engine_config
from churnstream.model.replay import replay_file
from churnstream.stream.devtools.simulator import generate, write_jsonl
from churnstream.stream.settings import Settings


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """Events replayed (file read, parse, features, labels, learning, scores, alerts)."""

    events: int
    users: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def replay_throughput(sizes: Sizes, workdir: Path) -> ReplayResult:
    """Write the simulated history to JSONL, then time one `replay_file` over it."""
    path = workdir / "replay.jsonl"
    write_jsonl(generate(sizes.replay_config()), path)
    settings = Settings()
    began = time.perf_counter()
    _, report = replay_file(
        path,
        engine_config(settings),
        alert_policy(settings),
        max_bytes=settings.max_record_bytes,
        snapshot_every=settings.snapshot_every,
    )
    seconds = time.perf_counter() - began
    return ReplayResult(int(report["events"]), int(report["users"]), seconds)
