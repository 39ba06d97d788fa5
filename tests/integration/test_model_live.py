"""Live model on a real broker: hot swap from rules to model, and resume after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from workers import (
    WorkerProcess,
    consume,
    input_topics,
    make_topics,
    produce,
    running_worker,
    sim_to_kafka,
    wait_caught_up,
    wait_until,
)

from churnstream.model.learner import SegmentModel
from churnstream.stream.contract.events import SEGMENTS
from churnstream.stream.contract.timefmt import rfc3339
from churnstream.stream.devtools.simulator import SimConfig, generate
from churnstream.stream.settings import Settings

pytestmark = pytest.mark.kafka

# Small history, low readiness bar: every segment gets >= 50 labels of both classes.
MIN_LABELS = 50
ENV = {"CHURNSTREAM_MIN_LABELS": str(MIN_LABELS), "CHURNSTREAM_SNAPSHOT_EVERY": "50"}
FIRST = SimConfig(users=60, days=40, seed=11)
DAY = 86400.0
TIMEOUT = 240.0


def read_topic(
    bootstrap: str, topic: str, partitions: int, until: Callable[[list[Any]], bool]
) -> list[Any]:
    """Records of `topic` from the start until `until(records)` holds (fails after TIMEOUT)."""
    return consume(bootstrap, topic, until=until, timeout=TIMEOUT, partitions=partitions)


def scores(settings: Settings, until: Callable[[list[dict[str, Any]]], bool]) -> list[Any]:
    def check(records: list[Any]) -> bool:
        return until([orjson.loads(r.value) for r in records])

    topic = settings.topic("churn.risk-scores")
    records = read_topic(settings.bootstrap_servers, topic, settings.partitions, check)
    return [orjson.loads(r.value) for r in records]


def snapshots(settings: Settings, until: Callable[[list[Any]], bool]) -> list[SegmentModel]:
    records = read_topic(settings.bootstrap_servers, settings.topic("churn.models"), 1, until)
    return [SegmentModel.from_snapshot(r.value) for r in records if r.value]


def model_in_every_segment(items: list[dict[str, Any]]) -> bool:
    return {s["segment"] for s in items if s["source"] == "model"} == set(SEGMENTS)


def later(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scores of events of the second history (all processed after the restart)."""
    boundary = rfc3339(FIRST.start + FIRST.days * DAY)
    return [s for s in items if s["ts"] >= boundary]  # same RFC 3339 format: text order works


def later_history(after: SimConfig, seed: int) -> Iterator[Any]:
    """A second history that starts when the first ends (same user ids, later event time)."""
    cfg = SimConfig(users=after.users, days=20, seed=seed, start=after.start + after.days * DAY)
    return generate(cfg)


def wait_models_ready(worker: WorkerProcess, settings: Settings) -> dict[str, int]:
    """Wait until every segment has a ready snapshot that the worker has installed.

    Returns the newest published version per segment. A history sent in one go is consumed
    before its labels are learned, so the model can only show in scores of later events.
    """

    def ready(records: list[Any]) -> bool:
        models = [SegmentModel.from_snapshot(r.value) for r in records if r.value]
        return {m.segment for m in models if m.ready(MIN_LABELS)} == set(SEGMENTS)

    latest: dict[str, int] = {}
    for model in snapshots(settings, ready):
        latest[model.segment] = max(latest.get(model.segment, 0), model.version)
    for segment, version in latest.items():
        wait_until(
            lambda s=segment, v=version: worker.metric("churnstream_model_version", segment=s) >= v,
            TIMEOUT, f"the worker to install the {segment} model v{version}",
        )  # fmt: skip
    return latest


def test_hot_swap_from_rules_to_model_without_restart(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        assert worker.proc is not None
        pid = worker.proc.pid
        produce(kafka_bootstrap, sim_to_kafka(prefix, generate(FIRST)))
        wait_models_ready(worker, settings)
        produce(kafka_bootstrap, sim_to_kafka(prefix, later_history(FIRST, seed=12)))
        seen = scores(settings, lambda items: model_in_every_segment(later(items)))
        assert worker.proc.pid == pid and worker.proc.running()  # same process throughout
    for segment in SEGMENTS:
        mine = [s for s in seen if s["segment"] == segment]
        assert mine[0]["source"] == "rules" and mine[0]["model_version"] == 0
        first_model = next(s for s in mine if s["source"] == "model")
        assert first_model["model_version"] >= MIN_LABELS
        assert first_model["drivers"], "model scores carry their drivers"


def test_restart_resumes_from_the_latest_snapshot(
    kafka_bootstrap: str, fresh_topic_prefix: str, tmp_path: Path
) -> None:
    prefix = fresh_topic_prefix
    settings = make_topics(kafka_bootstrap, prefix)
    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        produce(kafka_bootstrap, sim_to_kafka(prefix, generate(FIRST)))
        wait_models_ready(worker, settings)
        wait_caught_up(worker, input_topics(prefix), timeout=TIMEOUT)
        # The trainer acks examples only after publishing; let it finish what was labelled.
        wait_caught_up(worker, [settings.topic("churn.examples")], timeout=TIMEOUT)
    before = snapshots(settings, lambda rs: len(rs) >= 3)
    latest: dict[str, int] = {}
    for model in before:
        latest[model.segment] = max(latest.get(model.segment, 0), model.version)

    with running_worker(kafka_bootstrap, prefix, tmp_path, env=ENV) as worker:
        # The restarted worker reloads the snapshots before any new label arrives ...
        assert wait_models_ready(worker, settings) == latest
        produce(kafka_bootstrap, sim_to_kafka(prefix, later_history(FIRST, seed=12)))
        after = later(scores(settings, lambda items: model_in_every_segment(later(items))))
        wait_caught_up(worker, input_topics(prefix), timeout=TIMEOUT)
        wait_caught_up(worker, [settings.topic("churn.examples")], timeout=TIMEOUT)
        published = snapshots(settings, lambda rs: len(rs) > len(before))[len(before) :]
    for segment, version in latest.items():
        mine = [s for s in after if s["segment"] == segment]
        assert mine, segment
        # ... so no score after the restart comes from the rules or from a fresh model.
        first_rules = next((s for s in mine if s["source"] != "model"), None)
        assert first_rules is None, (segment, first_rules)
        assert min(s["model_version"] for s in mine) >= version, (segment, version)
    # The trainer went on from the snapshot: its new snapshots continue the version count.
    assert published
    for model in published:
        assert model.version > latest[model.segment], (model.segment, model.version)
