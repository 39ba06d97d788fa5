"""Retention and compaction of the topics `churnstream topics create` makes match the personal
data table of docs/security.md: the changelog is compacted with a tombstone retention, every
topic holding personal data has a retention, and the table names every topic."""

from __future__ import annotations

from pathlib import Path

from churnstream.stream.contract import topics as t
from churnstream.stream.kafka.admin import changelog_spec, topic_specs
from churnstream.stream.settings import Settings

DAY_MS = 86_400_000
SECURITY = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_the_changelog_is_compacted_with_a_tombstone_retention() -> None:
    spec = changelog_spec(Settings(app_id="app", partitions=3))
    assert (spec.name, spec.partitions) == ("app-users-changelog", 3)
    assert spec.config() == {
        "cleanup.policy": "compact",
        "delete.retention.ms": str(DAY_MS),
        "min.compaction.lag.ms": "0",
        "max.compaction.lag.ms": str(7 * DAY_MS),
    }


def test_retention_of_every_topic_with_personal_data() -> None:
    configs = {s.name: s.config() for s in topic_specs(Settings(topic_prefix="p."))}
    for name in t.INPUT_TOPICS.values():
        assert configs[f"p.{name}"] == {"retention.ms": str(30 * DAY_MS)}
    assert configs[f"p.{t.REKEYED}"] == {"retention.ms": str(30 * DAY_MS)}
    for name in (t.SCORES, t.ALERTS, t.DLQ, t.EXAMPLES):
        assert configs[f"p.{name}"] == {"retention.ms": str(14 * DAY_MS)}
    assert configs[f"p.{t.ERASURE}"] == {"retention.ms": str(7 * DAY_MS)}
    assert configs[f"p.{t.AUDIT}"] == {}  # the operator's compliance policy decides
    assert configs[f"p.{t.MODELS}"] == {"cleanup.policy": "compact"}


def test_the_personal_data_table_names_every_topic() -> None:
    text = SECURITY.read_text(encoding="utf-8")
    named = [*t.INPUT_TOPICS.values(), t.REKEYED, t.SCORES, t.ALERTS, t.DLQ, t.EXAMPLES]
    named += [t.ERASURE, t.AUDIT, t.MODELS, "<app_id>-users-changelog"]
    for name in named:
        prefix = name.split(".", 1)[0] + ".*" if name.startswith("behaviour.") else name
        assert f"`{prefix}`" in text, name
    assert "`delete.retention.ms` 1 day" in text and "`max.compaction.lag.ms` 7 days" in text
