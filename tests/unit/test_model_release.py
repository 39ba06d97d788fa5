"""`churnstream model import|rollback`: what is published, and one-line errors for bad asks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from churnstream.agents.model_feed import (
    COVERS_HEADER,
    ORIGIN_HEADER,
    ROLLBACK_HEADER,
    VERSION_HEADER,
)
from churnstream.features import FEATURE_NAMES
from churnstream.model.config import ModelConfig
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck
from churnstream.stream.cli.common import CommandError
from churnstream.stream.cli.model_release import load_file, prepare, rollback_target
from churnstream.stream.cli.model_topic import Snapshot, describe

KEY = b"model-signing-key-0123456789"
CHECK = SnapshotCheck.of(KEY, False, FEATURE_NAMES)
NAMES = ("days_since_event", "trend_active_days")
TOPIC = "churn.models"


def model(n: int, segment: str = "saas", until: float = -math.inf) -> SegmentModel:
    m = SegmentModel(segment, base_rate=0.04, feature_names=NAMES, clip_z=3.0)
    for i in range(n):
        m.learn({"days_since_event": float(i % 9), "trend_active_days": 1.0}, i % 4 == 0)
    m.labels_until = until
    return m


def published(offset: int, m: SegmentModel | None, covers: int, version: int = 0) -> Snapshot:
    headers = {COVERS_HEADER: str(covers).encode(), VERSION_HEADER: str(version).encode()}
    data = CHECK.sign(m.snapshot()) if m is not None else b"junk"
    segment = m.segment if m is not None else "saas"
    return Snapshot(offset, 1.7e9, segment, headers, data, m, "" if m else "unparsable")


def topic() -> list[Snapshot]:
    return [
        published(0, model(50, until=1.0e9), covers=60),
        published(1, model(20, "course"), covers=61),
        published(2, model(100, until=2.0e9), covers=140),
        published(3, None, covers=150, version=130),  # unreadable, its version still counts
    ]


def test_a_rollback_republishes_the_older_content_above_every_version_with_its_source() -> None:
    snapshots = topic()
    target = rollback_target(snapshots, "saas", None, TOPIC)
    assert (target.version, target.n_learned) == (50, 50)
    release = prepare(target, snapshots, "rollback", CHECK, rollback_of=50)
    headers = dict(release.headers)
    assert release.version == 131 and headers[VERSION_HEADER] == b"131"
    assert headers[ROLLBACK_HEADER] == b"50" and headers[ORIGIN_HEADER] == b"rollback"
    assert headers[COVERS_HEADER] == b"150"  # what the segment's snapshots covered stays so
    back = CHECK.load(release.data, "saas")  # signed, and a worker loads it
    assert (back.version, back.n_learned, back.labels_until) == (131, 50, 2.0e9)
    line = describe(
        Snapshot(4, 1.7e9, "saas", headers, release.data, back),
        ModelConfig(min_labels=10, min_class_labels=1),
    )
    assert "v131" in line and line.endswith("rollback of v50")


def test_an_import_goes_above_the_newest_version_of_its_segment(tmp_path: Path) -> None:
    path = tmp_path / "saas.json"
    path.write_bytes(CHECK.sign(model(70).snapshot()))
    release = prepare(load_file(path, CHECK), topic(), "import", CHECK)
    assert release.version == 131 and dict(release.headers)[ORIGIN_HEADER] == b"import"
    first = prepare(load_file(path, CHECK), [], "import", CHECK)
    assert first.version == 1 and dict(first.headers)[COVERS_HEADER] == b"-1"


def test_rollback_asks_that_cannot_be_met_fail_with_one_line() -> None:
    snapshots = topic()
    cases = [
        ("nosuch", None, "unknown segment 'nosuch'"),
        ("saas", 77, "no saas version 77 on churn.models (it holds v50, v100)"),
        ("saas", 100, "saas v100 is the newest version already"),
        ("course", None, "holds no course version older than v20"),
        ("docs", None, "no readable docs snapshot"),
    ]
    for segment, version, message in cases:
        with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
            rollback_target(snapshots, segment, version, TOPIC)
    assert rollback_target(snapshots, "saas", 50, TOPIC).n_learned == 50


def test_a_bad_file_fails_with_one_line(tmp_path: Path) -> None:
    missing, junk, unsigned = tmp_path / "none.json", tmp_path / "junk", tmp_path / "u.json"
    junk.write_bytes(b"\x80\x05 not a snapshot")
    unsigned.write_bytes(model(10).snapshot())
    with pytest.raises(CommandError, match=r"none\.json: No such file"):
        load_file(missing, CHECK)
    with pytest.raises(CommandError, match="junk: not a snapshot this deployment loads"):
        load_file(junk, SnapshotCheck.of(None, False, FEATURE_NAMES))
    with pytest.raises(CommandError, match=r"unsigned .*; --trust-file accepts it"):
        load_file(unsigned, CHECK)
    assert load_file(unsigned, SnapshotCheck.of(None, False, FEATURE_NAMES)).n_learned == 10
