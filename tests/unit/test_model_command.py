"""`churnstream model list` lines: data snapshots described, others refused and never run."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnstream.agents.backfill import UNTIL_HEADER
from churnstream.agents.model_feed import COVERS_HEADER, VERSION_HEADER
from churnstream.model.config import ModelConfig
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck
from churnstream.stream.cli.model_topic import describe, snapshot_of

NAMES = ("days_since_event", "noise")


@dataclass
class Record:
    value: bytes
    key: bytes = b"saas"
    offset: int = 7
    timestamp: int = 1_767_571_200_000
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_data_snapshot_is_described_on_one_line() -> None:
    m = SegmentModel("saas", base_rate=0.04, feature_names=NAMES, clip_z=3.0)
    for i in range(30):
        m.learn({"days_since_event": float(i), "noise": 0.0}, i > 25)
    m.labels_until = 1_767_657_600.0
    headers = [(COVERS_HEADER, b"41"), (VERSION_HEADER, b"30"), (UNTIL_HEADER, b"1767744000.0")]
    line = describe(
        snapshot_of(Record(m.snapshot(), headers=headers), SnapshotCheck()),
        ModelConfig(min_labels=20, min_class_labels=4),
    )
    assert line.startswith("     7  2026-01-05T00:00:00.000Z  saas    v30 ")
    assert "30 examples (4 churned)" in line and "ready" in line and "not ready" not in line
    assert "labels until 2026-01-06T00:00:00.000Z" in line and "covers example 41" in line
    assert line.endswith("backfill until 2026-01-07T00:00:00.000Z") and "\n" not in line


def test_a_pickle_is_listed_as_refused_and_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    record = Record(pickle.dumps(_RunsCommand(marker)), headers=[(VERSION_HEADER, b"99")])
    line = describe(snapshot_of(record, SnapshotCheck()), ModelConfig())
    assert "v99" in line and "refused: pickled snapshot refused" in line
    assert not marker.exists()
