"""`churnstream model export|import|rollback|list` against the real broker, with a signing key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workers import consume, end_offsets, make_topics, produce

from churnstream.agents.model_feed import ORIGIN_HEADER, ROLLBACK_HEADER
from churnstream.features import FEATURE_NAMES
from churnstream.features.names import SEGMENT_FEATURES
from churnstream.model.learner import SegmentModel
from churnstream.model.snapshot_signing import SnapshotCheck
from churnstream.stream.cli.main import main

pytestmark = pytest.mark.kafka

KEY = "import-test-signing-key-0123456789"
CHECK = SnapshotCheck.of(KEY.encode(), False, FEATURE_NAMES)


def trained(n: int) -> SegmentModel:
    names = SEGMENT_FEATURES["course"][:3]
    m = SegmentModel("course", base_rate=0.08, feature_names=names, clip_z=3.0)
    for i in range(n):
        m.learn({name: float((i * (k + 1)) % 7) for k, name in enumerate(names)}, i % 3 == 0)
    return m


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`churnstream model ARGS` in this process (the environment is the test's)."""
    code = main(["model", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_import_and_rollback_publish_signed_versions_above_the_newest(
    kafka_bootstrap: str,
    fresh_topic_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = fresh_topic_prefix
    for var in [v for v in os.environ if v.startswith("CHURNSTREAM_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("CHURNSTREAM_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("CHURNSTREAM_MODEL_SIGNING_KEY", KEY)
    models = make_topics(kafka_bootstrap, prefix).topic("churn.models")
    published = trained(40)
    signed = CHECK.sign(published.snapshot())
    unsigned = trained(12)
    produce(kafka_bootstrap, [(models, b"course", signed)])
    produce(kafka_bootstrap, [(models, b"saas", b'{"kind":"not signed"}')])

    saved = tmp_path / "course.json"
    code, out, err = cli(capsys, "export", "course", str(saved))
    assert code == 0, err
    assert saved.read_bytes() == signed  # as published, signature included

    code, out, err = cli(capsys, "import", str(saved))
    assert code == 0, err
    assert "course v40 from" in out and "published as v41" in out

    plain = tmp_path / "plain.json"
    plain.write_bytes(unsigned.snapshot())
    code, out, err = cli(capsys, "import", str(plain))
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"churnstream: {plain}: not a snapshot this deployment loads: unsigned snapshot refused "
        "(a signing key is set); --trust-file accepts it"
    ]
    code, out, err = cli(capsys, "import", str(plain), "--trust-file")
    assert code == 0 and "published as v42" in out, err

    code, out, err = cli(capsys, "rollback", "--segment", "course", "--to-version", "40")
    assert code == 0, err
    assert "course rolled back to v40: published as v43" in out

    code, out, err = cli(capsys, "list")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 5 and "refused: unsigned snapshot refused" in lines[1]
    assert lines[2].endswith("imported") and lines[4].endswith("rollback of v40")

    end = end_offsets(kafka_bootstrap, [models])[(models, 0)]
    records = consume(kafka_bootstrap, models, until=lambda rs: len(rs) >= end, timeout=60,
                      partitions=1)[2:]  # fmt: skip
    loaded = [CHECK.load(r.value, "course") for r in records]  # every one signed with the key
    assert [m.version for m in loaded] == [41, 42, 43]
    assert [m.n_learned for m in loaded] == [40, 12, 40]
    assert [dict(r.headers)[ORIGIN_HEADER] for r in records] == [b"import", b"import", b"rollback"]
    assert dict(records[2].headers)[ROLLBACK_HEADER] == b"40"
    assert loaded[2].predict({}) == published.predict({})  # v40's content
